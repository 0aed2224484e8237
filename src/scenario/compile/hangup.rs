//! `hangup` nodes: an optional goodbye prompt list and outcome, then the robot hangs up.
//!
//! Deliberately not here: `outcome:` on other nodes (compiled with every node in
//! `mod.rs`).

use super::Compiler;
use crate::scenario::NodeKind;
use crate::scenario::raw::RawNode;

impl<'a> Compiler<'a> {
    pub(super) fn hangup(&mut self, node: &RawNode) -> Option<NodeKind> {
        let hangup = &node.hangup.as_ref()?.value;
        let outcome = hangup.outcome.as_ref().and_then(|o| self.outcome(o));
        let prompts = hangup
            .play
            .as_ref()
            .map(|p| self.prompts(p))
            .unwrap_or_default();
        Some(NodeKind::Hangup { outcome, prompts })
    }
}
