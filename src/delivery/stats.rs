//! Delivery counts, for `trodo_get_stats`.

use serde_json::{json, Value};

use super::DropReason;

/// Counts since start, in items (one event, one call), not requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Waiting, not counting what is in flight.
    pub queued: u64,
    pub queued_bytes: u64,
    /// Bodies held in memory (in flight included); the rest of the queue is
    /// only on disk until the worker reads it back.
    pub queued_memory_bytes: u64,
    pub in_flight: u64,
    pub sent: u64,
    pub dropped_rejected: u64,
    pub dropped_too_large: u64,
    pub dropped_gave_up: u64,
    pub dropped_queue_full: u64,
    pub dropped_opted_out: u64,
    pub dropped_unreadable: u64,
    /// Epoch ms until which a 429 paused sending; 0 when not paused.
    pub paused_until_ms: u64,
    /// Bytes of a damaged queue file that could not be read at start (moved
    /// to queue.corrupt and reported).
    pub corrupt_bytes: u64,
    /// Panics caught on the delivery thread (each reported; it carries on).
    pub worker_panics: u64,
    /// Bytes of records held in memory only (the queue file's mapped tail
    /// was full, or could not be mapped): not yet durable, they die with the
    /// process until the writer has moved them into the file.
    pub memory_only_bytes: u64,
}

impl Stats {
    pub fn dropped(&self) -> u64 {
        self.dropped_rejected
            + self.dropped_too_large
            + self.dropped_gave_up
            + self.dropped_queue_full
            + self.dropped_opted_out
            + self.dropped_unreadable
    }

    /// The `trodo_get_stats` object.
    pub fn to_json(&self) -> Value {
        json!({
            "queued": self.queued,
            "queued_bytes": self.queued_bytes,
            "queued_memory_bytes": self.queued_memory_bytes,
            "in_flight": self.in_flight,
            "sent": self.sent,
            "dropped": self.dropped(),
            "dropped_by_reason": {
                "rejected": self.dropped_rejected,
                "too_large": self.dropped_too_large,
                "gave_up": self.dropped_gave_up,
                "queue_full": self.dropped_queue_full,
                "opted_out": self.dropped_opted_out,
                "unreadable": self.dropped_unreadable,
            },
            "paused_until_ms": self.paused_until_ms,
            "corrupt_bytes": self.corrupt_bytes,
            "memory_only_bytes": self.memory_only_bytes,
            "worker_panics": self.worker_panics,
        })
    }

    pub(super) fn count(&mut self, reason: DropReason, n: u64) {
        match reason {
            DropReason::Rejected => self.dropped_rejected += n,
            DropReason::TooLarge => self.dropped_too_large += n,
            DropReason::GaveUp => self.dropped_gave_up += n,
            DropReason::QueueFull => self.dropped_queue_full += n,
            DropReason::OptedOut => self.dropped_opted_out += n,
            DropReason::Unreadable => self.dropped_unreadable += n,
        }
    }
}
