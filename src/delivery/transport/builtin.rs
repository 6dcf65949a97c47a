//! One HTTP POST to the Trodo API, and nothing else: no retries, no queue.
//! HTTPS is verified against the system's trust store (so corporate CAs
//! work) plus an optional `ca_file`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::sync::Mutex;

use crate::diag::Diagnostics;
use crate::wire::header;

/// Bodies larger than this are gzip-compressed (`docs/wire-protocol.md`).
pub const GZIP_ABOVE: usize = 8 * 1024;

/// A server's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The JSON body; a body that is not a JSON object reads as `{}`.
    pub body: Value,
    pub retry_after: Option<String>,
}

/// Largest response body read; Trodo's answers are small.
const MAX_REPLY_BYTES: u64 = 1 << 20;

pub struct Transport {
    agent: ureq::Agent,
    api_base: String,
    site_id: String,
}

/// The system's roots plus those in `ca_file`; problems are reported. No
/// roots are bundled (they would be a tenth of the library's size): with an
/// empty system store and no `ca_file`, HTTPS cannot be verified, and that
/// is reported once here, then every failed request as usual.
fn root_certs(ca_file: Option<&Path>, diag: &Diagnostics) -> RootCerts {
    let native = rustls_native_certs::load_native_certs();
    let mut certs: Vec<Certificate<'static>> = native
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if let Some(path) = ca_file {
        match std::fs::read(path) {
            Ok(pem) => {
                let before = certs.len();
                for item in ureq::tls::parse_pem(&pem) {
                    if let Ok(PemItem::Certificate(c)) = item {
                        certs.push(c);
                    }
                }
                if certs.len() == before {
                    diag.report(format!(
                        "ca_file {}: no PEM certificate found",
                        path.display()
                    ));
                }
            }
            Err(e) => diag.report(format!("ca_file {} cannot be read: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        diag.report(
            "no trusted root certificates: the system's store is empty or unreadable and no \
             ca_file was given, so HTTPS servers cannot be verified (install the system's CA \
             certificates, or pass \"ca_file\")",
        );
    }
    RootCerts::from(certs)
}

impl Transport {
    pub fn new(
        api_base: &str,
        site_id: &str,
        timeout: Duration,
        ca_file: Option<&Path>,
        diag: &Diagnostics,
    ) -> Transport {
        let tls = if api_base.starts_with("https://") {
            TlsConfig::builder()
                .root_certs(root_certs(ca_file, diag))
                .build()
        } else {
            TlsConfig::default()
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(crate::wire::user_agent())
            .tls_config(tls)
            .build();
        let agent =
            ureq::Agent::with_parts(config, DefaultConnector::new(), CachedResolver::default());
        Transport {
            agent,
            api_base: api_base.to_string(),
            site_id: site_id.to_string(),
        }
    }

    /// POSTs a JSON `body` to `path`, gzip-compressed when `gzip` and larger
    /// than [`GZIP_ABOVE`]. `Err` is a network error or timeout.
    pub fn post(&self, path: &str, body: Vec<u8>, gzip: bool) -> Result<Reply, String> {
        let url = format!("{}{}", self.api_base, path);
        let mut request = self
            .agent
            .post(&url)
            .header(header::CONTENT_TYPE, header::JSON)
            .header(header::SITE_ID, &self.site_id);
        let body = if gzip && body.len() > GZIP_ABOVE {
            request = request.header(header::CONTENT_ENCODING, header::GZIP);
            compress(&body).map_err(|e| format!("gzip: {e}"))?
        } else {
            body
        };
        let mut resp = request
            .send(&body[..])
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .unwrap_or_default();
        let body = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::Object(Default::default()),
        };
        Ok(Reply {
            status,
            body,
            retry_after,
        })
    }
}

/// How long a looked-up address is used before it is looked up again.
const RESOLVE_TTL: Duration = Duration::from_secs(60);

/// ureq (3.5) looks the host up before every request, even one that then
/// reuses a pooled connection, and with a timeout set it does so on a new
/// thread: a thread per request. One lookup a minute serves as well.
#[derive(Debug, Default)]
struct CachedResolver {
    inner: DefaultResolver,
    /// (scheme and authority, when looked up, the addresses).
    last: Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachedResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        if let Some((k, at, addrs)) = &*self.last.lock() {
            if *k == key && at.elapsed() < RESOLVE_TTL {
                return Ok(addrs.clone());
            }
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        *self.last.lock() = Some((key, Instant::now(), addrs.clone()));
        Ok(addrs)
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
