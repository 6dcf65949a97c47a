//! The host's own HTTP stack: each request is handed to the host's send
//! function, which sends it (at once or later, on any thread) and reports
//! the outcome once. The worker waits for that outcome as it would for the
//! built-in client's, up to the request's timeout; a request the host
//! completes later (or never) stays valid until it does, and its outcome is
//! then ignored.

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sync::{Condvar, Mutex};

/// One POST for the host to send: owned by the host from the send call
/// until it passes it to [`complete`](HostRequest::complete).
pub struct HostRequest {
    pub url: CString,
    pub headers: Vec<(CString, CString)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
    answer: Arc<Answer>,
}

/// What the host reports: the response's status (0 when none came), its
/// `Retry-After` and its body.
#[derive(Debug, Default)]
pub struct HostReply {
    pub status: i32,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Answer {
    reply: Mutex<Option<HostReply>>,
    ready: Condvar,
}

impl HostRequest {
    /// Reports the outcome and gives the request back. After the worker
    /// stopped waiting (the timeout passed, or shutdown), it is ignored.
    pub fn complete(self, reply: HostReply) {
        *self.answer.reply.lock() = Some(reply);
        self.answer.ready.notify_all();
    }
}

/// The host's send function, process-wide or per client.
#[derive(Clone)]
pub struct HostSender(Arc<dyn Fn(HostRequest) + Send + Sync>);

impl HostSender {
    pub fn new(send: impl Fn(HostRequest) + Send + Sync + 'static) -> HostSender {
        HostSender(Arc::new(send))
    }
}

impl std::fmt::Debug for HostSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostSender(..)")
    }
}

/// What came back, before it is read as a [`super::Reply`].
pub(super) enum Outcome {
    Answered(HostReply),
    /// Status 0: the host got no response.
    NoResponse,
    TimedOut,
    /// Delivery is stopping: an answer that comes now is not waited for.
    Stopped,
}

/// While waiting, how often the stop flag is looked at.
const STOP_CHECK: Duration = Duration::from_millis(20);

/// Hands one request to the host and waits for its outcome, at most
/// `timeout` and until `stop` is set (no lock of libtrodo's is held
/// meanwhile).
pub(super) fn send(
    sender: &HostSender,
    url: String,
    headers: Vec<(&str, &str)>,
    body: Vec<u8>,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Outcome, String> {
    let c = |s: &str, what: &str| {
        CString::new(s).map_err(|_| format!("the request's {what} contains a NUL byte"))
    };
    let answer = Arc::new(Answer::default());
    let request = HostRequest {
        url: c(&url, "URL")?,
        headers: headers
            .into_iter()
            .map(|(n, v)| Ok((c(n, "header name")?, c(v, "header value")?)))
            .collect::<Result<_, String>>()?,
        body,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        answer: answer.clone(),
    };
    let deadline = Instant::now() + timeout;
    (sender.0)(request);
    let mut reply = answer.reply.lock();
    loop {
        // Stopping first: an answer that comes once shutdown has begun (it
        // may return while this thread still waits) is ignored, as promised;
        // the request stays queued for the next start.
        if stop.load(Ordering::Acquire) {
            return Ok(Outcome::Stopped);
        }
        if reply.is_some() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Outcome::TimedOut);
        }
        answer
            .ready
            .wait_until(&mut reply, deadline.min(now + STOP_CHECK));
    }
    Ok(match reply.take() {
        Some(r) if r.status > 0 => Outcome::Answered(r),
        _ => Outcome::NoResponse,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(sender: &HostSender, timeout_ms: u64) -> Outcome {
        post_until(sender, timeout_ms, &AtomicBool::new(false))
    }

    fn post_until(sender: &HostSender, timeout_ms: u64, stop: &AtomicBool) -> Outcome {
        send(
            sender,
            "http://x/api".into(),
            vec![("A", "b")],
            b"{}".to_vec(),
            Duration::from_millis(timeout_ms),
            stop,
        )
        .unwrap()
    }

    #[test]
    fn a_completion_at_once_on_the_same_thread_is_the_answer() {
        let sender = HostSender::new(|r: HostRequest| {
            assert_eq!(r.url.to_str().unwrap(), "http://x/api");
            assert_eq!(r.body, b"{}");
            r.complete(HostReply {
                status: 201,
                retry_after: None,
                body: b"{\"ok\":true}".to_vec(),
            })
        });
        match post(&sender, 1000) {
            Outcome::Answered(r) => assert_eq!(r.status, 201),
            _ => panic!("answered"),
        }
    }

    #[test]
    fn a_later_completion_on_another_thread_is_waited_for() {
        let sender = HostSender::new(|r: HostRequest| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                r.complete(HostReply {
                    status: 0,
                    ..HostReply::default()
                })
            });
        });
        assert!(matches!(post(&sender, 5000), Outcome::NoResponse));
    }

    #[test]
    fn a_request_never_completed_times_out_and_a_late_completion_is_harmless() {
        let held: Arc<Mutex<Vec<HostRequest>>> = Arc::default();
        let keep = held.clone();
        let sender = HostSender::new(move |r| keep.lock().push(r));
        assert!(matches!(post(&sender, 30), Outcome::TimedOut));
        // Still valid after the timeout: readable, then completed late.
        let late = held.lock().pop().unwrap();
        assert_eq!(late.timeout_ms, 30);
        late.complete(HostReply::default());
    }

    #[test]
    fn stopping_ends_the_wait_and_the_answer_after_it_is_ignored() {
        let held: Arc<Mutex<Vec<HostRequest>>> = Arc::default();
        let keep = held.clone();
        let sender = HostSender::new(move |r| keep.lock().push(r));
        let stop = AtomicBool::new(true);
        assert!(matches!(
            post_until(&sender, 60_000, &stop),
            Outcome::Stopped
        ));
        held.lock().pop().unwrap().complete(HostReply {
            status: 200,
            ..HostReply::default()
        });
    }

    #[test]
    fn an_answer_that_comes_after_the_stop_is_ignored_even_while_waiting() {
        // Shutdown returned (the stop is set) while this thread still waited;
        // then the host completes with a success: not taken as delivered.
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let sender = HostSender::new(move |r: HostRequest| {
            flag.store(true, Ordering::Release);
            r.complete(HostReply {
                status: 200,
                ..HostReply::default()
            })
        });
        assert!(matches!(
            post_until(&sender, 60_000, &stop),
            Outcome::Stopped
        ));
    }
}
