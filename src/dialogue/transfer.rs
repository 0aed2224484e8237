//! `transfer` nodes: [`Action::Transfer`] to the target rendered from the call's
//! variables — only when the scenario allows it (targets in the file, `allow.transfer`);
//! otherwise nothing is dialled and the node fails at once. A connected caller ends the
//! dialogue with the node's outcome; `busy`, `noanswer` and `failed` (also the node's
//! timeout) take their jumps. A result after the timeout is ignored.
//!
//! Deliberately not here: SIP REFER, calling the agent, bridging (`engine::transfer`).

use std::sync::Arc;
use std::time::Instant;

use super::{Action, Dialogue, JournalEvent, Next, State, Timer, TransferOutcome, Wait};
use crate::scenario::{NodeId, NodeKind, Transfer};

impl Dialogue {
    pub(super) fn enter_transfer(&mut self, now: Instant, id: NodeId, t: &Transfer) -> Next {
        let scenario = Arc::clone(&self.scenario);
        let mut announcement = Vec::new();
        self.render(&t.announcement, None, &mut announcement);
        let tid = self.next_id();
        let target = t.target.render(&self.result.variables);
        let allowed = scenario.transfer_allow.allows(&target);
        if allowed {
            self.actions.push_back(Action::Transfer {
                id: tid,
                target: target.clone(),
                mode: t.mode,
                announcement,
            });
        }
        let deadline = self.arm(now, Timer::Transfer, t.timeout);
        self.state = State::Waiting {
            node: id,
            wait: Wait::Transfer,
            id: tid,
            deadline,
        };
        if !allowed {
            // Whoever set the variable does not choose where the robot calls
            // (issue 12): the node's `failed` route, and nothing is dialled.
            tracing::warn!(
                scenario = %scenario.name,
                node = %scenario.node_name(id),
                target = %crate::pii::Pii(&target),
                "transfer target is not allowed by the scenario (targets in the file, `allow.transfer`); not dialled"
            );
            self.on_transfer(
                now,
                tid,
                TransferOutcome::Failed("target not allowed by the scenario".to_owned()),
            );
        }
        None
    }

    pub(super) fn on_transfer(&mut self, now: Instant, id: u64, outcome: TransferOutcome) {
        let Some(node) = self.waiting_for(Wait::Transfer, id) else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("transfer result {id} after its node's timeout"),
                },
            );
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(NodeKind::Transfer(t)) = scenario.node(node).map(|n| &n.kind) else {
            return;
        };
        let what = match &outcome {
            TransferOutcome::Connected => "transfer connected".to_string(),
            TransferOutcome::Busy => "transfer busy".to_string(),
            TransferOutcome::NoAnswer => "transfer not answered".to_string(),
            TransferOutcome::Failed(e) => format!("transfer failed: {e}"),
        };
        self.note(now, JournalEvent::Result { what });
        match outcome {
            TransferOutcome::Connected => {
                self.result.outcome = Some(t.outcome.clone());
                self.robot_hangup(now);
            }
            TransferOutcome::Busy => self.take(now, node, &t.busy),
            TransferOutcome::NoAnswer => self.take(now, node, &t.noanswer),
            TransferOutcome::Failed(_) => self.take(now, node, &t.failed),
        }
    }
}
