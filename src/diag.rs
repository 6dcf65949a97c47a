//! Reports of things the library handled on its own (a corrupt state file, an
//! unusable server answer, a dropped request): kept for inspection and, with
//! `"debug": true`, printed to stderr.

use std::collections::VecDeque;

use parking_lot::Mutex;

const KEEP: usize = 256;

#[derive(Debug, Default)]
pub struct Diagnostics {
    debug: bool,
    recent: Mutex<VecDeque<String>>,
}

impl Diagnostics {
    pub fn new(debug: bool) -> Diagnostics {
        Diagnostics {
            debug,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    pub fn report(&self, message: impl Into<String>) {
        let message = message.into();
        if self.debug {
            eprintln!("[trodo] {message}");
        }
        let mut r = self.recent.lock();
        if r.len() == KEEP {
            r.pop_front();
        }
        r.push_back(message);
    }

    /// The most recent reports, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.lock().iter().cloned().collect()
    }
}
