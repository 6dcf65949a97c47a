//! Proxies for the built-in HTTP client: the `"proxy"` option (an HTTP
//! proxy, through CONNECT, with credentials sent as Proxy-Authorization; an
//! HTTPS proxy, its certificate from `ca_file`; a SOCKS5 proxy, with and
//! without a user name), the environment's
//! (`HTTP_PROXY`, honouring `NO_PROXY`), and `"proxy": ""` turning the
//! environment's off. The proxies are small ones this test starts on
//! 127.0.0.1, counting what really went through them. One test, in steps:
//! the environment is the process's.
#![cfg(feature = "http")]

mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;
use support::FakeTrodo;
use trodo::{Client, Options};

/// What a proxy saw: one entry per tunnel, the target and the credentials.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, Option<String>)>>);

impl Seen {
    fn tunnels(&self) -> Vec<(String, Option<String>)> {
        self.0.lock().unwrap().clone()
    }
}

/// Copies both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (mut a, mut b) = (a, b);
    let up = thread::spawn(move || {
        let _ = std::io::copy(&mut a, &mut b2);
        let _ = b2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut b, &mut a2);
    let _ = a2.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// Listens on 127.0.0.1, handling each connection on a thread of its own;
/// returns the port.
fn listen(seen: Arc<Seen>, handle: fn(TcpStream, &Seen)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let seen = seen.clone();
            thread::spawn(move || handle(client, &seen));
        }
    });
    port
}

/// An HTTP proxy that tunnels CONNECT requests; returns its port.
fn connect_proxy(seen: Arc<Seen>) -> u16 {
    listen(seen, |client, seen| {
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let mut auth = None;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("proxy-authorization") {
                    auth = Some(value.trim().to_string());
                }
            }
        }
        let mut words = first.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let mut client = client;
        if method != "CONNECT" {
            let _ = client.write_all(b"HTTP/1.1 405 Only CONNECT\r\n\r\n");
            return;
        }
        seen.0.lock().unwrap().push((target.to_string(), auth));
        let upstream = TcpStream::connect(target).unwrap();
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .unwrap();
        pipe(client, upstream);
    })
}

/// An HTTPS proxy: TLS to the proxy (a certificate from a private CA), then
/// CONNECT as above; one thread pumps both ways. Returns its port.
fn tls_connect_proxy(seen: Arc<Seen>, config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let (seen, config) = (seen.clone(), config.clone());
            thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, client);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return, // the handshake failed: not trusted
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                seen.0.lock().unwrap().push((target.clone(), None));
                let mut upstream = TcpStream::connect(&target).unwrap();
                tls.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                tls.flush().unwrap();
                let slice = Some(std::time::Duration::from_millis(5));
                tls.sock.set_read_timeout(slice).unwrap();
                upstream.set_read_timeout(slice).unwrap();
                let mut buf = [0u8; 16384];
                let idle = |e: &std::io::Error| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    )
                };
                loop {
                    match tls.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => upstream.write_all(&buf[..n]).unwrap(),
                        Err(e) if idle(&e) => {}
                        Err(_) => return,
                    }
                    match upstream.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            tls.write_all(&buf[..n]).unwrap();
                            tls.flush().unwrap();
                        }
                        Err(e) if idle(&e) => {}
                        Err(_) => return,
                    }
                }
            });
        }
    });
    port
}

/// A SOCKS5 proxy (RFC 1928; user name and password per RFC 1929 when the
/// client offers them); returns its port.
fn socks5_proxy(seen: Arc<Seen>) -> u16 {
    listen(seen, |client, seen| {
        let mut c = client;
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).unwrap();
        let mut methods = vec![0u8; buf[1] as usize];
        c.read_exact(&mut methods).unwrap();
        let mut user = None;
        if methods.contains(&2) {
            c.write_all(&[5, 2]).unwrap();
            let mut ver_len = [0u8; 2];
            c.read_exact(&mut ver_len).unwrap();
            let mut name = vec![0u8; ver_len[1] as usize];
            c.read_exact(&mut name).unwrap();
            let mut plen = [0u8; 1];
            c.read_exact(&mut plen).unwrap();
            let mut password = vec![0u8; plen[0] as usize];
            c.read_exact(&mut password).unwrap();
            user = Some(format!(
                "{}:{}",
                String::from_utf8_lossy(&name),
                String::from_utf8_lossy(&password)
            ));
            c.write_all(&[1, 0]).unwrap();
        } else {
            c.write_all(&[5, 0]).unwrap();
        }
        let mut head = [0u8; 4];
        c.read_exact(&mut head).unwrap();
        let host = match head[3] {
            1 => {
                let mut ip = [0u8; 4];
                c.read_exact(&mut ip).unwrap();
                std::net::Ipv4Addr::from(ip).to_string()
            }
            3 => {
                let mut len = [0u8; 1];
                c.read_exact(&mut len).unwrap();
                let mut name = vec![0u8; len[0] as usize];
                c.read_exact(&mut name).unwrap();
                String::from_utf8_lossy(&name).into_owned()
            }
            other => panic!("address type {other} not expected here"),
        };
        let mut port = [0u8; 2];
        c.read_exact(&mut port).unwrap();
        let target = format!("{host}:{}", u16::from_be_bytes(port));
        seen.0.lock().unwrap().push((target.clone(), user));
        let upstream = TcpStream::connect(&target).unwrap();
        c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap();
        pipe(c, upstream);
    })
}

/// Starts a client with `proxy` (the option; `None`: absent), tracks one
/// event named `name` and shuts down; the server must have it.
fn send_one(server: &FakeTrodo, proxy: Option<&str>, name: &str) {
    send_one_trusting(server, proxy, None, name)
}

/// As [`send_one`], trusting the CA in `ca_file` too.
fn send_one_trusting(
    server: &FakeTrodo,
    proxy: Option<&str>,
    ca_file: Option<std::path::PathBuf>,
    name: &str,
) {
    let o = Options {
        proxy: proxy.map(str::to_string),
        ca_file,
        ..options(server.url(), &temp_dir())
    };
    let c = Client::start(SITE, o).unwrap();
    c.track(name, None, None).unwrap();
    c.flush(WAIT).unwrap();
    c.shutdown(WAIT).unwrap();
    assert!(
        names(&server.events()).contains(&name.to_string()),
        "{name} arrived"
    );
}

#[test]
fn requests_go_through_the_proxy_asked_for_and_only_then() {
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        std::env::remove_var(var);
    }
    let server = FakeTrodo::start();
    let target = server.url().trim_start_matches("http://").to_string();
    let http_seen = Arc::new(Seen::default());
    let http_port = connect_proxy(http_seen.clone());
    let socks_seen = Arc::new(Seen::default());
    let socks_port = socks5_proxy(socks_seen.clone());

    // No proxy anywhere: straight to the server.
    send_one(&server, None, "direct");
    assert!(http_seen.tunnels().is_empty() && socks_seen.tunnels().is_empty());

    // An HTTP proxy with credentials: a CONNECT tunnel, Proxy-Authorization
    // "Basic base64(ada:secret)".
    let proxy = format!("http://ada:secret@127.0.0.1:{http_port}");
    send_one(&server, Some(&proxy), "via_http_proxy");
    let tunnels = http_seen.tunnels();
    assert!(!tunnels.is_empty(), "went through the HTTP proxy");
    for (to, auth) in &tunnels {
        assert_eq!(to, &target);
        assert_eq!(auth.as_deref(), Some("Basic YWRhOnNlY3JldA=="));
    }

    // SOCKS5, without and with a user name.
    send_one(
        &server,
        Some(&format!("socks5://127.0.0.1:{socks_port}")),
        "via_socks",
    );
    send_one(
        &server,
        Some(&format!("socks5://bob:pw@127.0.0.1:{socks_port}")),
        "via_socks_user",
    );
    let socks = socks_seen.tunnels();
    assert!(socks.iter().all(|(to, _)| to == &target), "{socks:?}");
    assert!(socks.iter().any(|(_, user)| user.is_none()));
    assert!(socks
        .iter()
        .any(|(_, user)| user.as_deref() == Some("bob:pw")));

    // An HTTPS proxy, verified against the trust store plus ca_file (the
    // API itself is plain http here).
    let certs = support::certs::loopback_certs();
    let tls_seen = Arc::new(Seen::default());
    let tls_port = tls_connect_proxy(tls_seen.clone(), certs.server.clone());
    let ca_file = temp_dir().join("ca.pem");
    std::fs::write(&ca_file, &certs.ca_pem).unwrap();
    send_one_trusting(
        &server,
        Some(&format!("https://127.0.0.1:{tls_port}")),
        Some(ca_file),
        "via_https_proxy",
    );
    let tunnels = tls_seen.tunnels();
    assert!(!tunnels.is_empty(), "went through the HTTPS proxy");
    assert!(tunnels.iter().all(|(to, _)| to == &target), "{tunnels:?}");

    // The environment's proxy when the option is absent...
    let before = http_seen.tunnels().len();
    std::env::set_var("HTTP_PROXY", format!("http://127.0.0.1:{http_port}"));
    send_one(&server, None, "via_env_proxy");
    assert!(http_seen.tunnels().len() > before, "HTTP_PROXY was used");

    // ...not for a host NO_PROXY names...
    let before = http_seen.tunnels().len();
    std::env::set_var("NO_PROXY", "127.0.0.1");
    send_one(&server, None, "no_proxy_host");
    assert_eq!(http_seen.tunnels().len(), before, "NO_PROXY was honoured");
    std::env::remove_var("NO_PROXY");

    // ...and not at all with "proxy": "".
    send_one(&server, Some(""), "proxy_off");
    assert_eq!(
        http_seen.tunnels().len(),
        before,
        "\"proxy\": \"\" turned it off"
    );
    std::env::remove_var("HTTP_PROXY");
}

#[test]
fn a_proxy_that_is_not_a_url_is_refused_at_init() {
    for bad in [
        r#"{"proxy": "127.0.0.1:8080"}"#,
        r#"{"proxy": "ftp://h:1"}"#,
        r#"{"proxy": 8080}"#,
    ] {
        let e = Options::from_json(bad).unwrap_err();
        assert_eq!(e.kind, trodo::ErrorKind::InvalidJson, "{bad}");
        assert!(e.message.contains("proxy"), "{}", e.message);
    }
    for good in [
        r#"{"proxy": ""}"#,
        r#"{"proxy": "socks5://u:p@h:1080"}"#,
        r#"{"proxy": "https://h"}"#,
    ] {
        assert!(Options::from_json(good).is_ok(), "{good}");
    }
}
