//! The three-way merge that lets several processes share one state: a field
//! that `ours` changed since `base` is ours, any other field is `theirs`.
//!
//! "Field" is as fine as the state allows: the anonymous id, the distinct id,
//! the opt-out flag, each group key's ids, and the session (one session, whose
//! activity every process moves forward).

use std::collections::BTreeSet;

use crate::groups::Memberships;

use super::{LocalState, Session};

/// `base` is what `ours` and `theirs` both started from; on a conflict ours
/// wins, except that the session takes the newer of two.
pub fn merge(base: &LocalState, ours: &LocalState, theirs: &LocalState) -> LocalState {
    LocalState {
        anonymous_id: pick(&base.anonymous_id, &ours.anonymous_id, &theirs.anonymous_id).clone(),
        distinct_id: pick(&base.distinct_id, &ours.distinct_id, &theirs.distinct_id).clone(),
        session: session(&base.session, &ours.session, &theirs.session),
        groups: groups(&base.groups, &ours.groups, &theirs.groups),
        opt_out: *pick(&base.opt_out, &ours.opt_out, &theirs.opt_out),
    }
}

fn pick<'a, T: PartialEq>(base: &'a T, ours: &'a T, theirs: &'a T) -> &'a T {
    if ours != base {
        ours
    } else {
        theirs
    }
}

fn session(base: &Session, ours: &Session, theirs: &Session) -> Session {
    if ours == base {
        return theirs.clone();
    }
    if theirs == base {
        return ours.clone();
    }
    if ours.id == theirs.id {
        // Both used the same session: its activity is the later of the two,
        // and it is registered when either registered it.
        return Session {
            id: ours.id.clone(),
            start_ms: ours.start_ms.min(theirs.start_ms),
            last_activity_ms: ours.last_activity_ms.max(theirs.last_activity_ms),
            registered: ours.registered || theirs.registered,
        };
    }
    // One side only moved the old session on, the other started a new one.
    if theirs.id == base.id {
        return ours.clone();
    }
    if ours.id == base.id {
        return theirs.clone();
    }
    // Both started a new one: the later start wins, everywhere alike.
    let newer = (ours.start_ms, &ours.id) >= (theirs.start_ms, &theirs.id);
    if newer { ours } else { theirs }.clone()
}

fn groups(base: &Memberships, ours: &Memberships, theirs: &Memberships) -> Memberships {
    let keys: BTreeSet<&String> = base
        .iter()
        .chain(ours.iter())
        .chain(theirs.iter())
        .map(|(k, _)| k)
        .collect();
    let mut merged = Memberships::default();
    for key in keys {
        let (b, o, t) = (base.get(key), ours.get(key), theirs.get(key));
        if let Some(ids) = pick(&b, &o, &t) {
            merged.set(key, ids);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LocalState {
        LocalState::fresh()
    }

    #[test]
    fn each_side_keeps_what_it_changed_and_takes_the_rest() {
        let base = state();
        let mut ours = base.clone();
        ours.distinct_id = "alice".into();
        ours.groups.add("team", "t1");
        let mut theirs = base.clone();
        theirs.opt_out = true;
        theirs.groups.add("company", "c1");
        let m = merge(&base, &ours, &theirs);
        assert_eq!(m.distinct_id, "alice");
        assert!(m.opt_out, "their opt-out is not written back as false");
        assert_eq!(m.groups.get("team"), Some(&["t1".to_string()][..]));
        assert_eq!(m.groups.get("company"), Some(&["c1".to_string()][..]));
        assert_eq!(m.anonymous_id, base.anonymous_id);
    }

    #[test]
    fn a_removed_key_stays_removed_and_ours_wins_a_conflict() {
        let mut base = state();
        base.groups.add("team", "t1");
        base.groups.add("company", "c1");
        let mut ours = base.clone();
        ours.groups.remove("team", "t1");
        ours.groups.set("company", &["c2".to_string()]);
        let mut theirs = base.clone();
        theirs.groups.set("company", &["c3".to_string()]);
        theirs.opt_out = true;
        let m = merge(&base, &ours, &theirs);
        assert_eq!(m.groups.get("team"), None);
        assert_eq!(m.groups.get("company"), Some(&["c2".to_string()][..]));
        // Opting back in is a change of ours, and wins.
        let mut back_in = theirs.clone();
        back_in.opt_out = false;
        assert!(!merge(&theirs, &back_in, &theirs).opt_out);
    }

    #[test]
    fn sessions_merge_to_one() {
        let base = state();
        let mut ours = base.clone();
        ours.session.last_activity_ms += 10;
        let mut theirs = base.clone();
        theirs.session.last_activity_ms += 20;
        theirs.session.registered = true;
        let m = merge(&base, &ours, &theirs).session;
        assert_eq!(m.id, base.session.id);
        assert_eq!(m.last_activity_ms, base.session.last_activity_ms + 20);
        assert!(m.registered);

        // A new session beats activity on the old one, from either side.
        let mut fresh = base.clone();
        fresh.session = Session::new(base.session.start_ms + 1);
        assert_eq!(merge(&base, &fresh, &theirs).session, fresh.session);
        assert_eq!(merge(&base, &theirs, &fresh).session, fresh.session);

        // Two new sessions: both sides settle on the later one.
        let mut later = base.clone();
        later.session = Session::new(base.session.start_ms + 5);
        let a = merge(&base, &fresh, &later).session;
        let b = merge(&base, &later, &fresh).session;
        assert_eq!(a, later.session);
        assert_eq!(a, b);
    }

    #[test]
    fn nothing_changed_on_our_side_takes_theirs_whole() {
        let base = state();
        let mut theirs = state();
        theirs.groups.add("team", "x");
        assert_eq!(merge(&base, &base, &theirs), theirs);
        assert_eq!(merge(&base, &theirs, &base), theirs);
    }
}
