//! The client: local state plus a delivery queue. Every call updates local
//! state first, then hands its request(s) to delivery, under one lock so that
//! the order requests leave in is the order the calls happened in.
//!
//! [`Client`] can be used directly from Rust; the C API uses the one global
//! client in [`crate::global`], which also carries it across `fork()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use crate::sync::{Mutex, RwLock};
use serde_json::{Map, Value};

use arc_swap::ArcSwapOption;

use crate::config::{Durability, Options};
use crate::delivery::lanes::Lanes;
use crate::delivery::{self, Request, Tag};
use crate::diag::Diagnostics;
use crate::error::{Error, ErrorKind, Result};
use crate::groups::{Group, Hydration, MembershipOp, Memberships};
use crate::persister::{DirtyFlag, Persister, Wake};
use crate::profile::{GroupProfileOp, PeopleOp};
use crate::state::{LocalState, Session, StateFile, SESSION_TIMEOUT_MS};
use crate::util::{new_id, now_ms};
use crate::validate;
use crate::wire::{self, Who};

/// Session activity is written to disk at this granularity, not on every
/// event: the 30-minute session timeout does not need more.
const ACTIVITY_PERSIST_GRANULARITY_MS: u64 = 10_000;

mod answers;
mod device;
mod requests;
mod users;

use device::DeviceInfo;
use requests::{membership_request, plain, with_properties_json, NewEvent};

/// How often each process looks whether another one changed the shared
/// state: a change is seen within 2 s (`shared/c-api.md`).
const STATE_LOOK_INTERVAL: Duration = Duration::from_secs(1);

pub struct Client {
    shared: Arc<Shared>,
    persister: Mutex<Option<Persister>>,
}

struct Shared {
    site_id: String,
    options: Options,
    device: DeviceInfo,
    file: StateFile,
    inner: Mutex<Inner>,
    diag: Arc<Diagnostics>,
    dirty: Mutex<Option<DirtyFlag>>,
    /// The state after the last call that changed it, readable without a
    /// lock: a child forked while a thread was inside a call starts from it.
    published: ArcSwapOption<Published>,
    /// Set once the final state is written: late answers change nothing.
    finished: AtomicBool,
    /// What the per-user calls need of the client, without its state lock.
    gate: RwLock<Gate>,
    users: users::ServerSessions,
    delivery: Lanes,
}

/// A state with the base it was changed from.
#[derive(Debug, Clone)]
struct Published {
    state: LocalState,
    base: Arc<LocalState>,
}

/// Whether calls are accepted and whether they are recorded, for the
/// per-user calls (app-mode calls read the same from `Inner`). Changed under
/// the write lock, so no per-user call is halfway through when shutdown
/// starts or opt-out discards the queue.
#[derive(Debug, Clone, Copy)]
struct Gate {
    accepting: bool,
    opt_out: bool,
}

struct Inner {
    /// False from the start of shutdown: new calls are refused.
    accepting: bool,
    state: LocalState,
    /// The state as this process last agreed it with the state file: a
    /// field that differs from it is this process's change, to be written;
    /// any other field is taken from the file when another process changed it.
    base: Arc<LocalState>,
    hydration: Hydration,
    /// Bumped by reset, so an identify answer for the previous user is ignored.
    epoch: u64,
    persisted_activity_ms: u64,
    /// Numbers state snapshots so an older one never overwrites a newer one.
    generation: u64,
    /// The generation `base` came from.
    synced_generation: u64,
    /// Each call's requests, in a list kept between calls so that a call
    /// allocates none for it.
    requests: Vec<Request>,
}

/// What a call does under the state lock (see [`Client::mutate`]).
type MutateFn<'f> = dyn FnMut(&Shared, &mut Inner, &mut Vec<Request>) -> Result<bool> + 'f;

impl Inner {
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }
}

impl Client {
    /// Opens (or creates) the local state under the storage directory and
    /// starts the background threads.
    pub fn start(site_id: &str, options: Options) -> Result<Arc<Client>> {
        Client::start_with(site_id, options, None)
    }

    /// The client of a child process forked while `parent` ran: the same
    /// settings, identity, memberships and session as at the fork, and
    /// threads and a queue segment of its own. What the parent had queued is
    /// left to the parent. Nothing of `parent` is locked for long or dropped:
    /// its locks may be held by threads that do not exist in the child.
    pub fn continue_after_fork(parent: &Client) -> Result<Arc<Client>> {
        let s = &parent.shared;
        let state = match s.inner.try_lock() {
            Some(inner) if inner.accepting => Published {
                state: inner.state.clone(),
                base: inner.base.clone(),
            },
            Some(_) => return Err(Error::not_initialized()), // forked during shutdown
            // A thread was inside a call at the fork, so the state may be
            // half-changed: take it as the last finished call left it.
            None => s
                .published
                .load_full()
                .map(|p| (*p).clone())
                .ok_or_else(Error::not_initialized)?,
        };
        Client::start_with(&s.site_id, s.options.clone(), Some(state))
    }

    /// Starts with `state` (a forked child continuing its parent), or with
    /// what the state file holds when `None`.
    fn start_with(
        site_id: &str,
        options: Options,
        state: Option<Published>,
    ) -> Result<Arc<Client>> {
        validate::name(site_id, "site_id")?;
        if !cfg!(feature = "http") && options.transport.is_none() {
            return Err(Error::invalid_argument(
                "this libtrodo was built without its HTTP client (--no-default-features): call \
                 trodo_set_transport before trodo_init",
            ));
        }
        let dir = options.storage_dir_for(site_id)?;
        let diag = Arc::new(Diagnostics::new(options.debug));
        let file = StateFile::open(&dir)?;

        let forked_child = state.is_some();
        // A new process starts from what the file holds (a fresh state
        // when there is none); a forked child keeps its parent's changes.
        let start = state.unwrap_or_else(|| {
            let fresh = LocalState::fresh();
            Published {
                base: Arc::new(fresh.clone()),
                state: fresh,
            }
        });
        // Syncing now also proves the directory usable before init succeeds.
        let state = match file.sync_by(&start.base, &start.state, 0, None)? {
            Some(synced) => {
                if let Some(report) = synced.report {
                    diag.report(report);
                }
                synced.state
            }
            None => start.state,
        };

        let shared_slot: Arc<OnceLock<Weak<Shared>>> = Arc::new(OnceLock::new());
        let slot = shared_slot.clone();
        let delivery = Lanes::start(
            delivery::Config {
                api_base: options.api_base.clone(),
                site_id: site_id.to_string(),
                storage_dir: dir.clone(),
                timeout: options.timeout,
                retry: options.retry.clone(),
                flush_at: options.flush_at as usize,
                flush_interval: options.flush_interval,
                max_queue_items: options.max_queue_items,
                max_queue_bytes: options.max_queue_bytes,
                gzip: options.gzip,
                sync: options.durability == Durability::Sync,
                persist_interval: options.persist_interval,
                ca_file: options.ca_file.clone(),
                memory_queue_bytes: options.memory_queue_bytes.max(1),
                adopt: true,
                adopt_at_start: !forked_child,
                registrations_join_batches: false,
                opted_out: state.opt_out,
                proxy: options.proxy.clone(),
                host: options.transport.clone(),
            },
            options.user_lanes as usize,
            diag.clone(),
            Arc::new(move |tag, outcome| {
                if let Some(s) = slot.get().and_then(Weak::upgrade) {
                    s.on_complete(tag, outcome);
                }
            }),
        )?;

        // The state as agreed with the file: the base in memory and published.
        let base = Arc::new(state.clone());
        let shared = Arc::new(Shared {
            site_id: site_id.to_string(),
            device: DeviceInfo::detect(),
            file,
            inner: Mutex::new(Inner {
                accepting: true,
                persisted_activity_ms: state.session.last_activity_ms,
                base: base.clone(),
                state: state.clone(),
                hydration: Hydration::default(),
                epoch: 0,
                generation: 0,
                synced_generation: 0,
                requests: Vec::with_capacity(2),
            }),
            diag,
            dirty: Mutex::new(None),
            published: ArcSwapOption::from_pointee(Published {
                base,
                state: state.clone(),
            }),
            finished: AtomicBool::new(false),
            gate: RwLock::new(Gate {
                accepting: true,
                opt_out: state.opt_out,
            }),
            users: users::ServerSessions::new(options.remembered_users),
            options,
            delivery,
        });
        let _ = shared_slot.set(Arc::downgrade(&shared));

        let weak: Weak<Shared> = Arc::downgrade(&shared);
        let persister = Persister::start_ticking(
            shared.options.persist_interval,
            Some(STATE_LOOK_INTERVAL),
            move |wake| {
                if let Some(s) = weak.upgrade() {
                    s.persist(wake);
                }
            },
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot start the persist thread: {e}"),
            )
        })?;
        *shared.dirty.lock() = Some(persister.flag());

        Ok(Arc::new(Client {
            shared,
            persister: Mutex::new(Some(persister)),
        }))
    }

    /// Sends identify with the current distinct id, then takes `identify_id`
    /// as the distinct id at once.
    pub fn identify(&self, identify_id: &str) -> Result<()> {
        self.mutate(|s, inner, out| {
            validate::name(identify_id, "identify_id")?;
            s.touch_session(inner, out);
            let body = wire::identify(&s.who(&inner.state), identify_id);
            let token = inner.hydration.issue(identify_id);
            out.push(Request {
                tag: Tag::Identify {
                    token,
                    epoch: inner.epoch,
                },
                ..plain(wire::path::IDENTIFY, body)
            });
            inner.state.distinct_id = identify_id.to_string();
            Ok(true)
        })
    }

    /// New anonymous id, new session, no groups; `reset` names the identity left.
    pub fn reset(&self) -> Result<()> {
        self.mutate(|s, inner, out| {
            out.push(plain(wire::path::RESET, wire::reset(&s.who(&inner.state))));
            let now = now_ms();
            let anonymous_id = new_id();
            inner.state = LocalState {
                distinct_id: anonymous_id.clone(),
                anonymous_id,
                session: Session::new(now),
                groups: Memberships::default(),
                opt_out: inner.state.opt_out,
            };
            inner.hydration.clear();
            inner.epoch += 1;
            Ok(true)
        })
    }

    pub fn distinct_id(&self) -> Result<String> {
        Ok(self.shared.open()?.state.distinct_id.clone())
    }

    /// Tracks an event stamped with the current group memberships.
    pub fn track(
        &self,
        event_name: &str,
        properties: Option<Map<String, Value>>,
        category: Option<&str>,
    ) -> Result<()> {
        self.track_with(event_name, properties.as_ref().into(), category)
    }

    /// As [`track`](Self::track), with the properties as JSON text (an
    /// object, or `None`): checked and copied into the event in one pass.
    pub fn track_json(
        &self,
        event_name: &str,
        properties_json: Option<&str>,
        category: Option<&str>,
    ) -> Result<()> {
        with_properties_json(properties_json, |properties| {
            self.track_with(event_name, properties, category)
        })
    }

    fn track_with(
        &self,
        event_name: &str,
        properties: wire::Properties<'_>,
        category: Option<&str>,
    ) -> Result<()> {
        let event = NewEvent::now(event_name, properties, category);
        self.mutate(|s, inner, out| {
            event.check()?;
            // The event's own time: one clock read per call, and the event
            // counts in the session its time falls in.
            s.touch_session_at(inner, out, event.timestamp());
            out.push(event.request(&s.who(&inner.state), &inner.state.groups));
            Ok(false)
        })
    }

    /// Replaces the active context for `group_key` with one id.
    pub fn set_group(&self, group_key: &str, group_id: &str) -> Result<()> {
        self.membership(group_key, || MembershipOp::set_one(group_key, group_id))
    }

    /// Replaces the active context for `group_key` with several ids (at least one).
    pub fn set_groups<S: AsRef<str>>(&self, group_key: &str, group_ids: &[S]) -> Result<()> {
        self.membership(group_key, || MembershipOp::set_many(group_key, group_ids))
    }

    /// Adds one id to the memberships for `group_key` (no change if present).
    pub fn add_group(&self, group_key: &str, group_id: &str) -> Result<()> {
        self.membership(group_key, || MembershipOp::add(group_key, group_id))
    }

    /// Removes one id from the memberships for `group_key`.
    pub fn remove_group(&self, group_key: &str, group_id: &str) -> Result<()> {
        self.membership(group_key, || MembershipOp::remove(group_key, group_id))
    }

    /// The current memberships.
    pub fn groups(&self) -> Result<Memberships> {
        Ok(self.shared.open()?.state.groups.clone())
    }

    /// One operation on a group's profile. No effect on attribution.
    pub fn group_profile(&self, group: &Group, op: GroupProfileOp) -> Result<()> {
        self.mutate(|s, inner, out| {
            op.validate()?;
            let (path, body) =
                wire::group_profile(&s.who(&inner.state), group.key(), group.id(), op);
            out.push(plain(path, body));
            Ok(false)
        })
    }

    /// One operation on the current user's people profile.
    pub fn people(&self, op: PeopleOp) -> Result<()> {
        self.mutate(|s, inner, out| {
            op.validate()?;
            let (path, body) = wire::people(&s.who(&inner.state), op);
            out.push(plain(path, body));
            Ok(false)
        })
    }

    /// Waits until everything accepted before the call is sent or dropped.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        drop(self.shared.open()?);
        if self.shared.delivery.flush(timeout) {
            Ok(())
        } else {
            Err(timeout_error("flush", timeout))
        }
    }

    /// Refuses new calls, flushes for at most `timeout`, writes the final
    /// state and stops the background threads.
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        let start = std::time::Instant::now();
        {
            let mut inner = self.shared.open()?;
            inner.accepting = false;
            self.shared.gate.write().accepting = false;
        }
        let flushed = self.shared.delivery.shutdown(timeout);
        // The state writer may be waiting for state.lock, which another
        // process can hold for long (stopped mid-write): not past the deadline.
        let deadline = delivery::stop_deadline(start, timeout);
        if let Some(mut p) = self.persister.lock().take() {
            p.stop_by(Some(deadline));
        }
        {
            // Under the lock, so a late identify answer cannot slip in between.
            let mut inner = self.shared.inner.lock();
            match self.shared.sync_locked(&mut inner, Some(deadline)) {
                Ok(Some(_)) => {} // discarded by a late opt-out: nothing left to send anyway
                Ok(None) => self.shared.diag.report(
                    "final state write skipped: the state file stayed locked by another thread or \
                     process until the shutdown's deadline"
                        .to_string(),
                ),
                Err(e) => self
                    .shared
                    .diag
                    .report(format!("final state write failed: {e}")),
            }
            self.shared.finished.store(true, Ordering::Release);
        }
        if flushed {
            Ok(())
        } else {
            Err(timeout_error("shutdown", timeout))
        }
    }

    /// Writes what is accepted and not yet on disk (queue records and
    /// state), giving up at `deadline` on any lock another thread holds: for
    /// process exit, where no thread may be waited for.
    pub fn persist_by(&self, deadline: std::time::Instant) {
        self.shared.delivery.persist_by(deadline);
        let Some(mut inner) = self.shared.inner.try_lock_until(deadline) else {
            return;
        };
        if self.shared.finished.load(Ordering::Acquire) {
            return; // shutdown wrote the final state
        }
        // At exit there is no one left to tell of a sibling's opt-out.
        let _ = self.shared.sync_locked(&mut inner, Some(deadline));
    }

    /// Recent reports of problems the library handled itself.
    pub fn diagnostics(&self) -> Vec<String> {
        self.shared.diag.recent()
    }

    /// Delivery counts since start, and what is queued now.
    pub fn stats(&self) -> Result<delivery::Stats> {
        drop(self.shared.open()?);
        Ok(self.shared.delivery.stats())
    }

    /// Turns opt-out on or off; persisted at once. Turning it on discards
    /// everything queued; while on, calls are checked and change nothing.
    pub fn set_opt_out(&self, opted_out: bool) -> Result<()> {
        let mut inner = self.shared.open()?;
        let mut dropped = self.shared.set_opt_out_locked(&mut inner, opted_out);
        // The caller asked for this setting to survive a restart (and to
        // reach the other processes): write now.
        let saved = self.shared.save_now(&mut inner, &mut dropped);
        drop(inner);
        self.shared.delivery.settle(dropped);
        saved
    }

    pub fn is_opted_out(&self) -> Result<bool> {
        Ok(self.shared.open()?.state.opt_out)
    }

    fn membership(&self, group_key: &str, op: impl FnOnce() -> Result<MembershipOp>) -> Result<()> {
        self.mutate(|s, inner, out| {
            validate::name(group_key, "group_key")?;
            let op = op()?;
            op.apply(&mut inner.state.groups);
            inner.hydration.record(&op);
            out.push(membership_request(&s.who(&inner.state), &op));
            Ok(true)
        })
    }

    /// The shape of every call: refuse when not accepting (before looking at
    /// arguments), let `f` check arguments and change state (returning whether
    /// it did), then queue its requests in order and get the change to disk.
    fn mutate(
        &self,
        f: impl FnOnce(&Shared, &mut Inner, &mut Vec<Request>) -> Result<bool>,
    ) -> Result<()> {
        // One copy of the shape below for every call, not one per call
        // (a tenth of the library's own code was these copies).
        let mut f = Some(f);
        self.mutate_dyn(&mut |s, inner, out| match f.take() {
            Some(f) => f(s, inner, out),
            None => Err(Error::new(ErrorKind::Internal, "a call ran twice")),
        })
    }

    fn mutate_dyn(&self, f: &mut MutateFn<'_>) -> Result<()> {
        let mut dropped = delivery::Dropped::default();
        let result = self.mutate_locked(f, &mut dropped);
        // Told only now, with the state unlocked: the core's answer handler
        // takes that lock.
        self.shared.delivery.settle(dropped);
        result
    }

    fn mutate_locked(&self, f: &mut MutateFn<'_>, dropped: &mut delivery::Dropped) -> Result<()> {
        let s = &*self.shared;
        let mut inner = s.open()?;
        if inner.state.opt_out {
            // Checked as usual, on a scratch copy that is then thrown away.
            let mut scratch = Inner {
                accepting: true,
                state: inner.state.clone(),
                base: inner.base.clone(),
                hydration: Hydration::default(),
                epoch: inner.epoch,
                persisted_activity_ms: now_ms(),
                generation: 0,
                synced_generation: 0,
                requests: Vec::new(),
            };
            return f(s, &mut scratch, &mut Vec::new()).map(|_| ());
        }
        let mut out = std::mem::take(&mut inner.requests);
        let result = f(s, &mut inner, &mut out);
        let mut durable = true;
        if result.is_ok() {
            for r in out.drain(..) {
                let (d, ok) = self.shared.delivery.enqueue(r);
                dropped.merge(d);
                durable &= ok;
            }
        }
        out.clear();
        inner.requests = out;
        let changes_state = result?;
        if !durable {
            return Err(not_durable());
        }
        if changes_state {
            match s.options.durability {
                // The caller asked for the disk write on its own thread.
                Durability::Sync => s.save_now(&mut inner, dropped)?,
                Durability::Batched => s.mark_dirty(&inner),
            }
        }
        Ok(())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.shared.inner.lock().accepting {
            let _ = self.shutdown(Duration::ZERO);
        }
    }
}

impl Shared {
    /// The state, locked, when the client still accepts calls.
    fn open(&self) -> Result<crate::sync::MutexGuard<'_, Inner>> {
        let inner = self.inner.lock();
        if inner.accepting {
            Ok(inner)
        } else {
            Err(Error::not_initialized())
        }
    }

    fn who<'a>(&'a self, state: &'a LocalState) -> Who<'a> {
        Who {
            site_id: &self.site_id,
            session_id: &state.session.id,
            distinct_id: &state.distinct_id,
        }
    }

    /// `inner`'s state changed: publish it and have it written soon.
    fn mark_dirty(&self, inner: &Inner) {
        self.publish(inner);
        if let Some(flag) = self.dirty.lock().as_ref() {
            flag.mark();
        }
    }

    /// `inner`'s state changed and must be on disk now (the caller asked for
    /// it on its own thread): publish it and write it.
    fn save_now(&self, inner: &mut Inner, dropped: &mut delivery::Dropped) -> Result<()> {
        self.publish(inner);
        if let Some(d) = self.sync_locked(inner, None)? {
            dropped.merge(d);
        }
        Ok(())
    }

    /// Syncs the state with the file while holding the state lock (the
    /// caller waits for the disk on purpose). `None` when skipped (the
    /// deadline passed, or a newer sync ran); else what an opt-out made by
    /// another process discarded, for the caller to settle once unlocked.
    fn sync_locked(
        &self,
        inner: &mut Inner,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<delivery::Dropped>> {
        let generation = inner.next_generation();
        let (base, ours) = (inner.base.clone(), inner.state.clone());
        Ok(self
            .sync_file(&base, &ours, generation, deadline)?
            .map(|merged| self.take_up(inner, &ours, merged, generation)))
    }

    /// The merged state after syncing `ours` (changed from `base`) with the
    /// file, when the sync ran.
    fn sync_file(
        &self,
        base: &LocalState,
        ours: &LocalState,
        generation: u64,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<LocalState>> {
        let Some(synced) = self.file.sync_by(base, ours, generation, deadline)? else {
            return Ok(None);
        };
        if let Some(report) = synced.report {
            self.diag.report(report);
        }
        Ok(Some(synced.state))
    }

    /// `merged` is what the file holds after the sync of `snapshot`: takes
    /// up what other processes changed, keeping what this one changed since
    /// the snapshot. Returns what an opt-out from elsewhere discarded.
    fn take_up(
        &self,
        inner: &mut Inner,
        snapshot: &LocalState,
        merged: LocalState,
        generation: u64,
    ) -> delivery::Dropped {
        if generation < inner.synced_generation {
            return delivery::Dropped::default(); // a newer sync took up more
        }
        inner.synced_generation = generation;
        let now = crate::state::merge::merge(snapshot, &inner.state, &merged);
        if now.anonymous_id != inner.state.anonymous_id
            || now.distinct_id != inner.state.distinct_id
        {
            // Another process identified or reset: an answer to this one's
            // identify no longer applies.
            inner.epoch += 1;
            inner.hydration.clear();
        }
        let dropped = match now.opt_out != inner.state.opt_out {
            true => self.set_opt_out_locked(inner, now.opt_out),
            false => delivery::Dropped::default(),
        };
        inner.state = now;
        inner.base = Arc::new(merged);
        self.publish(inner);
        dropped
    }

    /// Sets opt-out in memory; turning it on discards what is queued, which
    /// is returned for the caller to settle once unlocked.
    fn set_opt_out_locked(&self, inner: &mut Inner, opted_out: bool) -> delivery::Dropped {
        inner.state.opt_out = opted_out;
        self.gate.write().opt_out = opted_out;
        self.delivery.set_opted_out(opted_out)
    }

    fn publish(&self, inner: &Inner) {
        self.published.store(Some(Arc::new(Published {
            state: inner.state.clone(),
            base: inner.base.clone(),
        })));
    }

    /// Starts a new session after 30 idle minutes, and registers the session
    /// before its first event or identify.
    fn touch_session(&self, inner: &mut Inner, out: &mut Vec<Request>) {
        self.touch_session_at(inner, out, now_ms());
    }

    fn touch_session_at(&self, inner: &mut Inner, out: &mut Vec<Request>, now: u64) {
        let session = &mut inner.state.session;
        if now.saturating_sub(session.last_activity_ms) > SESSION_TIMEOUT_MS {
            *session = Session::new(now);
        }
        session.last_activity_ms = session.last_activity_ms.max(now);
        if !session.registered {
            session.registered = true;
            let body = wire::session_registration(
                &self.who(&inner.state),
                inner.state.session.start_ms,
                inner.state.session.last_activity_ms,
                &wire::Device {
                    device_type: self.device.device_type,
                    os_name: self.device.os_name,
                    os_version: &self.device.os_version,
                    app_version: self.options.app_version.as_deref(),
                },
            );
            out.push(plain(wire::path::SESSION, body));
            self.mark_dirty(inner);
        }
        if now.saturating_sub(inner.persisted_activity_ms) >= ACTIVITY_PERSIST_GRANULARITY_MS {
            inner.persisted_activity_ms = now;
            self.mark_dirty(inner);
        }
    }

    /// On the persister thread: writes this process's changes, and (also
    /// when a tick finds the file changed) takes up other processes'.
    /// Snapshot under the lock, file work outside it.
    fn persist(&self, wake: Wake) {
        if wake == Wake::Tick && !self.file.changed_on_disk() {
            return;
        }
        let (base, ours, generation) = {
            let mut inner = self.inner.lock();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            let generation = inner.next_generation();
            (inner.base.clone(), inner.state.clone(), generation)
        };
        let merged = match self.sync_file(&base, &ours, generation, None) {
            Ok(Some(merged)) => merged,
            Ok(None) => return,
            Err(e) => {
                return self.diag.report(format!(
                    "state write failed (will retry on the next change): {e}"
                ))
            }
        };
        let dropped = {
            let mut inner = self.inner.lock();
            if self.finished.load(Ordering::Acquire) {
                return;
            }
            self.take_up(&mut inner, &ours, merged, generation)
        };
        self.delivery.settle(dropped);
    }
}

/// A `"sync"` call whose queue write failed: it is queued (and written when
/// the disk allows), but not durable as asked.
fn not_durable() -> Error {
    Error::new(
        ErrorKind::Storage,
        "storage: the call is queued but could not be written to disk (\"durability\": \"sync\"); \
         it is kept in memory and written when the disk allows",
    )
}

fn timeout_error(what: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("{what} did not finish within {} ms", timeout.as_millis()),
    )
}
