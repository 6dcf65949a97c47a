//! The request vocabulary between the core and delivery: what is sent, how
//! the core recognises an answer, how a request ended, and what a queue
//! operation dropped.

use std::sync::Arc;

use serde_json::Value;

/// What the core wants sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: &'static str,
    /// The JSON body, serialized.
    pub body: Vec<u8>,
    pub tag: Tag,
}

/// Lets the core recognise the answer to a request it cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    None,
    Identify {
        token: u64,
        epoch: u64,
    },
    /// A server-mode user's identify (`token` names the user and the id).
    UserIdentify {
        token: u64,
    },
}

/// How a request ended.
#[derive(Debug)]
pub enum Outcome<'a> {
    Delivered(&'a Value),
    Dropped(DropReason),
}

/// Why items were dropped; each is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    Rejected,
    TooLarge,
    GaveUp,
    QueueFull,
    /// Discarded by `set_opt_out(true)`: the user's choice, not a failure.
    OptedOut,
    /// Kept only on disk and then not found there again (the file was
    /// damaged or removed while running).
    Unreadable,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Rejected => "rejected",
            DropReason::TooLarge => "too_large",
            DropReason::GaveUp => "gave_up",
            DropReason::QueueFull => "queue_full",
            DropReason::OptedOut => "opted_out",
            DropReason::Unreadable => "unreadable",
        }
    }
}

/// Told how a tagged request ended (on the delivery thread, or the thread
/// whose call made the queue drop it, once that call holds no lock).
pub type OnComplete = Arc<dyn Fn(Tag, Outcome<'_>) + Send + Sync>;

/// What a queue operation on a caller's thread dropped: the tagged requests
/// whose end the core must hear of, and the reports for the error callback.
/// The queue itself calls nobody; the caller hands this to
/// [`Delivery::settle`](super::Delivery::settle) once it holds no lock, so no drop can re-enter a
/// lock the caller holds (an opt-out or an overflow dropping a queued
/// identify used to deadlock that way).
#[must_use = "what was dropped must be told once no lock is held (Delivery::settle)"]
#[derive(Debug, Default)]
pub struct Dropped {
    pub(super) tags: Vec<(Tag, DropReason)>,
    pub(super) reports: Vec<String>,
}

impl Dropped {
    pub(super) fn tags(tags: Vec<Tag>, reason: DropReason) -> Dropped {
        Dropped {
            tags: tags.into_iter().map(|t| (t, reason)).collect(),
            reports: Vec::new(),
        }
    }

    /// Adds `other`'s drops after this one's.
    pub fn merge(&mut self, other: Dropped) {
        self.tags.extend(other.tags);
        self.reports.extend(other.reports);
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.reports.is_empty()
    }
}
