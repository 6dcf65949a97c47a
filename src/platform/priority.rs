//! Making the calling thread background work.

/// Lowers the calling thread (a delivery thread) below the program it
/// serves, so that a request handler calling libtrodo gets the CPU first
/// when it is scarce; idle CPU still goes to sending.
///
/// - Linux: nice 10, and SCHED_BATCH, so that waking up (an answer in, a
///   batch due) does not preempt a running caller, which otherwise lost its
///   CPU hundreds of times in a burst of calls, its caches with it.
/// - Apple: the utility QoS class (what the system gives to work the user
///   does not wait on), which also lowers its I/O priority.
/// - Windows: below-normal thread priority.
pub fn yield_to_the_app() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain integers and a pointer to a local struct in, an int
    // out; on Linux, PRIO_PROCESS / pid 0 is the calling thread only, as is
    // pid 0 for sched_setscheduler. std and libc offer no safe form.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        let batch = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_BATCH, &batch);
    }
    #[cfg(target_vendor = "apple")]
    // SAFETY: a class and a relative priority in, an int out; it changes
    // only the calling thread.
    unsafe {
        libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0);
    }
    #[cfg(windows)]
    // SAFETY: the pseudo-handle of the calling thread needs no closing.
    unsafe {
        use windows_sys::Win32::System::Threading::{
            GetCurrentThread, SetThreadPriority, THREAD_PRIORITY_BELOW_NORMAL,
        };
        SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL);
    }
}
