//! `transfer` nodes: the target (a template), blind or bridged, the agent's announcement,
//! the timeout, the outcome on success, and where `busy`, `noanswer` and `failed` go
//! (each, or `next` for all).
//!
//! Deliberately not here: which targets are allowed at run time (`checks.rs` collects the
//! allow-list; `scenario::allow` matches it), or SIP REFER and bridging (`engine`).

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{RawNode, RawTransferMode};
use crate::scenario::{DEFAULT_TRANSFER_TIMEOUT, Jump, NodeKind, Transfer, TransferMode};

impl<'a> Compiler<'a> {
    pub(super) fn transfer(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let raw = &node.transfer.as_ref()?.value;
        let target = self.template(&raw.target);
        if raw.target.value.trim().is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(&raw.target),
                "transfer `target` is empty",
            )
            .hint("e.g. `sip:sales@pbx.example.com` or a number the trunk can dial");
        }
        let announcement = raw
            .announcement
            .as_ref()
            .map(|p| self.prompts(p))
            .unwrap_or_default();
        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_TRANSFER_TIMEOUT, "timeout");
        let outcome = match &raw.outcome {
            Some(o) => self.outcome(o)?,
            None => "transferred".to_string(),
        };
        let on = self.on_map(
            node,
            &["busy", "noanswer", "failed"],
            "transfer result (`busy`, `noanswer`, `failed`)",
        );
        let next = node.next.as_ref().map(|n| self.target(n, "`next` target"));
        let mut jumps = Vec::new();
        let qualified = self.qualify(&name.value);
        for key in ["busy", "noanswer", "failed"] {
            jumps.push(self.on_or_next(&on, next, key, pos(name), || {
                (
                    format!("`transfer` node `{qualified}` does not handle `{key}`"),
                    format!("add `{key}: <node>` under `on:`, or a `next:` for every failure"),
                )
            }));
        }
        let [busy, noanswer, failed]: [Option<Jump>; 3] = jumps.try_into().ok()?;
        Some(NodeKind::Transfer(Box::new(Transfer {
            target: target?,
            mode: match raw.mode {
                Some(RawTransferMode::Blind) => TransferMode::Blind,
                _ => TransferMode::Bridged,
            },
            announcement,
            timeout,
            outcome,
            busy: busy?,
            noanswer: noanswer?,
            failed: failed?,
        })))
    }
}
