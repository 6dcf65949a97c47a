//! The locks libtrodo uses: std's `Mutex`, `Condvar` and `RwLock` behind the
//! few calls the code needs (no poisoning to unwrap: a panic is caught at the
//! FFI boundary or in the background thread, and the data stays usable).
//!
//! Why not parking_lot: it lists parked threads in one process-wide table
//! that points into their stacks. A forked child inherits the table but not
//! the threads, and glibc hands their stacks to the child's new threads, so
//! the table is soon corrupt and the child's first contended lock crashes or
//! hangs. std's locks leave waiting to the kernel (futex): nothing dangles.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{self, PoisonError, TryLockError};
use std::time::{Duration, Instant};

/// How often a bounded try polls a lock.
const POLL: Duration = Duration::from_millis(1);

#[derive(Default)]
pub struct Mutex<T: ?Sized>(sync::Mutex<T>);

pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// `None` only inside [`MutexGuard::unlocked`] and a condvar wait.
    inner: Option<sync::MutexGuard<'a, T>>,
}

impl<T> Mutex<T> {
    pub const fn new(value: T) -> Mutex<T> {
        Mutex(sync::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            inner: Some(self.raw_lock()),
        }
    }

    fn raw_lock(&self) -> sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let inner = match self.0.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(MutexGuard {
            mutex: self,
            inner: Some(inner),
        })
    }

    /// Tries until `deadline`; `None` if another thread still holds it then.
    pub fn try_lock_until(&self, deadline: Instant) -> Option<MutexGuard<'_, T>> {
        poll_until(deadline, || self.try_lock())
    }

    /// Locks, waiting as long as it takes without a `deadline`, and at most
    /// until it with one (`None` if another thread still holds it then).
    pub fn lock_by(&self, deadline: Option<Instant>) -> Option<MutexGuard<'_, T>> {
        match deadline {
            None => Some(self.lock()),
            Some(d) => self.try_lock_until(d),
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Runs `f` with the lock released, then takes it again.
    pub fn unlocked<R>(guard: &mut Self, f: impl FnOnce() -> R) -> R {
        drop(guard.inner.take());
        let result = f();
        guard.inner = Some(guard.mutex.raw_lock());
        result
    }

    fn held(&self) -> &sync::MutexGuard<'a, T> {
        self.inner.as_ref().expect("a MutexGuard holds its lock")
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.held()
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.inner.as_mut().expect("a MutexGuard holds its lock")
    }
}

/// Whether a timed wait ended by timing out.
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

#[derive(Default)]
pub struct Condvar(sync::Condvar);

impl Condvar {
    pub const fn new() -> Condvar {
        Condvar(sync::Condvar::new())
    }

    pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
        if let Some(g) = guard.inner.take() {
            guard.inner = Some(self.0.wait(g).unwrap_or_else(PoisonError::into_inner));
        }
    }

    pub fn wait_for<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        let Some(g) = guard.inner.take() else {
            return WaitTimeoutResult(true);
        };
        let (g, result) = self
            .0
            .wait_timeout(g, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        guard.inner = Some(g);
        WaitTimeoutResult(result.timed_out())
    }

    pub fn wait_until<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let result = self.wait_for(guard, timeout);
        WaitTimeoutResult(result.timed_out() || Instant::now() >= deadline)
    }

    pub fn notify_one(&self) {
        self.0.notify_one();
    }

    pub fn notify_all(&self) {
        self.0.notify_all();
    }
}

#[derive(Default)]
pub struct RwLock<T>(sync::RwLock<T>);

impl<T> RwLock<T> {
    pub const fn new(value: T) -> RwLock<T> {
        RwLock(sync::RwLock::new(value))
    }

    pub fn read(&self) -> sync::RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> sync::RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn poll_until<G>(deadline: Instant, mut attempt: impl FnMut() -> Option<G>) -> Option<G> {
    loop {
        if let Some(g) = attempt() {
            return Some(g);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_guard_can_be_released_for_a_while_and_a_wait_times_out() {
        let m = Arc::new(Mutex::new(1));
        let mut g = m.lock();
        let m2 = m.clone();
        let seen = MutexGuard::unlocked(&mut g, || {
            std::thread::spawn(move || *m2.lock() += 1).join().unwrap();
            m.try_lock().map(|g| *g)
        });
        assert_eq!((seen, *g), (Some(2), 2));
        assert!(m.try_lock().is_none(), "held again");
        let cv = Condvar::new();
        assert!(cv.wait_for(&mut g, Duration::from_millis(5)).timed_out());
        assert!(m.try_lock_until(Instant::now() + POLL * 3).is_none());
        drop(g);
        assert!(m.try_lock_until(Instant::now()).is_some());
    }
}
