//! The built-in HTTP client (ureq, rustls): one POST, nothing else. HTTPS is
//! verified by the platform's own verifier (Security.framework on Apple,
//! CryptoAPI on Windows, the system store elsewhere), so corporate CAs and
//! revocation work as in the host's other programs; with a `ca_file`, by
//! the system store plus that file. Proxies: the `"proxy"` option, else the
//! environment.

use std::path::Path;
use std::time::{Duration, Instant};

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

use crate::diag::Diagnostics;
use crate::sync::Mutex;

use super::{reply_body, Reply, MAX_REPLY_BYTES};

pub(super) struct Client {
    agent: ureq::Agent,
    /// A `"proxy"` option ureq could not use: every request fails with it,
    /// rather than bypass the proxy the host asked for.
    broken_proxy: Option<String>,
}

/// Without `ca_file`, the platform's verifier. With one, the system's
/// roots plus those in the file, checked by rustls: ureq gives the platform
/// verifier no extra roots. On iOS, tvOS and watchOS the system's roots
/// cannot be listed, so there `ca_file` is the whole trust (an app that
/// needs both sends through URLSession, see `trodo_set_transport`).
/// Problems are reported. No roots are bundled (they would be a tenth of
/// the library's size): with an empty list, HTTPS cannot be verified, and
/// that is reported once here, then every failed request as usual.
fn root_certs(ca_file: Option<&Path>, diag: &Diagnostics) -> RootCerts {
    #[cfg(any(target_vendor = "apple", windows, target_os = "android"))]
    if ca_file.is_none() {
        return RootCerts::PlatformVerifier;
    }
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
            "no trusted root certificates: the system's store is empty or unreadable and \
             ca_file holds none, so HTTPS servers cannot be verified",
        );
    }
    RootCerts::from(certs)
}

impl Client {
    /// `proxy`: `None` takes the environment's (`HTTPS_PROXY`, `NO_PROXY`...),
    /// `Some("")` none, else that proxy.
    pub(super) fn new(
        api_base: &str,
        timeout: Duration,
        ca_file: Option<&Path>,
        proxy: Option<&str>,
        diag: &Diagnostics,
    ) -> Client {
        let mut broken_proxy = None;
        let proxy = match proxy {
            None => ureq::Proxy::try_from_env(),
            Some("") => None,
            Some(url) => match ureq::Proxy::new(url) {
                Ok(p) => Some(p),
                Err(e) => {
                    let problem = format!("the \"proxy\" option {url:?} cannot be used: {e}");
                    diag.report(problem.clone());
                    broken_proxy = Some(problem);
                    None
                }
            },
        };
        // The trust store is read only when something is verified: an HTTPS
        // API, or an HTTPS proxy (whose certificate the same roots check).
        let https_proxy = proxy
            .as_ref()
            .is_some_and(|p| p.protocol() == ureq::ProxyProtocol::Https);
        let tls = if api_base.starts_with("https://") || https_proxy {
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
            .proxy(proxy)
            .build();
        let agent =
            ureq::Agent::with_parts(config, DefaultConnector::new(), CachedResolver::default());
        Client {
            agent,
            broken_proxy,
        }
    }

    /// POSTs `body` (already compressed when a header says so) to `url`.
    /// `Err` is a network error or timeout.
    pub(super) fn post(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Reply, String> {
        if let Some(problem) = &self.broken_proxy {
            return Err(problem.clone());
        }
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut resp = request.send(body).map_err(|e| format!("POST {url}: {e}"))?;
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
        Ok(Reply {
            status,
            body: reply_body(&bytes),
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
