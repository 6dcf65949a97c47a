//! Sending one request to the Trodo API, and nothing else: no retries, no
//! queue. Through the built-in HTTP client (the `http` feature), or through
//! the host's own send function when it set one.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::Value;

use crate::diag::Diagnostics;
use crate::wire::header;

#[cfg(feature = "http")]
mod builtin;
pub mod host;

pub use host::{HostReply, HostRequest, HostSender};

/// Bodies larger than this are gzip-compressed (`docs/wire-protocol.md`).
pub const GZIP_ABOVE: usize = 8 * 1024;

/// Largest response body read; Trodo's answers are small.
const MAX_REPLY_BYTES: u64 = 1 << 20;

/// A server's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The JSON body; a body that is not a JSON object reads as `{}`.
    pub body: Value,
    pub retry_after: Option<String>,
}

/// What a delivery thread sends through.
pub struct Transport<'a> {
    how: How,
    api_base: String,
    site_id: String,
    /// For the host's transport (the built-in client's agent sets its own).
    user_agent: String,
    timeout: Duration,
    /// Set when delivery stops: no host's answer is waited for after that.
    stop: &'a AtomicBool,
}

enum How {
    #[cfg(feature = "http")]
    Builtin(builtin::Client),
    Host(HostSender),
    /// Built without the HTTP client and given no send function (init
    /// refuses this; kept so a request fails instead of a panic).
    #[cfg(not(feature = "http"))]
    Nothing,
}

/// Where and how to send, from the delivery configuration.
pub struct Settings<'a> {
    pub api_base: &'a str,
    pub site_id: &'a str,
    pub timeout: Duration,
    pub ca_file: Option<&'a Path>,
    pub proxy: Option<&'a str>,
    pub host: Option<&'a HostSender>,
    pub stop: &'a AtomicBool,
}

impl<'a> Transport<'a> {
    /// Loading the trust store is file I/O: called on the delivery thread.
    pub fn new(settings: Settings<'a>, diag: &Diagnostics) -> Transport<'a> {
        let how = match settings.host {
            Some(send) => How::Host(send.clone()),
            #[cfg(feature = "http")]
            None => How::Builtin(builtin::Client::new(
                settings.api_base,
                settings.timeout,
                settings.ca_file,
                settings.proxy,
                diag,
            )),
            #[cfg(not(feature = "http"))]
            None => {
                let _ = (settings.ca_file, settings.proxy, diag);
                How::Nothing
            }
        };
        Transport {
            how,
            api_base: settings.api_base.to_string(),
            site_id: settings.site_id.to_string(),
            user_agent: crate::wire::user_agent(),
            timeout: settings.timeout,
            stop: settings.stop,
        }
    }

    /// POSTs a JSON `body` to `path`, gzip-compressed when `gzip` and larger
    /// than [`GZIP_ABOVE`]. `Err` is a network error or timeout.
    pub fn post(&self, path: &str, body: Vec<u8>, gzip: bool) -> Result<Reply, String> {
        let url = format!("{}{}", self.api_base, path);
        let gzipped = gzip && body.len() > GZIP_ABOVE;
        let body = match gzipped {
            true => compress(&body).map_err(|e| format!("gzip: {e}"))?,
            false => body,
        };
        let headers = self.headers(gzipped);
        match &self.how {
            #[cfg(feature = "http")]
            How::Builtin(client) => client.post(&url, &headers, &body),
            How::Host(send) => self.post_through(send, url, headers, body),
            #[cfg(not(feature = "http"))]
            How::Nothing => Err("no transport: this build has no HTTP client".into()),
        }
    }

    /// Every request's headers (the user agent aside: the built-in client's
    /// agent sets it).
    fn headers(&self, gzipped: bool) -> Vec<(&'static str, &str)> {
        let mut headers = vec![
            (header::CONTENT_TYPE, header::JSON),
            (header::SITE_ID, self.site_id.as_str()),
        ];
        if gzipped {
            headers.push((header::CONTENT_ENCODING, header::GZIP));
        }
        headers
    }

    fn post_through<'h>(
        &'h self,
        send: &HostSender,
        url: String,
        mut headers: Vec<(&'static str, &'h str)>,
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        headers.push((header::USER_AGENT, self.user_agent.as_str()));
        match host::send(send, url.clone(), headers, body, self.timeout, self.stop)? {
            host::Outcome::Answered(r) => Ok(Reply {
                status: u16::try_from(r.status).unwrap_or(u16::MAX),
                body: match r.body.len() as u64 <= MAX_REPLY_BYTES {
                    true => reply_body(&r.body),
                    false => Value::Object(Default::default()),
                },
                retry_after: r.retry_after,
            }),
            host::Outcome::NoResponse => Err(format!(
                "POST {url}: no response (the host's transport reported status 0)"
            )),
            host::Outcome::TimedOut => Err(format!(
                "POST {url}: the host's transport did not complete within {} ms",
                self.timeout.as_millis()
            )),
            host::Outcome::Stopped => Err(format!(
                "POST {url}: stopped before the host's transport completed"
            )),
        }
    }
}

/// A response body as JSON; one that is not a JSON object reads as `{}`.
fn reply_body(bytes: &[u8]) -> Value {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    }
}

fn compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
}
