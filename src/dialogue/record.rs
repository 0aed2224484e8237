//! `record` nodes: the prompt, then [`Action::Record`]; the recording's result (its
//! length, transcript and file) becomes the node's answer, the transcript is stored when
//! asked for, and an empty recording takes `on.empty` (or `next`). No result within
//! `max_length + final_silence +` [`RECORD_RESULT_GRACE`] counts as an empty recording.
//!
//! Deliberately not here: capturing audio or transcribing it (the engine and `asr`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Action, Answer, Dialogue, JournalEvent, Next, RecordRequest, State, Timer, Wait};
use crate::scenario::{NodeId, NodeKind, Record};

/// How long after `max_length + final_silence` the dialogue waits for a recording result.
pub const RECORD_RESULT_GRACE: Duration = Duration::from_secs(10);

impl Dialogue {
    /// The recording the dialogue is waiting for, if any: what [`Action::Record`] asked.
    /// Lets a driver that captures audio itself (or a simulator) find the request even
    /// when the action was consumed by the call core.
    pub fn recording(&self) -> Option<RecordRequest> {
        let State::Waiting {
            node,
            wait: Wait::Record,
            id,
            ..
        } = &self.state
        else {
            return None;
        };
        match &self.scenario.node(*node)?.kind {
            NodeKind::Record(r) => Some(RecordRequest {
                id: *id,
                max_length: r.max_length,
                final_silence: r.final_silence,
                transcribe: r.transcribe,
            }),
            _ => None,
        }
    }

    /// The `answers` key a recording under way will be filed under (its node's qualified
    /// name): the recording's file is named after it.
    pub fn recording_answer_key(&self) -> Option<String> {
        let State::Waiting {
            node,
            wait: Wait::Record,
            ..
        } = &self.state
        else {
            return None;
        };
        self.scenario.node(*node).map(|n| self.path_name(n))
    }

    pub(super) fn enter_record(&mut self, now: Instant, id: NodeId, rec: &Record) -> Next {
        let mut refs = Vec::new();
        self.render(&rec.prompt, None, &mut refs);
        if refs.is_empty() {
            self.start_record(now, id);
        } else {
            let play = self.next_play(refs);
            self.state = State::RecordPrompt { node: id, play };
        }
        None
    }

    pub(super) fn start_record(&mut self, now: Instant, node: NodeId) {
        let scenario = Arc::clone(&self.scenario);
        let Some(NodeKind::Record(rec)) = scenario.node(node).map(|n| &n.kind) else {
            return;
        };
        let id = self.next_id();
        self.actions.push_back(Action::Record {
            id,
            max_length: rec.max_length,
            final_silence: rec.final_silence,
            transcribe: rec.transcribe,
        });
        let deadline = self.arm(
            now,
            Timer::Recording,
            rec.max_length + rec.final_silence + RECORD_RESULT_GRACE,
        );
        self.state = State::Waiting {
            node,
            wait: Wait::Record,
            id,
            deadline,
        };
    }

    /// The caller hung up during recording `id`, which has now ended: its answer (and
    /// `store` variable) is filed as [`Input::RecordingDone`](super::Input) would, then the
    /// dialogue ends as on [`Input::Hangup`](super::Input) — nothing after the `record`
    /// node runs, the caller is gone.
    pub fn hangup_with_recording(
        &mut self,
        now: Instant,
        id: u64,
        duration: Duration,
        transcript: Option<String>,
        file: Option<String>,
    ) {
        self.on_recording_then(now, id, duration, transcript, file, false);
        self.caller_hangup(now);
    }

    pub(super) fn on_recording(
        &mut self,
        now: Instant,
        id: u64,
        duration: Duration,
        transcript: Option<String>,
        file: Option<String>,
    ) {
        self.on_recording_then(now, id, duration, transcript, file, true);
    }

    fn on_recording_then(
        &mut self,
        now: Instant,
        id: u64,
        duration: Duration,
        transcript: Option<String>,
        file: Option<String>,
        go_on: bool,
    ) {
        let Some(node) = self.waiting_for(Wait::Record, id) else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("recording result {id} after its node's timeout"),
                },
            );
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(n) = scenario.node(node) else {
            return;
        };
        let NodeKind::Record(rec) = &n.kind else {
            return;
        };
        let text = transcript.unwrap_or_default();
        let empty = duration.is_zero() || (rec.transcribe && text.trim().is_empty());
        self.note(
            now,
            JournalEvent::Result {
                what: format!(
                    "recording of {:.1}s{}",
                    duration.as_secs_f64(),
                    if empty { " (empty)" } else { "" }
                ),
            },
        );
        let key = self.path_name(n);
        self.result.answers.insert(
            key,
            Answer {
                input: "recording".to_string(),
                value: text.clone(),
                reason: None,
                intent: None,
                confidence: None,
                file,
            },
        );
        if let Some(var) = &rec.store {
            self.set_var(now, var, text);
        }
        if !go_on {
            return;
        }
        let jump = if empty {
            rec.empty.as_ref().unwrap_or(&rec.next)
        } else {
            &rec.next
        };
        self.take(now, node, jump);
    }
}
