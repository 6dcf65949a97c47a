//! Reports of things the library handled on its own (a corrupt state or queue
//! file, an unusable server answer, dropped data): kept for inspection, passed
//! to the error callback once each, and with `"debug": true` printed to stderr.

use std::collections::VecDeque;

use std::sync::Arc;

use crate::sync::Mutex;
use arc_swap::ArcSwapOption;

const KEEP: usize = 256;

/// Receives each report once; set by `trodo_set_error_callback`.
pub type ErrorCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// Lock-free: a forked child may set or use it even if a parent thread was
/// reading it at the fork.
static CALLBACK: ArcSwapOption<ErrorCallback> = ArcSwapOption::const_empty();

/// Sets (or with `None` clears) the process-wide error callback.
pub fn set_error_callback(callback: Option<ErrorCallback>) {
    CALLBACK.store(callback.map(Arc::new));
}

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
        {
            let mut r = self.recent.lock();
            if r.len() == KEEP {
                r.pop_front();
            }
            r.push_back(message.clone());
        }
        let callback = CALLBACK.load_full();
        if let Some(cb) = callback {
            // A panicking callback must not take the reporting thread down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(&message)));
        }
    }

    /// The most recent reports, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.lock().iter().cloned().collect()
    }
}
