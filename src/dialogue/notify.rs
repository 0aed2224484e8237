//! `notify` and `sms` nodes: a fire-and-forget CRM event with its data rendered from the
//! call's variables, then `next` at once.
//!
//! Deliberately not here: delivering the event (`crm`); no result comes back.

use super::{Action, Dialogue, Next, local};
use crate::scenario::{JsonTemplate, Jump, NodeId};

impl Dialogue {
    pub(super) fn enter_notify(
        &mut self,
        id: NodeId,
        event: &str,
        data: &JsonTemplate,
        next: &Jump,
    ) -> Next {
        self.actions.push_back(Action::Notify {
            event: event.to_string(),
            data: data.render(&self.result.variables),
        });
        local(id, next)
    }
}
