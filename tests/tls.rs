//! HTTPS: the server's certificate is verified against the system's trust
//! store plus `ca_file`. A loopback HTTPS server with a certificate from a
//! private CA is accepted only when that CA is given as `ca_file`.

mod common;
mod support;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use trodo::{Client, ErrorKind, Options};

struct TlsServer {
    url: String,
    ca_pem: String,
    paths: Arc<Mutex<Vec<String>>>,
}

fn tls_server() -> TlsServer {
    let certs = support::certs::loopback_certs();
    let config = certs.server;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (config, seen) = (config.clone(), seen.clone());
            std::thread::spawn(move || {
                let Ok(tls) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut reader = BufReader::new(rustls::StreamOwned::new(tls, conn));
                loop {
                    let Some((path, _, _)) = support::read_request(&mut reader) else {
                        return;
                    };
                    seen.lock().unwrap().push(path);
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                    if reader
                        .get_mut()
                        .write_all(reply)
                        .and_then(|_| reader.get_mut().flush())
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    TlsServer {
        url,
        ca_pem: certs.ca_pem,
        paths,
    }
}

#[test]
fn a_private_ca_is_trusted_through_ca_file() {
    let server = tls_server();
    let dir = temp_dir();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let o = Options {
        ca_file: Some(ca_file),
        ..options(&server.url, &dir.join("state"))
    };
    tracks_and_is_delivered(&Client::start(SITE, o).unwrap(), &server, "over_tls");
}

/// Tracks `name` through `c` and checks that the session registration and
/// the event reached `server`.
fn tracks_and_is_delivered(c: &Client, server: &TlsServer, name: &str) {
    c.track(name, None, None).unwrap();
    c.flush(WAIT).unwrap();
    assert_eq!(
        *server.paths.lock().unwrap(),
        ["/api/sdk/track", "/api/events"]
    );
    c.shutdown(WAIT).unwrap();
}

#[test]
fn without_ca_file_an_unknown_ca_is_refused() {
    let server = tls_server();
    let c = start(&server.url, &temp_dir());
    c.track("refused", None, None).unwrap();
    let e = c.flush(Duration::from_millis(500)).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Timeout,
        "certificate errors are retried, never ignored"
    );
    assert!(
        server.paths.lock().unwrap().is_empty(),
        "nothing got through"
    );
    c.shutdown(Duration::ZERO).ok();
}

/// Without `ca_file`, on Linux rustls checks against the system's store,
/// which `SSL_CERT_FILE` names for this process as it does for OpenSSL
/// programs. (On Apple and Windows the platform's own verifier decides,
/// which no test here can run.)
#[cfg(target_os = "linux")]
#[test]
fn without_ca_file_the_systems_store_is_trusted() {
    let server = tls_server();
    let dir = temp_dir();
    let system = dir.join("system.pem");
    std::fs::write(&system, &server.ca_pem).unwrap();
    // The other tests' servers have CAs of their own: this file trusts none
    // of them, so they see no difference.
    std::env::set_var("SSL_CERT_FILE", &system);
    tracks_and_is_delivered(
        &start(&server.url, &dir.join("state")),
        &server,
        "system_store",
    );
}
