//! Answers the core asked to hear about: an identify's answer adopts the
//! server's distinct id and hydrates the memberships.

use std::sync::atomic::Ordering;

use crate::delivery::{Outcome, Tag};
use crate::groups::Memberships;
use crate::wire;

use super::Shared;

impl Shared {
    /// The delivery thread reports an ended request: identify answers adopt
    /// the server's distinct id and hydrate memberships.
    pub(super) fn on_complete(&self, tag: Tag, outcome: Outcome<'_>) {
        let (token, epoch) = match tag {
            Tag::Identify { token, epoch } => (token, epoch),
            Tag::UserIdentify { token } => return self.user_identify_ended(token, outcome),
            Tag::None => return,
        };
        let mut inner = self.inner.lock();
        if self.finished.load(Ordering::Acquire) || inner.epoch != epoch {
            return; // a later reset (or the end) made this answer stale
        }
        let Outcome::Delivered(body) = outcome else {
            inner
                .hydration
                .complete(token, None, &mut Memberships::default());
            return;
        };
        let answer = wire::parse_identify_response(body);
        for problem in answer.problems {
            self.diag.report(format!("identify answer: {problem}"));
        }
        let identify_id = inner.hydration.identify_id(token).map(str::to_string);
        if let (Some(new_id), Some(identify_id)) = (answer.new_distinct_id, identify_id) {
            if new_id != identify_id && inner.state.distinct_id == identify_id {
                inner.state.distinct_id = new_id;
            }
        }
        let inner = &mut *inner;
        inner
            .hydration
            .complete(token, answer.memberships, &mut inner.state.groups);
        self.mark_dirty(inner);
    }
}
