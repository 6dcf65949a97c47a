//! libtrodo's performance harness: caller cost of the hot calls (through the
//! C ABI), the serde_json parse floor, delivery throughput, and the offline
//! backlog and server mode (8 threads, 10 000 users). Prints one table.
//! Run: `cargo bench --bench calls` (`-- --quick` for a short run,
//! `-- --server-mode` for that part alone). Numbers, not assertions: see
//! BENCHMARKS.md.

use std::ffi::{c_char, CString};
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trodo::ffi::*;

#[path = "../tests/support/mod.rs"]
mod support;

const PROPS: &str = r#"{"plan":"pro","seats":12,"trial":false,"source":"bench","ratio":0.5}"#;

/// A minimal loopback server: counts the events it accepts, answers `{}`.
struct Sink {
    url: String,
    events: Arc<AtomicU64>,
}

fn sink() -> Sink {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let events = Arc::new(AtomicU64::new(0));
    let counter = events.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || serve(conn, &counter));
        }
    });
    Sink { url, events }
}

fn serve(conn: TcpStream, events: &AtomicU64) {
    let _ = conn.set_nodelay(true);
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let Some((path, headers, mut body)) = support::read_request(&mut reader) else {
            return;
        };
        if headers
            .get("content-encoding")
            .is_some_and(|v| v.contains("gzip"))
        {
            let mut plain = Vec::new();
            let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain);
            body = plain;
        }
        if path.starts_with("/api/events") {
            // str's searcher, not a byte-by-byte window scan: the sink shares
            // the machine with what it measures.
            let n =
                std::str::from_utf8(&body).map_or(0, |text| text.matches("\"insert_id\"").count());
            events.fetch_add(n as u64, Ordering::Relaxed);
        }
        let reply =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if writer.write_all(reply).is_err() {
            return;
        }
    }
}

/// TRODO_OK, whether `TrodoStatus` is an `int32_t` (now) or an enum (the
/// base of a comparison may predate that).
#[allow(clippy::unnecessary_cast)]
fn assert_ok(status: TrodoStatus) {
    assert_eq!(status as i32, 0, "{}", status as i32);
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("trodo-bench-{name}-{}", trodo::util::new_id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn init(api: &str, dir: &Path, extra: &str) {
    let opts = format!(
        r#"{{"api_base":"{api}","storage_dir":"{}"{extra}}}"#,
        dir.display()
    );
    let site = c("bench-site");
    let opts = c(&opts);
    // SAFETY (this and every libtrodo call in this file): NUL-terminated
    // strings that outlive the call, and handles from their `_new` used
    // before their `_free`.
    let status = unsafe { trodo_init(site.as_ptr(), opts.as_ptr()) };
    assert_ok(status);
}

fn shutdown(ms: u32) {
    let _ = trodo_shutdown(ms);
}

/// Median, p99, p99.9 of per-call nanoseconds.
fn percentiles(mut ns: Vec<u64>) -> (f64, f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    (at(0.5), at(0.99), at(0.999))
}

/// One measured call; its argument varies the ids used.
type Op = fn(usize) -> TrodoStatus;

/// Times `calls` calls of `op` on each of `threads` threads.
fn caller_cost(threads: usize, calls: usize, op: Op) -> (f64, f64, f64) {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut ns = Vec::with_capacity(calls);
                for i in 0..calls {
                    let start = Instant::now();
                    let status = op(i + t * calls);
                    ns.push(start.elapsed().as_nanos() as u64);
                    assert_ok(status);
                }
                ns
            })
        })
        .collect();
    percentiles(
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect(),
    )
}

struct Strings {
    event: CString,
    props: CString,
    key: CString,
    ids: Vec<CString>,
}

static STRINGS: std::sync::OnceLock<Strings> = std::sync::OnceLock::new();
static GROUP: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn s() -> &'static Strings {
    STRINGS.get_or_init(|| Strings {
        event: c("button_clicked"),
        props: c(PROPS),
        key: c("active_team"),
        ids: (0..16).map(|i| c(&format!("team-{i}"))).collect(),
    })
}

fn op_track(_: usize) -> TrodoStatus {
    unsafe { trodo_track(s().event.as_ptr(), s().props.as_ptr()) }
}

fn op_set_group(i: usize) -> TrodoStatus {
    unsafe { trodo_set_group(s().key.as_ptr(), s().ids[i % 16].as_ptr()) }
}

fn op_add_group(i: usize) -> TrodoStatus {
    unsafe { trodo_add_group(s().key.as_ptr(), s().ids[i % 16].as_ptr()) }
}

fn op_group_set(_: usize) -> TrodoStatus {
    let g = *GROUP.get().unwrap() as *const TrodoGroup;
    unsafe { trodo_group_set(g, s().props.as_ptr()) }
}

fn floor(calls: usize) -> (f64, f64, f64) {
    let mut ns = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        let v: serde_json::Value = serde_json::from_str(std::hint::black_box(PROPS)).unwrap();
        std::hint::black_box(v);
        ns.push(start.elapsed().as_nanos() as u64);
    }
    percentiles(ns)
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A loopback address where nothing listens: the discard port, which no
/// test server can be given (they bind port 0, and get a port from the
/// system's ephemeral range). A port freed by a listener just dropped could
/// be given to another test's server meanwhile, which then received what
/// was meant to find no one.
fn dead_address() -> String {
    "http://127.0.0.1:9".to_string()
}

/// 8 threads tracking through `TrodoUser` handles for 10 000 users (each
/// thread starting at its own offset, round robin), delivery running: the
/// aggregate rate, per-call percentiles, and when the server has them all.
fn server_mode(scale: usize, row: &mut impl FnMut(&str, String)) {
    const THREADS: usize = 8;
    const USERS: usize = 10_000;
    let per_thread = 100_000 / scale;
    let server = sink();
    let dir = temp_dir("server-mode");
    init(
        &server.url,
        &dir,
        r#","max_queue_items":10000000,"max_queue_bytes":4000000000"#,
    );
    let users: Vec<usize> = (0..USERS)
        .map(|i| {
            let id = c(&format!("user-{i}"));
            let groups = c(&format!(r#"{{"active_team":["team-{}"]}}"#, i % 100));
            let u = unsafe { trodo_user_new(id.as_ptr(), groups.as_ptr()) };
            assert!(!u.is_null());
            u as usize
        })
        .collect();
    let users = Arc::new(users);
    let barrier = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (users, barrier) = (users.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut ns = Vec::with_capacity(per_thread);
                barrier.wait();
                for i in 0..per_thread {
                    let u = users[(t * USERS / THREADS + i) % USERS] as *const TrodoUser;
                    let start = Instant::now();
                    let status =
                        unsafe { trodo_user_track(u, s().event.as_ptr(), s().props.as_ptr()) };
                    ns.push(start.elapsed().as_nanos() as u64);
                    assert_ok(status);
                }
                ns
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let ns: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let callers = start.elapsed().as_secs_f64();
    let total = (THREADS * per_thread) as u64;
    assert_ok(trodo_flush(600_000));
    while server.events.load(Ordering::Relaxed) < total {
        std::thread::sleep(Duration::from_millis(1));
    }
    let delivered = start.elapsed().as_secs_f64();
    let (m, p99, p999) = percentiles(ns);
    row(
        &format!("server mode: {THREADS} threads, {USERS} users, trodo_user_track (calls/s)"),
        format!("{:.0}", total as f64 / callers),
    );
    row(
        "server mode: trodo_user_track per call (µs)",
        format!("median {m:.2}  p99 {p99:.2}  p99.9 {p999:.2}"),
    );
    row(
        &format!("server mode: all {total} events at the server (s)"),
        format!("{delivered:.2}"),
    );
    for u in users.iter() {
        unsafe { trodo_user_free(*u as *mut TrodoUser) };
    }
    shutdown(60_000);
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let calls = 200_000 / scale;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |name: &str, value: String| {
        println!("{name:<58} {value}");
        rows.push((name.into(), value));
    };
    if std::env::args().any(|a| a == "--server-mode") {
        return server_mode(scale, &mut row);
    }
    // One part alone, in a fresh process: --calls, --throughput, --backlog.
    let only = |flag: &str| std::env::args().any(|a| a == flag);
    if only("--calls") {
        return caller_costs(calls, &mut row);
    }
    if only("--backlog") {
        return backlog(scale, &mut row);
    }
    let only_throughput = only("--throughput");

    if !only_throughput {
        caller_costs(calls, &mut row);
        server_mode(scale, &mut row);
    }
    throughput(scale, &mut row);
    if only_throughput {
        return;
    }
    backlog(scale, &mut row);
    let _: *const c_char = trodo_version();
}

/// 1 + 2: caller cost while delivery to a loopback server runs, and the floor.
fn caller_costs(calls: usize, row: &mut impl FnMut(&str, String)) {
    let server = sink();
    let dir = temp_dir("calls");
    init(&server.url, &dir, "");
    let group = unsafe { trodo_get_group(c("company").as_ptr(), c("acme").as_ptr()) };
    GROUP.set(group as usize).unwrap();
    let (fm, f99, f999) = floor(calls);
    row(
        "floor: serde_json parse of the properties (µs)",
        format!("median {fm:.2}  p99 {f99:.2}  p99.9 {f999:.2}"),
    );
    let ops: [(&str, Op); 4] = [
        ("trodo_track (5 properties)", op_track),
        ("trodo_set_group", op_set_group),
        ("trodo_add_group", op_add_group),
        ("trodo_group_set", op_group_set),
    ];
    for threads in [1, 4] {
        for (name, op) in ops {
            let (m, p99, p999) = caller_cost(threads, calls / threads, op);
            let ratio = if name.starts_with("trodo_track") {
                format!("  ÷floor {:.1}", m / fm)
            } else {
                String::new()
            };
            row(
                &format!("{name}, {threads} thread(s) (µs)"),
                format!("median {m:.2}  p99 {p99:.2}  p99.9 {p999:.2}{ratio}"),
            );
        }
        let _ = trodo_flush(120_000);
    }
    unsafe { trodo_group_free(group) };
    shutdown(60_000);
}

/// Whether the library measured has a host transport: the base of a
/// comparison may predate it (scripts/bench-compare.sh then builds this
/// harness with the cfg, and that row is left out).
const HOST_TRANSPORT: bool = !cfg!(trodo_bench_no_host_transport);

/// Puts `send_at_once` in use, or (None) the built-in client again.
#[cfg(not(trodo_bench_no_host_transport))]
fn set_host_transport(on: bool) {
    let send: TrodoSendFn = if on { Some(send_at_once) } else { None };
    // SAFETY: a send function of the right signature, or NULL; not initialized.
    let status = unsafe { trodo_set_transport(send, std::ptr::null_mut()) };
    assert_ok(status);
}

#[cfg(trodo_bench_no_host_transport)]
fn set_host_transport(_: bool) {
    unreachable!("no host transport in this library")
}

/// A host transport that answers at once: it POSTs the request to the
/// sink itself, on one kept-alive connection, and completes it inside the
/// send call (what a C transport with a blocking HTTP client does).
#[cfg(not(trodo_bench_no_host_transport))]
unsafe extern "C" fn send_at_once(request: *mut TrodoRequest, _user_data: *mut std::ffi::c_void) {
    thread_local! {
        static CONN: std::cell::RefCell<Option<(String, TcpStream, BufReader<TcpStream>)>> =
            const { std::cell::RefCell::new(None) };
    }
    // SAFETY (this function): `request` is live until completed below.
    let url = unsafe { std::ffi::CStr::from_ptr(trodo_request_url(request)) }
        .to_str()
        .unwrap()
        .to_string();
    let (host, path) = url.trim_start_matches("http://").split_once('/').unwrap();
    let mut head = format!("POST /{path} HTTP/1.1\r\nHost: {host}\r\n");
    for i in 0..unsafe { trodo_request_header_count(request) } {
        let name = unsafe { std::ffi::CStr::from_ptr(trodo_request_header_name(request, i)) };
        let value = unsafe { std::ffi::CStr::from_ptr(trodo_request_header_value(request, i)) };
        head += &format!(
            "{}: {}\r\n",
            name.to_str().unwrap(),
            value.to_str().unwrap()
        );
    }
    let mut length = 0usize;
    let body =
        unsafe { std::slice::from_raw_parts(trodo_request_body(request, &mut length), length) };
    head += &format!("Content-Length: {length}\r\n\r\n");
    let status = CONN.with(|conn| {
        let mut conn = conn.borrow_mut();
        if conn.as_ref().is_none_or(|(h, _, _)| h != host) {
            let stream = TcpStream::connect(host).unwrap();
            stream.set_nodelay(true).unwrap();
            let reader = BufReader::new(stream.try_clone().unwrap());
            *conn = Some((host.to_string(), stream, reader));
        }
        let (_, stream, reader) = conn.as_mut().unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        // The status line parses as a request line: its "path" is the status.
        let (code, _, _) = support::read_request(reader).unwrap();
        code.parse::<i32>().unwrap()
    });
    let answer = b"{}";
    unsafe {
        trodo_request_complete(
            request,
            status,
            std::ptr::null(),
            answer.as_ptr(),
            answer.len(),
        )
    };
}

/// 3: delivery throughput, gzip on and off, and through a host transport.
fn throughput(scale: usize, row: &mut impl FnMut(&str, String)) {
    for (gzip, host) in [(true, false), (false, false), (true, true)] {
        if host && !HOST_TRANSPORT {
            continue;
        }
        let server = sink();
        let dir = temp_dir("throughput");
        if host {
            set_host_transport(true);
        }
        init(
            &server.url,
            &dir,
            &format!(r#","gzip":{gzip},"max_queue_items":1000000,"max_queue_bytes":1000000000"#),
        );
        let n = 200_000 / scale as u64;
        let start = Instant::now();
        for _ in 0..n {
            op_track(0);
        }
        assert_ok(trodo_flush(300_000));
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.events.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let got = server.events.load(Ordering::Relaxed);
        if got != n {
            let st = trodo_get_stats();
            let text = unsafe { std::ffi::CStr::from_ptr(st) }
                .to_string_lossy()
                .into_owned();
            unsafe { trodo_string_free(st) };
            panic!("the server counted {got} of {n} events; stats: {text}");
        }
        let secs = start.elapsed().as_secs_f64();
        let how = if host { ", host transport" } else { "" };
        row(
            &format!("delivery throughput, gzip {gzip}{how} (events/s)"),
            format!("{:.0}", n as f64 / secs),
        );
        shutdown(10_000);
        if host {
            set_host_transport(false);
        }
    }
}

/// 4: offline backlog: memory and disk per event, then init time.
fn backlog(scale: usize, row: &mut impl FnMut(&str, String)) {
    let backlog = 1_000_000 / scale as u64;
    let dir = temp_dir("backlog");
    let dead = dead_address();
    let rss_before = rss_bytes();
    init(
        &dead,
        &dir,
        r#","max_queue_items":2000000,"max_queue_bytes":1000000000"#,
    );
    for _ in 0..backlog {
        op_track(0);
    }
    std::thread::sleep(Duration::from_millis(500)); // the writer's last batch
    let rss = rss_bytes().saturating_sub(rss_before);
    // The queue segments (one here: this process's).
    let disk: u64 = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    row(
        &format!("backlog of {backlog} events: resident memory (MiB)"),
        format!("{:.1}", rss as f64 / 1048576.0),
    );
    row(
        "backlog: disk bytes per event",
        format!("{:.0}", disk as f64 / backlog as f64),
    );
    shutdown(0);

    let n = 100_000 / scale;
    let dir = temp_dir("init");
    init(&dead, &dir, "");
    for _ in 0..n {
        op_track(0);
    }
    shutdown(0);
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        init(&dead, &dir, "");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        shutdown(0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    row(
        &format!("trodo_init with {n} events queued on disk (ms, median of 5)"),
        format!("{:.1}", times[2]),
    );
}
