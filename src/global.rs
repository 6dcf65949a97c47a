//! The one process-wide client behind the C API, carried across `fork()`
//! and written to disk at exit.
//!
//! Everything process-wide (the client slot and the lock that serialises
//! init and shutdown) lives in a [`Process`] made for one fork generation.
//! A forked child finds the generation changed at its first call, leaves the
//! parent's `Process` untouched (its locks may be held by threads that do not
//! exist in the child, and dropping its client would join them and write to
//! the parent's files) and makes its own, with a client that continues the
//! parent's identity on a queue segment of its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::Mutex;
use arc_swap::{ArcSwapOption, Guard};

use crate::client::Client;
use crate::config::Options;
use crate::error::{Error, ErrorKind, Result};
use crate::process;

/// How long the exit handler may spend writing what is not yet on disk.
const EXIT_BUDGET: Duration = Duration::from_secs(1);

struct Process {
    generation: u64,
    /// Read by every call without a lock or a reference count of its own
    /// (arc-swap's guards): many threads calling at once share no lock here.
    client: ArcSwapOption<Client>,
    /// Serialises init and shutdown, so a new client never reads the state
    /// file while the old one is still writing its last state.
    lifecycle: Mutex<()>,
}

static PROCESS: ArcSwapOption<Process> = ArcSwapOption::const_empty();
/// The generation whose `Process` one thread has claimed to make.
static CLAIMED: AtomicU64 = AtomicU64::new(u64::MAX);

/// Runs `f` with this generation's `Process`, making it first if needed.
fn with_process<R>(f: impl FnOnce(&Process) -> R) -> R {
    loop {
        let generation = process::generation();
        let current = PROCESS.load();
        if let Some(p) = current.as_ref().filter(|p| p.generation == generation) {
            return f(p);
        }
        let claimed = CLAIMED.load(Ordering::Acquire);
        let won = claimed != generation
            && CLAIMED
                .compare_exchange(claimed, generation, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        if !won {
            drop(current);
            std::thread::yield_now(); // another thread of this generation is making it
            continue;
        }
        let inherited = arc_swap::Guard::into_inner(current);
        // Whatever happens, this generation's Process is made below: the
        // claim is never left standing with nothing behind it (every later
        // call would wait for it forever).
        let client = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inherited.as_ref().and_then(|old| continue_after_fork(old))
        }))
        .unwrap_or(None);
        PROCESS.store(Some(Arc::new(Process {
            generation,
            client: ArcSwapOption::new(client),
            lifecycle: Mutex::new(()),
        })));
        // Never dropped in this process (see the module doc).
        std::mem::forget(inherited);
    }
}

/// The child's client, continuing the parent's; `None` (not initialized)
/// when there was none, or init or shutdown was under way at the fork.
fn continue_after_fork(parent: &Process) -> Option<Arc<Client>> {
    #[cfg(test)]
    if tests::PANIC_CONTINUING.load(Ordering::Acquire) {
        panic!("injected: continuing after the fork failed");
    }
    let client = parent.client.load_full()?;
    std::mem::forget(client.clone());
    match Client::continue_after_fork(&client) {
        Ok(c) => Some(c),
        Err(e) if e.kind == ErrorKind::NotInitialized => None,
        Err(e) => {
            crate::diag::Diagnostics::new(false).report(format!(
                "libtrodo could not continue in the forked process {}: {e}; call trodo_init there",
                std::process::id()
            ));
            None
        }
    }
}

pub fn init(site_id: &str, options: Options) -> Result<()> {
    with_process(|p| {
        let _life = p.lifecycle.lock();
        if p.client.load().is_some() {
            return Err(Error::new(
                ErrorKind::AlreadyInitialized,
                "libtrodo is already initialized: call trodo_shutdown before trodo_init again",
            ));
        }
        let client = Client::start(site_id, options)?;
        p.client.store(Some(client));
        Ok(())
    })
}

/// The client for the length of one call (see [`current`]).
pub struct Current(Guard<Option<Arc<Client>>>);

impl std::ops::Deref for Current {
    type Target = Client;

    fn deref(&self) -> &Client {
        match self.0.as_deref() {
            Some(client) => client,
            None => unreachable!("current() returns a Current only for a client"),
        }
    }
}

/// The client, or `NotInitialized`. Held for one call: a client shut down
/// meanwhile stays alive until the call ends, and refuses what comes late.
pub fn current() -> Result<Current> {
    let guard = with_process(|p| p.client.load());
    match guard.is_some() {
        true => Ok(Current(guard)),
        false => Err(Error::not_initialized()),
    }
}

pub fn shutdown(timeout: Duration) -> Result<()> {
    // Held as an Arc, not borrowed: the flush below may take a while.
    let p = with_process(|_| PROCESS.load_full()).ok_or_else(Error::not_initialized)?;
    let _life = p.lifecycle.lock();
    let client = p.client.swap(None).ok_or_else(Error::not_initialized)?;
    client.shutdown(timeout)
}

/// At process exit: writes what the client accepted and has not yet put on
/// disk. Waits for no network and, for no lock, longer than a bounded try.
/// Does nothing in a forked child that has not used libtrodo since the fork:
/// what it inherited is the parent's to write.
pub fn at_exit() {
    let Some(p) = PROCESS.load_full() else {
        return;
    };
    if p.generation != process::generation() {
        return;
    }
    let deadline = Instant::now() + EXIT_BUDGET;
    let Some(client) = p.client.load_full() else {
        return;
    };
    client.persist_by(deadline);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    pub(super) static PANIC_CONTINUING: AtomicBool = AtomicBool::new(false);

    #[test]
    fn a_panic_while_continuing_after_a_fork_leaves_no_claim_behind() {
        let dir = std::env::temp_dir().join(format!("trodo-global-{}", crate::util::new_id()));
        let options = || Options {
            storage_dir: Some(dir.clone()),
            api_base: "http://127.0.0.1:9".into(), // never reached: nothing is tracked
            ..Options::default()
        };
        init("site-global", options()).unwrap();
        PANIC_CONTINUING.store(true, Ordering::Release);
        // As a forked child's first call finds it (no real fork: the test
        // harness's threads would not survive one).
        process::after_fork_in_child(|_| {});
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(current().is_err()));
        let answer = rx.recv_timeout(Duration::from_secs(10));
        PANIC_CONTINUING.store(false, Ordering::Release);
        assert_eq!(answer, Ok(true), "the call returned, not initialized");
        // The generation's Process was made: init works in it.
        init("site-global", options()).unwrap();
        shutdown(Duration::from_secs(5)).unwrap();
    }
}
