//! The answers an `ask` accepts by intent: the node's `on:` targets, its own intents
//! (compiled by the function `global:` uses too, `../intent.rs`), the variable that stores
//! the answer, and the global intents that apply here — copies of those compiled once
//! under `global:`, narrowed to the node's input modes and digit string, and checked for
//! keys its own intents already use.
//!
//! Deliberately not here: the digit string (`digits.rs`), no-input and no-match
//! (`escalation.rs`).

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::AskContext;
use crate::scenario::compile::core::{pos, suggest};
use crate::scenario::compile::intent::IntentScope;
use crate::scenario::compile::{Compiler, DIGITS, NOINPUT, NOMATCH};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{RawAsk, RawGlobals, RawNode};
use crate::scenario::{AnswerType, Intent, NodeId};

impl<'a> Compiler<'a> {
    /// The node's `on:` map (its keys: the intents, `noinput`, `nomatch`, and `digits` when
    /// it collects digits) and its `next:`. Also reports an `ask` with nothing to answer.
    pub(super) fn answer_targets(
        &mut self,
        node: &RawNode,
        ask: &Spanned<RawAsk>,
    ) -> (HashMap<String, Option<NodeId>>, Option<Option<NodeId>>) {
        let raw = &ask.value;
        let intents = raw.intents.iter().flat_map(|i| &i.value.0);
        let mut allowed: Vec<&str> = intents.map(|(n, _)| n.value.as_str()).collect();
        allowed.extend([NOINPUT, NOMATCH]);
        if raw.digits.is_some() {
            allowed.push(DIGITS);
        }
        let answer = raw
            .answer
            .as_ref()
            .and_then(|a| AnswerType::parse(&a.value));
        if let Some(a) = answer {
            allowed.push(a.name());
        }
        let on = self.on_map(node, &allowed, "intent of this `ask`");
        let next = node.next.as_ref().map(|n| self.target(n, "`next` target"));

        let no_intents = raw.intents.as_ref().is_none_or(|i| i.value.0.is_empty());
        if no_intents && raw.digits.is_none() && raw.answer.is_none() {
            match &raw.intents {
                Some(i) => {
                    self.error(ErrorKind::InvalidValue, pos(i), "`intents` is empty")
                        .hint("e.g. `intents: { confirm: { dtmf: [\"1\"] } }`");
                }
                None => {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(ask),
                        "an `ask` needs `intents` or `digits`",
                    )
                    .hint("e.g. `intents: { confirm: { dtmf: [\"1\"] } }`, or `digits: { min: 4, max: 8 }`");
                }
            }
        }
        (on, next)
    }

    /// The node's own intents, in file order.
    pub(super) fn local_intents(&mut self, cx: &mut AskContext<'_>) -> Vec<Intent> {
        let raw = &cx.ask.value;
        let scope = IntentScope::Ask {
            on: &cx.on,
            next: cx.next,
            dtmf_in: cx.dtmf_in,
            speech_in: cx.speech_in,
            digits: raw.digits.is_some() || raw.answer.is_some(),
        };
        let mut intents = Vec::new();
        for (name, intent) in raw.intents.iter().flat_map(|i| &i.value.0) {
            match self.intent(name, &intent.value, &scope, &mut cx.key_owner) {
                Some(intent) => intents.push(intent),
                None => cx.complete = false,
            }
        }
        intents
    }

    /// `store:` — the variable that receives the answer. Storing into `language` needs
    /// intents named after the languages.
    pub(super) fn answer_store(
        &mut self,
        cx: &mut AskContext<'_>,
        intents: &[Intent],
    ) -> Option<String> {
        let var = cx.ask.value.store.as_ref()?;
        let s = self.store_var(var, "`store` names");
        if s.as_deref() == Some("language") {
            for intent in intents {
                if !self.languages.contains(&intent.name) {
                    let langs = self.languages.join(", ");
                    self.error(
                        ErrorKind::InvalidValue,
                        intent.pos,
                        format!(
                            "intent `{}` would be stored as the language, but it is not in `languages`",
                            intent.name
                        ),
                    )
                    .hint(format!("name the intents after the languages: {}", langs));
                    cx.complete = false;
                }
            }
        }
        s
    }

    /// Appends the global intents that apply to this `ask`: those `globals:` selects (all
    /// by default) that no local intent overrides by name, narrowed to what the node takes
    /// (no digit keys next to a digit string; no keys without `dtmf`, no phrases without
    /// `speech`), leaving out any left with nothing to select them.
    pub(super) fn applicable_globals(
        &mut self,
        cx: &mut AskContext<'_>,
        intents: &mut Vec<Intent>,
        digits: bool,
    ) {
        let selection = self.global_selection(cx);
        let applicable: Vec<Intent> = self
            .globals
            .iter()
            .filter(|g| {
                selection.as_ref().is_none_or(|s| s.contains(&g.name))
                    && !intents.iter().any(|i| !i.global && i.name == g.name)
            })
            .map(|g| {
                let mut g = g.clone();
                if digits {
                    g.dtmf
                        .retain(|k| !k.starts_with(|c: char| c.is_ascii_digit()));
                }
                if !cx.dtmf_in {
                    g.dtmf.clear();
                }
                if !cx.speech_in {
                    g.phrases.clear();
                }
                g
            })
            .filter(|g| !(g.dtmf.is_empty() && g.phrases.is_empty()))
            .collect();
        for g in applicable {
            let mut clash = false;
            for k in &g.dtmf {
                if let Some(owner) = cx.key_owner.get(k) {
                    let at = intents
                        .iter()
                        .find(|i| &i.name == owner)
                        .map_or(pos(cx.name), |i| i.pos);
                    self.error(
                        ErrorKind::InvalidValue,
                        at,
                        format!(
                            "key `{k}` of intent `{owner}` is also the key of global intent `{}`",
                            g.name
                        ),
                    )
                    .hint(format!(
                        "name the local intent `{}` to override the global one, pick another key, or list the globals that apply with `globals: […]`",
                        g.name
                    ));
                    clash = true;
                }
            }
            if clash {
                cx.complete = false;
                continue;
            }
            intents.push(g);
        }
    }

    /// `globals:` — `None`: all (the default); otherwise the names listed (`false`: none).
    /// Reports names that are not global intents.
    fn global_selection(&mut self, cx: &AskContext<'_>) -> Option<Vec<String>> {
        let globals = cx.ask.value.globals.as_ref();
        match globals.map(|g| &g.value) {
            None | Some(RawGlobals::All(true)) => None,
            Some(RawGlobals::All(false)) => Some(Vec::new()),
            Some(RawGlobals::Only(names)) => {
                for n in names {
                    if !self.globals.iter().any(|g| &g.name == n) {
                        let at = globals.map_or(pos(cx.ask), pos);
                        let known: Vec<String> =
                            self.globals.iter().map(|g| g.name.clone()).collect();
                        let hint = suggest(n, known.iter().map(String::as_str), "global intent");
                        self.error(
                            ErrorKind::UnknownTarget,
                            at,
                            format!("`{n}` is not a global intent"),
                        )
                        .hint(hint);
                    }
                }
                Some(names.clone())
            }
        }
    }
}
