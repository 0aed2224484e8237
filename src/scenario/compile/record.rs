//! `record` nodes: an optional prompt, length and silence limits, an optional transcript
//! stored in a variable, `next` and the optional `on.empty`.
//!
//! Deliberately not here: capturing audio or transcribing it (the engine and `asr`).

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawNode;
use crate::scenario::{
    DEFAULT_RECORD_FINAL_SILENCE, DEFAULT_RECORD_MAX_LENGTH, Jump, NodeKind, Record,
};

impl<'a> Compiler<'a> {
    pub(super) fn record(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let raw = &node.record.as_ref()?.value;
        let prompt = raw
            .prompt
            .as_ref()
            .map(|p| self.prompts(p))
            .unwrap_or_default();
        let max_length = self.duration(
            raw.max_length.as_ref(),
            DEFAULT_RECORD_MAX_LENGTH,
            "max_length",
        );
        let final_silence = self.duration(
            raw.final_silence.as_ref(),
            DEFAULT_RECORD_FINAL_SILENCE,
            "final_silence",
        );
        let transcribe = raw.transcribe.unwrap_or(false);
        let store = match &raw.store {
            Some(var) => {
                if !transcribe {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(var),
                        "`store` keeps the transcript, but `transcribe` is not true",
                    )
                    .hint("add `transcribe: true`");
                }
                Some(self.store_var(var, "`store` names")?)
            }
            None => None,
        };
        let on = self.on_map(node, &["empty"], "record result (only `empty`)");
        let next = self.required_next(name, node, "record");
        let empty = match on.get("empty") {
            Some(Some(t)) => Some(Jump::local(*t, "empty")),
            Some(None) => return None,
            None => None,
        };
        Some(NodeKind::Record(Box::new(Record {
            prompt,
            max_length,
            final_silence,
            transcribe,
            store,
            next: next?,
            empty,
        })))
    }
}
