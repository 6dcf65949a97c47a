//! Server mode: calls made on behalf of a [`User`] rather than the current
//! user. They never take the client's state lock, so threads acting for
//! different users share nothing but a read lock on the client's gate and
//! the queue of their user's delivery lane.
//!
//! Each user's server session is registered once per client, ahead of the
//! user's first event or identify (`docs/wire-protocol.md`, "Sessions"). The table
//! of registered users is an LRU bounded by `Options::remembered_users`
//! (10 000 unless a Rust caller changes it); an evicted
//! user is registered again at its next use, which its deterministic session
//! id makes harmless.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use lru::LruCache;
use serde_json::{Map, Value};

use super::{membership_request, plain, with_properties_json, Client, NewEvent, Shared};
use crate::delivery::{Outcome, Request, Tag};
use crate::error::{Error, ErrorKind, Result};
use crate::groups::MembershipOp;
use crate::profile::PeopleOp;
use crate::sync::Mutex;
use crate::user::{User, UserInner, UserState};
use crate::util::now_ms;
use crate::validate;
use crate::wire::{self, Who};

/// Numbers clients, so a user knows which client registered its session.
static NEXT_CLIENT: AtomicU64 = AtomicU64::new(1);

pub(super) struct ServerSessions {
    number: u64,
    /// Session ids registered by this client, least recently used first out.
    registered: Mutex<LruCache<String, ()>>,
    /// Identifies in flight: token → the user and the id it identified as.
    identifies: Mutex<HashMap<u64, (Weak<UserInner>, String)>>,
    next_token: AtomicU64,
}

impl ServerSessions {
    pub(super) fn new(remembered_users: usize) -> ServerSessions {
        ServerSessions {
            number: NEXT_CLIENT.fetch_add(1, Ordering::Relaxed),
            registered: Mutex::new(LruCache::new(
                NonZeroUsize::new(remembered_users).unwrap_or(NonZeroUsize::MIN),
            )),
            identifies: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
        }
    }
}

/// What a call for one user does (see [`Client::for_user`]).
type ForUserFn<'f, 'a> = dyn FnMut(&Who, &UserState) -> Result<(Request, Change<'a>)> + 'f;

impl Client {
    /// Tracks an event for `user`, stamped with the user's group context.
    pub fn user_track(
        &self,
        user: &User,
        event_name: &str,
        properties: Option<&Map<String, Value>>,
        category: Option<&str>,
    ) -> Result<()> {
        self.user_track_with(user, event_name, properties.into(), category)
    }

    /// As [`user_track`](Self::user_track), with the properties as JSON text.
    pub fn user_track_json(
        &self,
        user: &User,
        event_name: &str,
        properties_json: Option<&str>,
        category: Option<&str>,
    ) -> Result<()> {
        with_properties_json(properties_json, |properties| {
            self.user_track_with(user, event_name, properties, category)
        })
    }

    fn user_track_with(
        &self,
        user: &User,
        event_name: &str,
        properties: wire::Properties<'_>,
        category: Option<&str>,
    ) -> Result<()> {
        let event = NewEvent::now(event_name, properties, category);
        self.for_user(user, true, |who, state| {
            event.check()?;
            Ok((event.request(who, &state.groups), Change::None))
        })
    }

    /// Sends identify for `user` (with its current id and server session);
    /// the user then goes by `identify_id`, and by the server's answer
    /// (`newDistinctId`) once it comes. The session stays the same.
    pub fn user_identify(&self, user: &User, identify_id: &str) -> Result<()> {
        let users = &self.shared.users;
        let weak = Arc::downgrade(&user.0);
        self.for_user(user, true, |who, _| {
            validate::name(identify_id, "identify_id")?;
            let body = wire::identify(who, identify_id);
            let token = users.next_token.fetch_add(1, Ordering::Relaxed);
            users
                .identifies
                .lock()
                .insert(token, (weak.clone(), identify_id.to_string()));
            let request = Request {
                tag: Tag::UserIdentify { token },
                ..plain(wire::path::IDENTIFY, body)
            };
            Ok((request, Change::DistinctId(identify_id)))
        })
    }

    /// As [`set_group`](Self::set_group), for `user`'s group context.
    pub fn user_set_group(&self, user: &User, group_key: &str, group_id: &str) -> Result<()> {
        self.user_membership(user, group_key, || {
            MembershipOp::set_one(group_key, group_id)
        })
    }

    /// As [`set_groups`](Self::set_groups), for `user`'s group context.
    pub fn user_set_groups<S: AsRef<str>>(
        &self,
        user: &User,
        group_key: &str,
        group_ids: &[S],
    ) -> Result<()> {
        self.user_membership(user, group_key, || {
            MembershipOp::set_many(group_key, group_ids)
        })
    }

    /// As [`add_group`](Self::add_group), for `user`'s group context.
    pub fn user_add_group(&self, user: &User, group_key: &str, group_id: &str) -> Result<()> {
        self.user_membership(user, group_key, || MembershipOp::add(group_key, group_id))
    }

    /// As [`remove_group`](Self::remove_group), for `user`'s group context.
    pub fn user_remove_group(&self, user: &User, group_key: &str, group_id: &str) -> Result<()> {
        self.user_membership(user, group_key, || {
            MembershipOp::remove(group_key, group_id)
        })
    }

    /// One operation on `user`'s people profile.
    pub fn user_people(&self, user: &User, op: PeopleOp) -> Result<()> {
        self.for_user(user, false, |who, _| {
            op.validate()?;
            let (path, body) = wire::people(who, op);
            Ok((plain(path, body), Change::None))
        })
    }

    fn user_membership(
        &self,
        user: &User,
        group_key: &str,
        op: impl FnOnce() -> Result<MembershipOp>,
    ) -> Result<()> {
        self.for_user(user, false, |who, _| {
            validate::name(group_key, "group_key")?;
            let op = op()?;
            Ok((membership_request(who, &op), Change::Groups(op)))
        })
    }

    /// The shape of every per-user call: refuse when not accepting (before
    /// looking at arguments), let `f` check arguments and build the request
    /// from the user as it is now (nothing more while opted out), register
    /// the user's session first when `registers` and it is not yet, queue
    /// the request on the user's lane, and apply `f`'s change to the user.
    /// Calls on one user run one at a time (see `UserInner::serialized`);
    /// what the queue dropped is told after, with no lock held.
    fn for_user<'a>(
        &self,
        user: &User,
        registers: bool,
        f: impl FnOnce(&Who, &UserState) -> Result<(Request, Change<'a>)>,
    ) -> Result<()> {
        // One copy of the shape for every call, as with `mutate`.
        let mut f = Some(f);
        let mut f = |who: &Who, state: &UserState| match f.take() {
            Some(f) => f(who, state),
            None => Err(Error::new(ErrorKind::Internal, "a user call ran twice")),
        };
        self.for_user_dyn(user, registers, &mut f)
    }

    fn for_user_dyn<'a>(
        &self,
        user: &User,
        registers: bool,
        f: &mut ForUserFn<'_, 'a>,
    ) -> Result<()> {
        let mut dropped = crate::delivery::Dropped::default();
        let result = user
            .0
            .serialized(|| self.for_user_serialized(user, registers, f, &mut dropped));
        self.shared.delivery.settle(dropped);
        result
    }

    fn for_user_serialized<'a>(
        &self,
        user: &User,
        registers: bool,
        f: &mut ForUserFn<'_, 'a>,
        dropped: &mut crate::delivery::Dropped,
    ) -> Result<()> {
        let s = &*self.shared;
        // Held until the requests are queued: shutdown and opt-out wait for it.
        let gate = s.gate.read();
        if !gate.accepting {
            return Err(Error::not_initialized());
        }
        let u = &*user.0;
        let state = u.state.load();
        let who = Who {
            site_id: &s.site_id,
            session_id: &u.session_id,
            distinct_id: &state.distinct_id,
        };
        let (request, change) = f(&who, &state)?;
        if gate.opt_out {
            // Checked as usual; nothing is queued or changed.
            if let Tag::UserIdentify { token } = request.tag {
                s.users.identifies.lock().remove(&token);
            }
            return Ok(());
        }
        let lane = self.shared.delivery.user_lane(u.lane_key)?;
        let mut durable = true;
        if registers && u.registered_with.load(Ordering::Acquire) != s.users.number {
            let mut registered = s.users.registered.lock();
            if registered.get(&u.session_id).is_none() {
                let now = now_ms();
                // Queued while the table is locked: another handle for this
                // user that finds it registered queues behind it.
                let (d, ok) = lane.enqueue(Request {
                    path: wire::path::SESSION,
                    body: wire::server_session_registration(&who, now, now),
                    tag: Tag::None,
                });
                dropped.merge(d);
                durable &= ok;
                registered.put(u.session_id.clone(), ());
            }
            u.registered_with.store(s.users.number, Ordering::Release);
        }
        let (d, ok) = lane.enqueue(request);
        dropped.merge(d);
        durable &= ok;
        match change {
            Change::None => {}
            Change::DistinctId(id) => {
                u.state.rcu(|cur| UserState {
                    distinct_id: id.to_string(),
                    groups: cur.groups.clone(),
                });
            }
            Change::Groups(op) => {
                u.state.rcu(|cur| {
                    let mut next = UserState::clone(cur);
                    op.apply(&mut next.groups);
                    next
                });
            }
        }
        drop(gate);
        match durable {
            true => Ok(()),
            false => Err(super::not_durable()),
        }
    }
}

/// How a per-user call changes its user, once its requests are queued.
enum Change<'a> {
    None,
    DistinctId(&'a str),
    Groups(MembershipOp),
}

impl Shared {
    /// A user's identify ended: a delivered answer may name the id the
    /// server knows the user by.
    pub(super) fn user_identify_ended(&self, token: u64, outcome: Outcome<'_>) {
        let Some((user, identify_id)) = self.users.identifies.lock().remove(&token) else {
            return;
        };
        let (Outcome::Delivered(body), Some(user)) = (outcome, user.upgrade()) else {
            return;
        };
        let answer = wire::parse_identify_response(body);
        for problem in answer.problems {
            self.diag.report(format!("identify answer: {problem}"));
        }
        if let Some(new_id) = answer.new_distinct_id {
            user.state.rcu(|cur| match cur.distinct_id == identify_id {
                true => UserState {
                    distinct_id: new_id.clone(),
                    groups: cur.groups.clone(),
                },
                // Identified again meanwhile: that identify decides.
                false => UserState::clone(cur),
            });
        }
    }
}
