//! Every delivery limit, from the options.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::policy::RetryPolicy;
use super::Tag;
use crate::wire;

/// Every delivery limit, from the options.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_base: String,
    pub site_id: String,
    pub storage_dir: PathBuf,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub flush_at: usize,
    pub flush_interval: Duration,
    pub max_queue_items: u64,
    pub max_queue_bytes: u64,
    pub gzip: bool,
    /// Write each accepted request to disk before `enqueue` returns.
    pub sync: bool,
    pub persist_interval: Duration,
    pub ca_file: Option<PathBuf>,
    /// Bodies held in memory: the oldest items up to this many bytes. Later
    /// items stay only on disk until the head has drained to half of it, so a
    /// large offline backlog costs memory only for a small reference per item.
    pub memory_queue_bytes: u64,
    /// Adopt the segments of processes that ended (one queue per process
    /// does it; the per-user lanes leave it to the main one).
    pub adopt: bool,
    /// Take over or adopt orphans at start, not only in the periodic round.
    /// False in a forked child: its siblings are being born, not dead, and
    /// short-lived children adopting at start would re-send in-flight
    /// batches in chains.
    pub adopt_at_start: bool,
    /// Session registrations join event batches: a batch's registrations
    /// are sent first, then its events in bulk (the per-user lanes, where
    /// every new user's first event follows its registration).
    pub registrations_join_batches: bool,
    /// Opted out at start (see [`super::Delivery::set_opted_out`]).
    pub opted_out: bool,
    /// The built-in client's proxy: `None` the environment's, `""` none.
    pub proxy: Option<String>,
    /// The host's send function, in place of the built-in client.
    pub host: Option<super::transport::HostSender>,
}

impl Config {
    /// Whether an item with `path` and `tag` may go in a batch with others:
    /// events, and in lanes that allow it, untagged session registrations.
    pub(super) fn joins_batches(&self, path: &str, tag: Tag) -> bool {
        path == wire::path::EVENT
            || (self.registrations_join_batches && path == wire::path::SESSION && tag == Tag::None)
    }

    /// Records held in memory only (the queue file cannot be written) are
    /// cut back to the live items' once they pass this: twice the queue
    /// bounds, counting a record's framing, so memory stays bounded while
    /// the disk keeps failing.
    pub(super) fn memory_only_limit(&self) -> u64 {
        const FRAMING: u64 = 64;
        (2 * self.max_queue_bytes).saturating_add(FRAMING.saturating_mul(self.max_queue_items))
    }

    /// An enqueue time that makes an item due at once: it was left by an
    /// earlier run, or has waited behind a backlog.
    pub(super) fn due_now(&self) -> Instant {
        Instant::now()
            .checked_sub(self.flush_interval)
            .unwrap_or_else(Instant::now)
    }
}
