//! `ask` nodes: a question, then the caller's answer by key or speech — an intent, a digit
//! string, or "say that again" — with its timing, confirmation of doubtful speech, and
//! count-based escalation of no-input and no-match. [`Compiler::ask`] runs the pieces in
//! the order their problems are reported:
//!
//! 1. the question, its input modes and timeouts (`timing.rs`), the speech confidence
//!    threshold (`confirm.rs`);
//! 2. the answers: the node's `on:` targets, its own intents, the variable that stores the
//!    answer (`intents.rs`), the digit string (`digits.rs`), then the global intents that
//!    apply here (`intents.rs`);
//! 3. "did you say …?" (`confirm.rs`);
//! 4. `noinput` and `nomatch`: targets and reprompts, the node's own or `global:`'s
//!    (`escalation.rs`).
//!
//! Deliberately not here: compiling one intent (shared with `global:`, in `../intent.rs`),
//! or anything that happens during a call (`dialogue`).

mod confirm;
mod digits;
mod escalation;
mod intents;
mod timing;

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{RawAsk, RawNode};
use crate::scenario::{Ask, InputMode, NodeId, NodeKind, PromptItem};

/// What the pieces of one `ask` share while it is compiled.
struct AskContext<'r> {
    /// The node's name: where problems of the node as a whole are reported.
    name: &'r Spanned<String>,
    node: &'r RawNode,
    ask: &'r Spanned<RawAsk>,
    /// The name as messages show it (`yes_no.ask` inside a sub-dialogue).
    qualified: String,
    dtmf_in: bool,
    speech_in: bool,
    /// The node's `on:` map: intent, `noinput`, `nomatch` or `digits` → target (`None`:
    /// not a node, already reported).
    on: HashMap<String, Option<NodeId>>,
    /// The node's `next:`, for answers without an `on:` entry.
    next: Option<Option<NodeId>>,
    /// DTMF key → the local intent it selects.
    key_owner: HashMap<String, String>,
    /// False once a problem was reported that leaves the node out.
    complete: bool,
}

impl<'a> Compiler<'a> {
    pub(super) fn ask(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let ask = node.ask.as_ref()?;
        let raw: &RawAsk = &ask.value;
        let qualified = self.qualify(&name.value);
        let prompt = self.question(raw);
        let inputs = self.input_modes(raw);
        let timing = self.timing(raw);
        let confidence = self.confidence(raw);
        let (on, next) = self.answer_targets(node, ask);
        let mut cx = AskContext {
            name,
            node,
            ask,
            qualified,
            dtmf_in: inputs.contains(&InputMode::Dtmf),
            speech_in: inputs.contains(&InputMode::Speech),
            on,
            next,
            key_owner: HashMap::new(),
            complete: true,
        };
        let mut intents = self.local_intents(&mut cx);
        let store = self.answer_store(&mut cx, &intents);
        let answer = self.answer_type(&mut cx);
        let (answer, digits) = match answer {
            Some((ty, keys)) => (Some(ty), Some(keys)),
            None => (None, self.digit_string(&mut cx)),
        };
        self.applicable_globals(&mut cx, &mut intents, digits.is_some());
        let confirm = self.confirmation(&cx);
        let (noinput, nomatch) = self.escalations(&cx);

        if !cx.complete {
            return None;
        }
        Some(NodeKind::Ask(Box::new(Ask {
            prompt,
            inputs,
            timeout: timing.timeout,
            interdigit_timeout: timing.interdigit,
            term_timeout: timing.term,
            complete_timeout: timing.complete,
            incomplete_timeout: timing.incomplete,
            max_speech_timeout: timing.max_speech,
            barge_in: raw.barge_in.unwrap_or(true),
            intents,
            digits,
            confidence,
            confirm,
            store,
            noinput: noinput?,
            nomatch: nomatch?,
            spoken_keys: raw.spoken_keys.as_ref().is_none_or(|s| s.value),
            typeahead: raw.typeahead.as_ref().is_none_or(|t| t.value),
            answer,
        })))
    }

    /// The question's prompt list, which must not be empty.
    fn question(&mut self, raw: &RawAsk) -> Vec<PromptItem> {
        let prompt = self.prompts(&raw.prompt);
        if raw.prompt.value.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(&raw.prompt),
                "`prompt` list is empty",
            )
            .hint("an `ask` must say what it asks");
        }
        prompt
    }
}
