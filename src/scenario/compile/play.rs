//! `play` nodes: a non-empty prompt list, then `next` when playback ends.
//!
//! Deliberately not here: the prompt items themselves (`prompts.rs`), or barge-in (keys
//! during a `play` are ignored at run time; only `ask` listens).

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::NodeKind;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawNode;

impl<'a> Compiler<'a> {
    pub(super) fn play(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let list = node.play.as_ref()?;
        let prompts = self.prompts(list);
        if list.value.is_empty() {
            self.error(ErrorKind::InvalidValue, pos(list), "`play` list is empty");
        }
        let next = self.required_next(name, node, "play")?;
        Some(NodeKind::Play { prompts, next })
    }
}
