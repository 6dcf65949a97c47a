//! Reports of things the library handled on its own (a corrupt state or queue
//! file, an unusable server answer, dropped data): kept for inspection, passed
//! to the error callback once each, and with `"debug": true` printed to stderr.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::Mutex;
use arc_swap::ArcSwapOption;

const KEEP: usize = 256;

/// Receives each report once; set by `trodo_set_error_callback`.
pub type ErrorCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// A callback and the fork generation it was set in.
struct Registered {
    callback: ErrorCallback,
    generation: u64,
}

/// Lock-free: a forked child may set or use it even if a parent thread was
/// reading it at the fork. Each report holds a clone of the `Arc` while it
/// calls, which is how a setter knows when the old callback has finished.
static CALLBACK: ArcSwapOption<Registered> = ArcSwapOption::const_empty();

thread_local! {
    /// Set while this thread runs the callback.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

/// After a fork, clones of a callback set before it may be held by threads
/// that do not exist in the child: waiting for them ends after this.
const FORKED_WAIT: Duration = Duration::from_millis(100);

/// Sets (or with `None` clears) the process-wide error callback. When it
/// returns, the previous callback is not running and will not be called
/// again (from inside the callback itself it returns at once: the report in
/// progress finishes). Holds no lock while it waits.
pub fn set_error_callback(callback: Option<ErrorCallback>) {
    let generation = crate::process::generation();
    let new = callback.map(|callback| {
        Arc::new(Registered {
            callback,
            generation,
        })
    });
    let Some(old) = CALLBACK.swap(new) else {
        return;
    };
    if IN_CALLBACK.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    let give_up = (old.generation != generation).then(|| Instant::now() + FORKED_WAIT);
    while Arc::strong_count(&old) > 1 {
        if give_up.is_some_and(|t| Instant::now() >= t) {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
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
        let registered = CALLBACK.load_full();
        if let Some(r) = registered {
            let outer = IN_CALLBACK.try_with(|f| f.replace(true)).unwrap_or(false);
            // A panicking callback must not take the reporting thread down.
            let _ =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (r.callback)(&message)));
            let _ = IN_CALLBACK.try_with(|f| f.set(outer));
            drop(r); // a setter waiting for this callback may return now
        }
    }

    /// The most recent reports, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.recent.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    /// The callback is process-wide: these tests take turns.
    static TURN: Mutex<()> = Mutex::new(());

    #[test]
    fn when_the_setter_returns_the_old_callback_is_not_running() {
        let _turn = TURN.lock();
        let finished = Arc::new(AtomicBool::new(false));
        let (started, wait_started) = mpsc::channel();
        let done = finished.clone();
        let started = std::sync::Mutex::new(started);
        set_error_callback(Some(Arc::new(move |m: &str| {
            if m == "slow report" {
                let _ = started.lock().unwrap().send(());
                std::thread::sleep(Duration::from_millis(300));
                done.store(true, Ordering::Release);
            }
        })));
        let reporter = std::thread::spawn(|| Diagnostics::new(false).report("slow report"));
        wait_started.recv().unwrap();
        set_error_callback(None);
        assert!(
            finished.load(Ordering::Acquire),
            "the setter returned while the old callback was still running"
        );
        reporter.join().unwrap();
    }

    #[test]
    fn the_setter_called_from_inside_the_callback_returns_at_once() {
        let _turn = TURN.lock();
        let (sent, received) = mpsc::channel();
        let sent = std::sync::Mutex::new(sent);
        set_error_callback(Some(Arc::new(move |m: &str| {
            if m == "replace me" {
                set_error_callback(None);
                let _ = sent.lock().unwrap().send(());
            }
        })));
        std::thread::spawn(|| Diagnostics::new(false).report("replace me"));
        received
            .recv_timeout(Duration::from_secs(20))
            .expect("the setter inside the callback returned (no deadlock)");
        assert!(CALLBACK.load().is_none());
    }
}
