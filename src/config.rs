//! `trodo_init` options: strict parsing (an unknown key or a wrong type is an
//! error, so a typo is never silently ignored) and the defaults of `docs/c-conventions.md`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::delivery::policy::RetryPolicy;
use crate::error::{Error, Result};

pub const DEFAULT_API_BASE: &str = "https://sdkapi.trodo.ai";

/// When accepted state must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Within `persist_interval`, written by a background thread.
    Batched,
    /// Before the call returns, on the caller's thread (the caller asked for it).
    Sync,
}

/// Everything `trodo_init` can be told, with defaults.
#[derive(Debug, Clone)]
pub struct Options {
    pub api_base: String,
    /// `None`: the platform's per-user data directory, see [`default_storage_dir`].
    pub storage_dir: Option<PathBuf>,
    /// An app container shared with app extensions (an Apple App Group's):
    /// state lives in its `Library/Application Support/trodo/<site id>`.
    pub app_group_dir: Option<PathBuf>,
    pub flush_at: u32,
    pub flush_interval: Duration,
    pub timeout: Duration,
    pub max_queue_items: u64,
    pub max_queue_bytes: u64,
    pub durability: Durability,
    pub persist_interval: Duration,
    pub gzip: bool,
    pub app_version: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub debug: bool,
    /// Delivery lanes for the per-user (server mode) calls: a user's requests
    /// always take the same lane, in order; different users' travel in parallel.
    pub user_lanes: u32,
    /// Not settable from JSON: Rust callers and tests may shorten the waits.
    pub retry: RetryPolicy,
    /// Not settable from JSON: bodies of queued requests held in memory; the
    /// rest of a backlog is read back from the queue file as this drains.
    pub memory_queue_bytes: u64,
    /// Not settable from JSON: how many users' server-session registrations
    /// a client remembers (least recently used forgotten first).
    pub remembered_users: usize,
    /// The built-in client's proxy (`"http://..."`, `"https://..."`,
    /// `"socks5://..."`, credentials allowed): `None` takes the environment's
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`), `""` none.
    pub proxy: Option<String>,
    /// Not settable from JSON: the host's send function in place of the
    /// built-in HTTP client (`trodo_set_transport`).
    pub transport: Option<crate::delivery::transport::HostSender>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            api_base: DEFAULT_API_BASE.to_string(),
            storage_dir: None,
            app_group_dir: None,
            flush_at: 50,
            flush_interval: Duration::from_millis(2000),
            timeout: Duration::from_millis(10_000),
            max_queue_items: 100_000,
            max_queue_bytes: 64 * 1024 * 1024,
            durability: Durability::Batched,
            persist_interval: Duration::from_millis(100),
            gzip: true,
            app_version: None,
            ca_file: None,
            debug: false,
            user_lanes: DEFAULT_USER_LANES,
            retry: RetryPolicy::default(),
            memory_queue_bytes: 4 * 1024 * 1024,
            remembered_users: DEFAULT_REMEMBERED_USERS,
            proxy: None,
            transport: None,
        }
    }
}

impl Options {
    /// Parses the `options_json` object of `trodo_init`. Every problem is
    /// `InvalidJson` with a message naming the key.
    pub fn from_json(text: &str) -> Result<Options> {
        Self::from_map(&crate::json::object(text, "options_json")?)
    }

    pub fn from_map(map: &Map<String, Value>) -> Result<Options> {
        let mut o = Options::default();
        for (key, value) in map {
            match key.as_str() {
                "api_base" => o.api_base = api_base(value)?,
                "storage_dir" => o.storage_dir = opt_string(key, value)?.map(PathBuf::from),
                "app_group_dir" => o.app_group_dir = opt_string(key, value)?.map(PathBuf::from),
                "flush_at" => o.flush_at = positive_u32(key, value)?,
                "flush_interval_ms" => o.flush_interval = millis(key, value)?,
                "timeout_ms" => o.timeout = millis(key, value)?,
                "max_queue_items" => o.max_queue_items = positive_u64(key, value)?,
                "max_queue_bytes" => o.max_queue_bytes = positive_u64(key, value)?,
                "durability" => {
                    o.durability = match value.as_str() {
                        Some("batched") => Durability::Batched,
                        Some("sync") => Durability::Sync,
                        _ => return Err(wrong(key, "\"batched\" or \"sync\"", value)),
                    }
                }
                "persist_interval_ms" => o.persist_interval = millis(key, value)?,
                "gzip" => o.gzip = boolean(key, value)?,
                "app_version" => o.app_version = opt_string(key, value)?,
                "ca_file" => o.ca_file = opt_string(key, value)?.map(PathBuf::from),
                "proxy" => o.proxy = Some(proxy(value)?),
                "debug" => o.debug = boolean(key, value)?,
                "user_lanes" => {
                    o.user_lanes = match value.as_u64() {
                        Some(n @ 1..=MAX_USER_LANES) => n as u32,
                        _ => return Err(wrong(key, "an integer from 1 to 16", value)),
                    }
                }
                _ => {
                    return Err(Error::invalid_json(format!(
                        "options_json has unknown key \"{key}\"; known keys: {}",
                        KNOWN_KEYS.join(", ")
                    )))
                }
            }
        }
        if o.storage_dir.is_some() && o.app_group_dir.is_some() {
            return Err(Error::invalid_json(
                "options_json may give \"storage_dir\" or \"app_group_dir\", not both",
            ));
        }
        Ok(o)
    }

    /// The storage directory these options name for `site_id`, made
    /// absolute: its files are opened and renamed by path for the client's
    /// whole life, and a host that changes its working directory meanwhile
    /// must not move them.
    pub fn storage_dir_for(&self, site_id: &str) -> Result<PathBuf> {
        let dir = match (&self.storage_dir, &self.app_group_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(group)) => site_dir(
                crate::platform::storage_dir::application_support(group),
                site_id,
            ),
            (None, None) => default_storage_dir(site_id)?,
        };
        std::path::absolute(&dir).map_err(|e| {
            Error::new(
                crate::error::ErrorKind::Storage,
                format!("storage: {} cannot be made absolute: {e}", dir.display()),
            )
        })
    }
}

pub const DEFAULT_USER_LANES: u32 = 4;
/// Server-session registrations remembered per client (10 000 users, as the
/// official server SDK keeps); a user evicted is registered again.
pub const DEFAULT_REMEMBERED_USERS: usize = 10_000;
const MAX_USER_LANES: u64 = 16;

const KNOWN_KEYS: [&str; 16] = [
    "api_base",
    "storage_dir",
    "app_group_dir",
    "flush_at",
    "flush_interval_ms",
    "timeout_ms",
    "max_queue_items",
    "max_queue_bytes",
    "durability",
    "persist_interval_ms",
    "gzip",
    "app_version",
    "ca_file",
    "proxy",
    "debug",
    "user_lanes",
];

/// `"proxy"`: `""` (none), or `scheme://[user:password@]host[:port]` with
/// an http, https or socks5 scheme.
fn proxy(value: &Value) -> Result<String> {
    let text = value
        .as_str()
        .ok_or_else(|| wrong("proxy", "a string", value))?;
    if text.is_empty() {
        return Ok(String::new());
    }
    let host = ["http://", "https://", "socks5://", "socks5h://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
        .map(|rest| {
            rest.rsplit('@')
                .next()
                .unwrap_or(rest)
                .trim_end_matches('/')
        })
        .filter(|host| !host.is_empty() && !host.contains(['/', ' ']));
    match host {
        Some(_) => Ok(text.to_string()),
        None => Err(wrong(
            "proxy",
            "\"\" or a URL such as \"http://host:port\" or \"socks5://host:port\"",
            value,
        )),
    }
}

fn wrong(key: &str, expected: &str, got: &Value) -> Error {
    Error::invalid_json(format!(
        "options_json key \"{key}\" must be {expected}, got {got}"
    ))
}

fn api_base(value: &Value) -> Result<String> {
    match value.as_str() {
        Some(s) if s.starts_with("http://") || s.starts_with("https://") => {
            Ok(s.trim_end_matches('/').to_string())
        }
        _ => Err(wrong("api_base", "an http:// or https:// URL", value)),
    }
}

fn opt_string(key: &str, value: &Value) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if !s.is_empty() => Ok(Some(s.clone())),
        _ => Err(wrong(key, "a non-empty string or null", value)),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool> {
    value
        .as_bool()
        .ok_or_else(|| wrong(key, "true or false", value))
}

fn positive_u64(key: &str, value: &Value) -> Result<u64> {
    match value.as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(wrong(key, "a positive integer", value)),
    }
}

fn positive_u32(key: &str, value: &Value) -> Result<u32> {
    positive_u64(key, value)?
        .try_into()
        .map_err(|_| wrong(key, "a positive integer below 2^32", value))
}

fn millis(key: &str, value: &Value) -> Result<Duration> {
    Ok(Duration::from_millis(u64::from(positive_u32(key, value)?)))
}

/// Where state lives when neither `storage_dir` nor `app_group_dir` is
/// given: the platform's per-user data directory, then `trodo/<site id>`.
pub fn default_storage_dir(site_id: &str) -> Result<PathBuf> {
    let base = crate::platform::storage_dir::user_data_dir().ok_or_else(|| {
        Error::new(
            crate::error::ErrorKind::Storage,
            "no per-user data directory could be found (HOME is not set); pass \"storage_dir\" in options_json",
        )
    })?;
    Ok(site_dir(base, site_id))
}

/// `<base>/trodo/<site id>`, the site id made one safe path component.
fn site_dir(base: PathBuf, site_id: &str) -> PathBuf {
    base.join("trodo").join(path_safe(site_id))
}

/// A site id as one safe path component: anything outside `[A-Za-z0-9._-]`
/// becomes `_`, and `.`/`..` cannot escape the parent.
fn path_safe(site_id: &str) -> String {
    let s: String = site_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.chars().all(|c| c == '.') {
        s.replace('.', "_")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_group_container_holds_the_state_in_its_application_support() {
        // Absolute as the platform has it ("/g" gains a drive on Windows).
        let absolute = |p: &str| std::path::absolute(p).unwrap();
        let o = Options::from_json(r#"{"app_group_dir": "/g/group.ai.trodo"}"#).unwrap();
        assert_eq!(
            o.storage_dir_for("site/1").unwrap(),
            absolute("/g/group.ai.trodo/Library/Application Support/trodo/site_1")
        );
        let both = r#"{"app_group_dir": "/g", "storage_dir": "/s"}"#;
        let e = Options::from_json(both).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::InvalidJson);
        assert!(e.message.contains("not both"), "{}", e.message);
        let o = Options::from_json(r#"{"storage_dir": "/s"}"#).unwrap();
        assert_eq!(o.storage_dir_for("x").unwrap(), absolute("/s"));
    }

    #[test]
    fn a_relative_storage_dir_is_taken_from_the_working_directory_at_start() {
        let o = Options::from_json(r#"{"storage_dir": "rel/dir"}"#).unwrap();
        let dir = o.storage_dir_for("x").unwrap();
        assert!(dir.is_absolute(), "{}", dir.display());
        assert_eq!(
            dir,
            std::env::current_dir().unwrap().join("rel").join("dir")
        );
    }

    #[test]
    fn defaults_match_the_contract() {
        let o = Options::from_json("{}").unwrap();
        assert_eq!(o.api_base, DEFAULT_API_BASE);
        assert_eq!(o.flush_at, 50);
        assert_eq!(o.timeout, Duration::from_secs(10));
        assert_eq!(o.max_queue_bytes, 67_108_864);
        assert_eq!(o.durability, Durability::Batched);
        assert!(o.gzip && !o.debug && o.app_version.is_none());
    }

    #[test]
    fn parses_every_key() {
        let o = Options::from_json(
            r#"{"api_base":"http://127.0.0.1:9/","storage_dir":"/tmp/x","flush_at":7,
                "flush_interval_ms":5,"timeout_ms":6,"max_queue_items":8,"max_queue_bytes":9,
                "durability":"sync","persist_interval_ms":10,"gzip":false,"app_version":"1.2",
                "ca_file":null,"debug":true}"#,
        )
        .unwrap();
        assert_eq!(o.api_base, "http://127.0.0.1:9");
        assert_eq!(o.storage_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(o.flush_at, 7);
        assert_eq!(o.durability, Durability::Sync);
        assert_eq!(o.app_version.as_deref(), Some("1.2"));
        assert!(!o.gzip && o.debug);
    }

    #[test]
    fn typos_and_wrong_types_are_errors_naming_the_key() {
        for (text, needle) in [
            (r#"{"flush_att":1}"#, "flush_att"),
            (r#"{"flush_at":"50"}"#, "flush_at"),
            (r#"{"flush_at":-1}"#, "flush_at"),
            (r#"{"gzip":1}"#, "gzip"),
            (r#"{"durability":"always"}"#, "durability"),
            (r#"{"api_base":"ftp://x"}"#, "api_base"),
            ("[1]", "object"),
            ("{", "not valid JSON"),
        ] {
            let e = Options::from_json(text).unwrap_err();
            assert_eq!(e.kind, crate::error::ErrorKind::InvalidJson, "{text}");
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }

    #[test]
    fn site_ids_cannot_escape_the_storage_root() {
        assert_eq!(path_safe("../etc"), ".._etc");
        assert_eq!(path_safe(".."), "__");
        assert_eq!(path_safe("site-1.prod"), "site-1.prod");
    }
}
