//! A loopback fake Trodo server for tests (and the demo): it records every
//! request (path, headers, parsed body), keeps server-side memberships per
//! user so identify can answer with `group_memberships`, and can be scripted
//! to fail or to answer slowly. Paths are written here as the spec spells
//! them, independently of the library's own constants.
#![allow(dead_code)]

pub mod certs;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The body, gunzipped when it came with `Content-Encoding: gzip`.
    pub body: Value,
    /// Bytes on the wire (compressed size when gzipped).
    pub wire_len: usize,
    /// Whether the server answered it with 2xx.
    pub accepted: bool,
}

/// A scripted answer for the next request.
#[derive(Debug, Clone)]
pub enum Fault {
    Status(u16),
    /// A status with a `Retry-After` header.
    RetryAfter(u16, String),
    /// Close the connection without answering.
    Reset,
    /// Answer 200, but only after this long.
    Slow(Duration),
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// user id → group key → ids
    memberships: HashMap<String, BTreeMap<String, Vec<String>>>,
    /// Answers for the next requests, before going back to 200.
    script: VecDeque<Fault>,
    identify_delay: Duration,
    /// identifyId → the newDistinctId to answer with.
    new_distinct_ids: HashMap<String, String>,
    /// identifyId → a raw group_memberships value to answer with.
    raw_memberships: HashMap<String, Value>,
    log: Option<File>,
}

/// The event bodies in accepted `/api/events` and `/api/events/bulk` requests.
fn events_in(requests: &[Recorded]) -> Vec<Value> {
    let mut out = Vec::new();
    for r in requests.iter().filter(|r| r.accepted) {
        match r.path.as_str() {
            "/api/events" => out.push(r.body.clone()),
            "/api/events/bulk" => {
                out.extend(r.body["events"].as_array().cloned().unwrap_or_default())
            }
            _ => {}
        }
    }
    out
}

pub struct FakeTrodo {
    addr: String,
    state: Arc<(Mutex<State>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl FakeTrodo {
    pub fn start() -> FakeTrodo {
        Self::start_with_log(None)
    }

    /// Also appends each request to `log` as one line of canonical JSON
    /// (`{"body":...,"path":...}`, keys sorted) before answering it.
    pub fn start_with_log(log: Option<PathBuf>) -> FakeTrodo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        if let Some(p) = log {
            state.0.lock().unwrap().log = Some(File::create(p).expect("create server log"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s = s.clone();
                    std::thread::spawn(move || serve(conn, &s));
                }
            }
        });
        FakeTrodo { addr, state, stop }
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.addr
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.0.lock().unwrap().requests.clone()
    }

    pub fn to_path(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Event bodies received on `/api/events`, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        events_in(&self.state.0.lock().unwrap().requests)
    }

    pub fn event(&self, name: &str) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event_name"] == name)
            .unwrap_or_else(|| panic!("no event {name:?} received"))
    }

    /// Waits until at least `n` requests have arrived.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |requests| requests.len() >= n)
    }

    /// Waits until at least `n` events have been accepted.
    pub fn wait_for_events(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |requests| events_in(requests).len() >= n)
    }

    /// Waits until an event of each name in `names` has arrived.
    pub fn wait_for_names(&self, names: &[String], timeout: Duration) -> bool {
        self.wait_until(timeout, |requests| {
            let got: std::collections::HashSet<Value> = events_in(requests)
                .into_iter()
                .map(|e| e["event_name"].clone())
                .collect();
            names.iter().all(|n| got.contains(&Value::from(n.as_str())))
        })
    }

    /// Waits until `done` holds for the requests received; false on timeout.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&[Recorded]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap();
        while !done(&g.requests) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = cv.wait_timeout(g, left).unwrap().0;
        }
        true
    }

    /// Answers the next requests with these statuses, then 200 again.
    pub fn script(&self, statuses: &[u16]) {
        self.script_faults(statuses.iter().map(|s| Fault::Status(*s)));
    }

    pub fn script_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.0.lock().unwrap().script.extend(faults);
    }

    /// Forgets the scripted answers not used yet: 200 from now on.
    pub fn clear_script(&self) {
        self.state.0.lock().unwrap().script.clear();
    }

    /// Scripted answers not used yet.
    pub fn script_left(&self) -> usize {
        self.state.0.lock().unwrap().script.len()
    }

    pub fn set_identify_delay(&self, d: Duration) {
        self.state.0.lock().unwrap().identify_delay = d;
    }

    pub fn answer_new_distinct_id(&self, identify_id: &str, new_id: &str) {
        self.state
            .0
            .lock()
            .unwrap()
            .new_distinct_ids
            .insert(identify_id.into(), new_id.into());
    }

    pub fn answer_raw_memberships(&self, identify_id: &str, value: Value) {
        self.state
            .0
            .lock()
            .unwrap()
            .raw_memberships
            .insert(identify_id.into(), value);
    }

    /// The server's memberships for a user.
    pub fn memberships_of(&self, user_id: &str) -> Value {
        let g = self.state.0.lock().unwrap();
        json!(g.memberships.get(user_id).cloned().unwrap_or_default())
    }

    pub fn seed_memberships(&self, user_id: &str, key: &str, ids: &[&str]) {
        let mut g = self.state.0.lock().unwrap();
        let m = g.memberships.entry(user_id.into()).or_default();
        m.insert(key.into(), ids.iter().map(|s| s.to_string()).collect());
    }
}

impl Drop for FakeTrodo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr.trim_start_matches("http://"));
    }
}

/// One HTTP/1.1 request: path, headers (names in lower case) and the raw
/// body. `None` at the end of the connection. Shared by every loopback
/// server in the tests and benchmarks.
pub fn read_request(
    reader: &mut impl BufRead,
) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((path, headers, body))
}

fn serve(conn: TcpStream, state: &Arc<(Mutex<State>, Condvar)>) {
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    loop {
        let Some((path, headers, mut raw)) = read_request(&mut reader) else {
            return;
        };
        let wire_len = raw.len();
        if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
            let mut plain = Vec::new();
            let _ = flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut plain);
            raw = plain;
        }
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let rec = Recorded {
            path,
            headers,
            body,
            wire_len,
            accepted: false,
        };
        let Some((status, extra, answer, delay)) = respond(state, rec) else {
            return; // a scripted connection reset
        };
        std::thread::sleep(delay);
        let text = answer.to_string();
        let reply = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{text}",
            if status < 300 { "OK" } else { "Error" },
            text.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Records the request, applies it to the server-side memberships and
/// decides the answer: (status, extra header lines, body, delay), or `None`
/// to drop the connection.
fn respond(
    state: &Arc<(Mutex<State>, Condvar)>,
    mut rec: Recorded,
) -> Option<(u16, String, Value, Duration)> {
    let (m, cv) = &**state;
    let mut g = m.lock().unwrap();
    let s = &mut *g;
    let fault = s.script.pop_front();
    let (status, extra, slow) = match &fault {
        None => (200, String::new(), Duration::ZERO),
        Some(Fault::Status(code)) => (*code, String::new(), Duration::ZERO),
        Some(Fault::RetryAfter(code, after)) => {
            (*code, format!("Retry-After: {after}\r\n"), Duration::ZERO)
        }
        Some(Fault::Slow(d)) => (200, String::new(), *d),
        Some(Fault::Reset) => (0, String::new(), Duration::ZERO),
    };
    rec.accepted = (200..300).contains(&status);
    if rec.accepted {
        if let Some(log) = s.log.as_mut() {
            // A bulk request is logged one event per line.
            let lines: Vec<Value> = match rec.body["events"].as_array() {
                Some(events) if rec.path == "/api/events/bulk" => events.clone(),
                _ => vec![rec.body.clone()],
            };
            for body in lines {
                let _ = writeln!(log, "{}", json!({"path": rec.path, "body": body}));
            }
            let _ = log.flush();
        }
    }
    let body = rec.body.clone();
    let path = rec.path.clone();
    s.requests.push(rec);
    cv.notify_all();
    if status == 0 {
        return None;
    }
    if status != 200 {
        return Some((status, extra, json!({"error": "scripted"}), Duration::ZERO));
    }
    let user = body["userId"].as_str().unwrap_or("").to_string();
    let key = body["groupKey"].as_str().unwrap_or("").to_string();
    let ids: Vec<String> = match &body["groupId"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => vec![],
    };
    match path.as_str() {
        "/api/sdk/groups/set_group" | "/api/sdk/groups/add_group" => {
            // Both attach: set_group never removes server-side memberships.
            let list = s
                .memberships
                .entry(user)
                .or_default()
                .entry(key)
                .or_default();
            for id in ids {
                if !list.contains(&id) {
                    list.push(id);
                }
            }
        }
        "/api/sdk/groups/remove_group" => {
            if let Some(list) = s.memberships.get_mut(&user).and_then(|m| m.get_mut(&key)) {
                list.retain(|x| !ids.contains(x));
            }
        }
        "/api/sdk/identify" => {
            let who = body["identifyId"].as_str().unwrap_or("").to_string();
            let mut answer = json!({});
            let memberships = s
                .raw_memberships
                .get(&who)
                .cloned()
                .unwrap_or_else(|| json!(s.memberships.get(&who).cloned().unwrap_or_default()));
            answer["group_memberships"] = memberships;
            if let Some(new_id) = s.new_distinct_ids.get(&who) {
                answer["newDistinctId"] = json!(new_id);
            }
            return Some((200, extra, answer, s.identify_delay.max(slow)));
        }
        _ => {}
    }
    Some((200, extra, json!({"ok": true}), slow))
}
