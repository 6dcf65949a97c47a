//! A background writer: callers mark something dirty (cheaply, without a
//! system call), and one thread writes it at most once per interval, sooner
//! when urged. Used for the state file and for the queue file's tail.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

/// Why the writer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Marked dirty (or urged).
    Marked,
    /// Nothing marked for a whole tick: time to look at what others did.
    Tick,
}

/// Wakes a background writer when state changed; writes at most once per
/// `interval` (unless urged), so a change is on disk within about `interval`.
pub struct Persister {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

struct Signal {
    dirty: AtomicBool,
    /// Write now, without waiting out the interval.
    urgent: AtomicBool,
    stop: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

/// The cheap, clonable side of a [`Persister`] that callers use.
#[derive(Clone)]
pub struct DirtyFlag(Arc<Signal>);

impl DirtyFlag {
    pub fn mark(&self) {
        // Read first: marking an already dirty flag writes no shared cache line.
        if !self.0.dirty.load(Ordering::Acquire) && !self.0.dirty.swap(true, Ordering::AcqRel) {
            let _g = self.0.lock.lock();
            self.0.cv.notify_one();
        }
    }

    /// Marks and has the writer write without waiting out its interval.
    pub fn urge(&self) {
        if !self.0.urgent.load(Ordering::Acquire) && !self.0.urgent.swap(true, Ordering::AcqRel) {
            self.0.dirty.store(true, Ordering::Release);
            let _g = self.0.lock.lock();
            self.0.cv.notify_one();
        }
    }
}

impl Persister {
    /// `write` snapshots and saves the state; it runs on the persister thread.
    pub fn start(
        interval: Duration,
        write: impl Fn() + Send + 'static,
    ) -> std::io::Result<Persister> {
        Persister::start_ticking(interval, None, move |_| write())
    }

    /// As [`start`](Self::start), also running `write(Wake::Tick)` after
    /// `tick` passes with nothing marked.
    pub fn start_ticking(
        interval: Duration,
        tick: Option<Duration>,
        write: impl Fn(Wake) + Send + 'static,
    ) -> std::io::Result<Persister> {
        let signal = Arc::new(Signal {
            dirty: AtomicBool::new(false),
            urgent: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        });
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("trodo-persist".into())
            .spawn(move || loop {
                let wake = {
                    let next_tick = tick.map(|t| Instant::now() + t);
                    let mut g = s.lock.lock();
                    loop {
                        if s.dirty.load(Ordering::Acquire) || s.stop.load(Ordering::Acquire) {
                            break Wake::Marked;
                        }
                        match next_tick {
                            None => s.cv.wait(&mut g),
                            Some(at) => {
                                if s.cv.wait_until(&mut g, at).timed_out() {
                                    break Wake::Tick;
                                }
                            }
                        }
                    }
                };
                if s.stop.load(Ordering::Acquire) {
                    return; // the owner writes the final state itself
                }
                s.urgent.store(false, Ordering::Release);
                s.dirty.store(false, Ordering::Release);
                // A panic in one write must not end persistence for good.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write(wake)));
                // The rest of the interval, even when marked meanwhile (a mark
                // notifies): otherwise a busy caller gets a write, and an
                // fsync, per few calls. Only stop or urge cuts it short.
                let until = Instant::now() + interval;
                let mut g = s.lock.lock();
                while !s.stop.load(Ordering::Acquire) && !s.urgent.load(Ordering::Acquire) {
                    if s.cv.wait_until(&mut g, until).timed_out() {
                        break;
                    }
                }
            })?;
        Ok(Persister {
            signal,
            thread: Some(thread),
        })
    }

    pub fn flag(&self) -> DirtyFlag {
        DirtyFlag(self.signal.clone())
    }

    /// Stops and joins the thread (it never blocks on the network).
    pub fn stop(&mut self) {
        self.stop_by(None);
    }

    /// As [`stop`](Self::stop), waiting for the thread only until
    /// `deadline` (it may be in a long write, or waiting for a lock another
    /// process holds): false when it was left to finish on its own.
    pub fn stop_by(&mut self, deadline: Option<Instant>) -> bool {
        self.signal.stop.store(true, Ordering::Release);
        {
            let _g = self.signal.lock.lock();
            self.signal.cv.notify_all();
        }
        match self.thread.take() {
            Some(t) => crate::util::join_by(t, deadline),
            None => true,
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn persister_writes_soon_after_marking() {
        let (mut p, count) = counting_persister(Duration::from_millis(5));
        let flag = p.flag();
        flag.mark();
        assert!(wait_for_count(&count, 1));
        assert_eq!(count.load(Ordering::SeqCst), 1);
        p.stop();
        flag.mark(); // harmless after stop
    }

    fn counting_persister(interval: Duration) -> (Persister, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let p = Persister::start(interval, move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        (p, count)
    }

    fn wait_for_count(count: &AtomicUsize, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count.load(Ordering::SeqCst) < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn persister_writes_at_most_once_per_interval_however_often_marked() {
        let interval = Duration::from_millis(500);
        let (mut p, count) = counting_persister(interval);
        let flag = p.flag();
        let start = Instant::now();
        flag.mark();
        assert!(wait_for_count(&count, 1));
        while start.elapsed() < Duration::from_millis(300) {
            flag.mark();
            std::thread::sleep(Duration::from_micros(200));
        }
        let allowed = 1 + (start.elapsed().as_millis() / interval.as_millis()) as usize;
        let writes = count.load(Ordering::SeqCst);
        assert!(writes <= allowed, "{writes} writes, at most {allowed}");
        p.stop();
    }

    #[test]
    fn urge_writes_without_waiting_out_the_interval() {
        let (mut p, count) = counting_persister(Duration::from_secs(600));
        let flag = p.flag();
        flag.mark();
        assert!(wait_for_count(&count, 1));
        flag.mark(); // waits for the interval
        flag.urge();
        assert!(wait_for_count(&count, 2), "urged write came");
        flag.urge();
        assert!(wait_for_count(&count, 3), "a second urge works too");
        p.stop();
    }

    #[test]
    fn ticks_come_when_nothing_is_marked_and_only_then() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let marks = Arc::new(AtomicUsize::new(0));
        let (t, m) = (ticks.clone(), marks.clone());
        let mut p = Persister::start_ticking(
            Duration::from_millis(1),
            Some(Duration::from_millis(20)),
            move |wake| {
                let count = if wake == Wake::Tick { &t } else { &m };
                count.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        assert!(wait_for_count(&ticks, 2), "ticks without marks");
        assert_eq!(marks.load(Ordering::SeqCst), 0);
        p.flag().mark();
        assert!(wait_for_count(&marks, 1));
        p.stop();
        let after_stop = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after_stop,
            "no tick after stop"
        );
    }
}
