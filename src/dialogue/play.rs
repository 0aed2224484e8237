//! `play` nodes: play the prompts, then go to `next`; an empty list (every item's `when:`
//! false) goes on at once.
//!
//! Keys during a `play` (VoiceXML 2.0 type-ahead, §4.1.8 "Prompt Queueing and Input
//! Collection"): when the play leads into a question that takes keys — its `next` reaches
//! an `ask` through nodes that take no time (`set`, `goto`, `notify`, `sms`) — a key
//! pressed while a prompt item that allows barge-in plays stops the play-out and is kept
//! in the type-ahead buffer; the question then starts with those keys, as if typed at once
//! (its prompt is not played when it allows barge-in). Each item's `barge_in:` decides; the
//! default is the question's `barge_in`. A question with `typeahead: false`, or whose first
//! prompt item does not allow barge-in, discards the buffer. Keys during any other `play`
//! are ignored.
//!
//! ```text
//!  Playing ──key, item bargeable, leads to ask──► StopPlayback, buffer += key ──► next …
//!     │                                                                   └► ask: keys
//!     └──key otherwise──► ignored
//! ```
//!
//! Deliberately not here: rendering prompt items (`prompts.rs`), or playing them (engine).

use std::time::Instant;

use super::{Action, Dialogue, JournalEvent, Next, State, local};
use crate::scenario::{Ask, InputMode, Jump, Node, NodeId, NodeKind, PromptItem};

/// Nodes followed from a `play` to find the question it leads into.
const TYPEAHEAD_REACH: usize = 16;

impl Dialogue {
    pub(super) fn enter_play(&mut self, id: NodeId, prompts: &[PromptItem], next: &Jump) -> Next {
        let mut refs = Vec::new();
        // Barge-in (and so type-ahead) only where the play leads into a question.
        let lead = self.question_after(next.target).map(|a| a.barge_in);
        self.render(prompts, lead, &mut refs);
        if refs.is_empty() {
            return local(id, next);
        }
        let barge_in = refs.iter().map(|r| r.barge_in).collect();
        let play = self.next_play(refs);
        self.state = State::Playing {
            node: id,
            play,
            index: 0,
            barge_in,
        };
        None
    }

    /// The `ask` that taking `target` reaches without waiting (through `set`, `goto`,
    /// `notify`/`sms`), if it takes keys.
    pub(super) fn question_after(&self, mut target: NodeId) -> Option<&Ask> {
        for _ in 0..TYPEAHEAD_REACH {
            match &self.scenario.node(target)?.kind {
                NodeKind::Ask(ask) if ask.inputs.contains(&InputMode::Dtmf) => return Some(ask),
                NodeKind::Set { next, .. } | NodeKind::Notify { next, .. } => target = next.target,
                NodeKind::Goto { target: t } => target = t.target,
                _ => return None,
            }
        }
        None
    }

    /// A key while a `play` node plays: type-ahead for the question it leads into, or
    /// ignored.
    pub(super) fn play_key(&mut self, now: Instant, key: char) {
        let State::Playing {
            index, barge_in, ..
        } = &self.state
        else {
            return;
        };
        let bargeable = barge_in
            .get(*index)
            .or(barge_in.last())
            .copied()
            .unwrap_or(false);
        if !bargeable {
            tracing::debug!("key during a play that does not lead into a question; ignored");
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("key {key} during a prompt that is not followed by a question"),
                },
            );
            return;
        }
        if self.typeahead.is_empty() {
            self.actions.push_back(Action::StopPlayback);
        }
        if self.typeahead.len() < crate::scenario::MAX_KEYS {
            self.typeahead.push(key);
        }
        self.note(now, JournalEvent::TypeAhead { key });
    }

    /// Prompt `index` of the play-out `id` of a `play` node is on the wire.
    pub(super) fn play_prompt_started(&mut self, id: u64, at: usize) {
        if let State::Playing { play, index, .. } = &mut self.state
            && *play == id
        {
            *index = at;
        }
    }

    /// The prompts of `play` node `node` have been played.
    pub(super) fn play_done(&mut self, now: Instant, node: NodeId) {
        if let Some(Node {
            kind: NodeKind::Play { next, .. },
            ..
        }) = self.scenario.clone().node(node)
        {
            self.take(now, node, next);
        }
    }
}
