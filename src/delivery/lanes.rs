//! Lanes: the main queue (every app-mode call, in call order) and a few
//! queues for the per-user calls of server mode. A user's requests always
//! take the same lane, so they leave in the order they were made; different
//! users' requests travel in parallel, which a backlog of session
//! registrations (one request per user) needs to drain quickly.
//!
//! Each lane is a whole [`Delivery`]: its own queue segment, writer and
//! worker. The user lanes start at their first request, so a program that
//! never uses server mode has none. Only the main lane adopts the segments
//! of processes that ended, whichever lane wrote them. The queue bounds
//! (`max_queue_items`, `max_queue_bytes`, the memory budget) apply to the
//! main lane, and to the user lanes together, split evenly between them.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::diag::Diagnostics;
use crate::error::Result;
use crate::sync::Mutex;

use super::{Config, Delivery, Dropped, OnComplete, Request, Stats};

pub struct Lanes {
    main: Delivery,
    users: Box<[OnceLock<Delivery>]>,
    /// Serialises starting a user lane (the slot is read without it).
    starting: Mutex<()>,
    user_config: Config,
    diag: Arc<Diagnostics>,
    on_complete: OnComplete,
}

impl Lanes {
    /// Starts the main lane; the `user_lanes` user lanes start when first used.
    pub fn start(
        config: Config,
        user_lanes: usize,
        diag: Arc<Diagnostics>,
        on_complete: OnComplete,
    ) -> Result<Lanes> {
        let n = user_lanes.max(1) as u64;
        let user_config = Config {
            max_queue_items: (config.max_queue_items / n).max(1),
            max_queue_bytes: (config.max_queue_bytes / n).max(1),
            memory_queue_bytes: (config.memory_queue_bytes / n).max(1),
            adopt: false,
            // A new user's registration comes just before its first event:
            // batched together, first events travel in bulk, not one by one.
            registrations_join_batches: true,
            ..config.clone()
        };
        let main = Delivery::start(
            Config {
                adopt: true,
                registrations_join_batches: false,
                ..config
            },
            diag.clone(),
            on_complete.clone(),
        )?;
        Ok(Lanes {
            main,
            users: (0..n).map(|_| OnceLock::new()).collect(),
            starting: Mutex::new(()),
            user_config,
            diag,
            on_complete,
        })
    }

    /// Queues an app-mode request on the main lane (see [`Delivery::enqueue`]).
    pub fn enqueue(&self, request: Request) -> (Dropped, bool) {
        self.main.enqueue(request)
    }

    /// As [`Delivery::settle`]: every lane tells drops the same way.
    pub fn settle(&self, dropped: Dropped) {
        if !dropped.is_empty() {
            self.main.settle(dropped);
        }
    }

    /// The lane of the user whose lane key is `key`, started if this is its
    /// first use.
    pub fn user_lane(&self, key: u64) -> Result<&Delivery> {
        let slot = &self.users[(key % self.users.len() as u64) as usize];
        if let Some(lane) = slot.get() {
            return Ok(lane);
        }
        let _starting = self.starting.lock();
        if let Some(lane) = slot.get() {
            return Ok(lane);
        }
        let lane = Delivery::start(
            self.user_config.clone(),
            self.diag.clone(),
            self.on_complete.clone(),
        )?;
        Ok(slot.get_or_init(|| lane))
    }

    fn all(&self) -> impl Iterator<Item = &Delivery> {
        std::iter::once(&self.main).chain(self.users.iter().filter_map(OnceLock::get))
    }

    /// As [`Delivery::flush`], for every lane, within one `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // Each waits in turn while all of them send: the sum is the slowest.
        self.all()
            .map(|lane| lane.flush(deadline.saturating_duration_since(Instant::now())))
            .fold(true, |all, ok| all & ok)
    }

    /// As [`Delivery::shutdown`], for every lane, within one `timeout`
    /// (each flushes first; the others keep sending meanwhile).
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let _starting = self.starting.lock(); // no lane starts after this
        self.all()
            .map(|lane| lane.shutdown(deadline.saturating_duration_since(Instant::now())))
            .fold(true, |all, ok| all & ok)
    }

    pub fn persist_by(&self, deadline: Instant) {
        for lane in self.all() {
            lane.persist_by(deadline);
        }
    }

    /// As [`Delivery::discard_all`], for every lane.
    pub fn discard_all(&self) -> Dropped {
        let mut dropped = Dropped::default();
        for lane in self.all() {
            dropped.merge(lane.discard_all());
        }
        dropped
    }

    /// As [`Delivery::set_opted_out`]: only the main lane adopts, so only
    /// it needs to keep discarding; the user lanes get no new calls meanwhile.
    pub fn set_opted_out(&self, on: bool) -> Dropped {
        let mut dropped = self.main.set_opted_out(on);
        if on {
            for lane in self.all().skip(1) {
                dropped.merge(lane.discard_all());
            }
        }
        dropped
    }

    /// The counts of every lane added up.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for s in self.all().map(Delivery::stats) {
            total.queued += s.queued;
            total.queued_bytes += s.queued_bytes;
            total.queued_memory_bytes += s.queued_memory_bytes;
            total.in_flight += s.in_flight;
            total.sent += s.sent;
            total.dropped_rejected += s.dropped_rejected;
            total.dropped_too_large += s.dropped_too_large;
            total.dropped_gave_up += s.dropped_gave_up;
            total.dropped_queue_full += s.dropped_queue_full;
            total.dropped_opted_out += s.dropped_opted_out;
            total.dropped_unreadable += s.dropped_unreadable;
            total.paused_until_ms = total.paused_until_ms.max(s.paused_until_ms);
            total.corrupt_bytes += s.corrupt_bytes;
            total.memory_only_bytes += s.memory_only_bytes;
            total.worker_panics += s.worker_panics;
        }
        total
    }
}
