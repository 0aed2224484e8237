//! How a dialogue ends: a `hangup` node (its outcome, its goodbye prompts, then the robot
//! hangs up), the caller hanging up (outcome `caller_hangup` unless one was recorded), or
//! a scenario fault at run time (outcome `error`). Ending leaves every sub-dialogue.
//!
//! Deliberately not here: the SIP BYE (engine).

use std::time::Instant;

use super::{
    Action, Dialogue, HangupBy, JournalEvent, Next, OUTCOME_CALLER_HANGUP, OUTCOME_ERROR, State,
};
use crate::scenario::PromptItem;

impl Dialogue {
    pub(super) fn enter_hangup(
        &mut self,
        now: Instant,
        outcome: Option<&String>,
        prompts: &[PromptItem],
    ) -> Next {
        if let Some(outcome) = outcome {
            self.result.outcome = Some(outcome.clone());
        }
        let mut refs = Vec::new();
        self.render(prompts, None, &mut refs);
        if refs.is_empty() {
            self.robot_hangup(now);
        } else {
            let play = self.next_play(refs);
            self.state = State::HangingUp { play };
        }
        None
    }
    fn finish(&mut self, now: Instant, by: HangupBy) {
        self.unwind();
        self.result.hangup_by = Some(by);
        self.state = State::Finished;
        self.note(
            now,
            JournalEvent::Finished {
                outcome: self.result.outcome.clone(),
                by,
            },
        );
    }

    pub(super) fn robot_hangup(&mut self, now: Instant) {
        self.actions.push_back(Action::Hangup);
        self.finish(now, HangupBy::Robot);
    }

    pub(super) fn caller_hangup(&mut self, now: Instant) {
        if matches!(self.state, State::Finished) {
            return;
        }
        // Nothing queued matters any more: the call is gone.
        self.actions.clear();
        self.result
            .outcome
            .get_or_insert_with(|| OUTCOME_CALLER_HANGUP.to_string());
        self.finish(now, HangupBy::Caller);
    }

    pub(super) fn fail(&mut self, now: Instant, reason: &str) {
        tracing::error!(scenario = %self.scenario.name, reason, "dialogue stopped");
        self.result.outcome = Some(OUTCOME_ERROR.to_string());
        self.robot_hangup(now);
    }
}
