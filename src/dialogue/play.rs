//! `play` nodes: play the prompts (keys are ignored meanwhile), then go to `next`; an
//! empty list (every item's `when:` false) goes on at once.
//!
//! Deliberately not here: rendering prompt items (`prompts.rs`), or playing them (engine).

use std::time::Instant;

use super::{Dialogue, Next, State, local};
use crate::scenario::{Jump, Node, NodeId, NodeKind, PromptItem};

impl Dialogue {
    pub(super) fn enter_play(&mut self, id: NodeId, prompts: &[PromptItem], next: &Jump) -> Next {
        let mut refs = Vec::new();
        self.render(prompts, None, &mut refs);
        if refs.is_empty() {
            return local(id, next);
        }
        let play = self.next_play(refs);
        self.state = State::Playing { node: id, play };
        None
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
