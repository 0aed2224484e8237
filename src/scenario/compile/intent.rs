//! One intent, local to an `ask` or declared under `global:`, compiled by one function for
//! both: its name, its DTMF keys and phrases, what it is called in "did you say …?", and
//! its action — a jump, or repeating the question. The scope ([`IntentScope`]) supplies
//! what differs: the `on:` map its target comes from (`global.on` targets are global jumps
//! keyed `global.<name>`), the fallback `next` of an `ask`, and which selectors the `ask`'s
//! input modes and digit string require.
//!
//! Global intents are compiled once, in `global.rs`; each `ask` then takes a copy of those
//! that apply to it, narrowed to its input modes (`ask/intents.rs`). Deliberately not here:
//! matching keys or speech against intents (that is `dialogue` and `nlu`).

use std::collections::{BTreeMap, HashMap};

use serde_saphyr::Spanned;

use super::core::{is_dtmf_key, is_identifier, pos};
use super::{Compiler, DIGITS, NOINPUT, NOMATCH};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawIntent;
use crate::scenario::{Intent, IntentAction, Jump, NodeId};

/// Where an intent is declared.
pub(super) enum IntentScope<'s> {
    /// Under `global:`; targets come from `global.on`.
    Global {
        on: &'s HashMap<String, Option<NodeId>>,
    },
    /// In an `ask`; targets come from the node's `on:`, else its `next:`.
    Ask {
        on: &'s HashMap<String, Option<NodeId>>,
        /// The node's `next:` (`Some(None)`: written, but not a node).
        next: Option<Option<NodeId>>,
        dtmf_in: bool,
        speech_in: bool,
        /// The `ask` also collects a digit string.
        digits: bool,
    },
}

impl IntentScope<'_> {
    fn on(&self) -> &HashMap<String, Option<NodeId>> {
        match self {
            IntentScope::Global { on } | IntentScope::Ask { on, .. } => on,
        }
    }

    /// How the `on:` map is written, for hints.
    fn on_key(&self) -> &'static str {
        match self {
            IntentScope::Global { .. } => "global.on",
            IntentScope::Ask { .. } => "on",
        }
    }
}

/// The keys and phrases that select an intent.
struct Selectors {
    dtmf: Vec<String>,
    phrases: BTreeMap<String, Vec<String>>,
}

impl<'a> Compiler<'a> {
    /// Compiles one intent. `key_owner` maps the DTMF keys already taken in the scope to
    /// their intent, and gains this one's. `None`: reported (the intent is left out).
    pub(super) fn intent(
        &mut self,
        name: &Spanned<String>,
        raw: &RawIntent,
        scope: &IntentScope<'_>,
        key_owner: &mut HashMap<String, String>,
    ) -> Option<Intent> {
        if !is_identifier(&name.value) || [NOINPUT, NOMATCH, DIGITS].contains(&name.value.as_str())
        {
            self.error(
                ErrorKind::InvalidName,
                pos(name),
                format!("`{}` cannot be an intent name", name.value),
            )
            .hint(
                "use letters, digits, `_` and `-`; `noinput`, `nomatch` and `digits` are reserved",
            );
            return None;
        }
        let Selectors { dtmf, phrases } = self.intent_selectors(name, raw, key_owner)?;
        if !self.selectors_fit(name, raw, &dtmf, &phrases, scope) {
            return None;
        }
        let say = raw
            .say
            .as_ref()
            .map(|p| self.prompts(p))
            .unwrap_or_default();
        let action = self.intent_action(name, raw, scope)?;
        Some(Intent {
            name: name.value.clone(),
            dtmf,
            phrases,
            say,
            action,
            global: matches!(scope, IntentScope::Global { .. }),
            pos: pos(name),
        })
    }

    /// Whether the intent can be selected at all where it is declared (reports why not).
    fn selectors_fit(
        &mut self,
        name: &Spanned<String>,
        raw: &RawIntent,
        dtmf: &[String],
        phrases: &BTreeMap<String, Vec<String>>,
        scope: &IntentScope<'_>,
    ) -> bool {
        let (dtmf_in, speech_in, digits) = match scope {
            IntentScope::Global { .. } => {
                if dtmf.is_empty() && phrases.is_empty() {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(name),
                        format!(
                            "global intent `{}` has neither `dtmf` nor `phrases`",
                            name.value
                        ),
                    );
                    return false;
                }
                return true;
            }
            IntentScope::Ask {
                dtmf_in,
                speech_in,
                digits,
                ..
            } => (*dtmf_in, *speech_in, *digits),
        };
        if dtmf_in && !speech_in && raw.dtmf.is_none() {
            self.error(
                ErrorKind::InvalidValue,
                pos(name),
                format!("intent `{}` has no `dtmf` keys", name.value),
            )
            .hint("e.g. `{ dtmf: [\"1\"] }`");
            return false;
        }
        if speech_in && !dtmf_in && phrases.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(name),
                format!("intent `{}` has no `phrases`", name.value),
            )
            .hint("e.g. `{ phrases: { en: [yes], ru: [да] } }`");
            return false;
        }
        if dtmf_in && speech_in && dtmf.is_empty() && phrases.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(name),
                format!("intent `{}` has neither `dtmf` nor `phrases`", name.value),
            );
            return false;
        }
        if digits
            && let Some(k) = dtmf
                .iter()
                .find(|k| k.starts_with(|c: char| c.is_ascii_digit()))
        {
            self.error(
                ErrorKind::InvalidValue,
                pos(name),
                format!(
                    "intent `{}` uses key `{k}`, but this `ask` collects digits",
                    name.value
                ),
            )
            .hint("next to `digits`, intent keys must start with `*` or `#`");
            return false;
        }
        true
    }

    /// `repeat: true`, or the jump its scope gives it.
    fn intent_action(
        &mut self,
        name: &Spanned<String>,
        raw: &RawIntent,
        scope: &IntentScope<'_>,
    ) -> Option<IntentAction> {
        if raw.repeat.as_ref().is_some_and(|r| r.value) {
            if scope.on().contains_key(&name.value) {
                self.error(
                    ErrorKind::Misplaced,
                    pos(name),
                    format!("`{}` repeats the question; it has no target", name.value),
                )
                .hint(format!("remove `{}.{}`", scope.on_key(), name.value));
                return None;
            }
            return Some(IntentAction::Repeat);
        }
        let jump = match scope {
            IntentScope::Global { on } => match on.get(&name.value) {
                Some(Some(t)) => Some(Jump {
                    target: *t,
                    key: format!("global.{}", name.value),
                    global: true,
                }),
                Some(None) => None,
                None => {
                    self.error(
                        ErrorKind::MissingHandler,
                        pos(name),
                        format!("global intent `{}` has no target", name.value),
                    )
                    .hint(format!(
                        "add `{}: <node>` under `global.on:`, or `repeat: true`",
                        name.value
                    ));
                    None
                }
            },
            IntentScope::Ask { on, next, .. } => match on.get(name.value.as_str()) {
                Some(t) => t.map(|t| Jump::local(t, name.value.clone())),
                None => match next {
                    Some(t) => t.map(|t| Jump::local(t, "next")),
                    None => {
                        self.error(
                            ErrorKind::MissingHandler,
                            pos(name),
                            format!("intent `{}` has no target", name.value),
                        )
                        .hint(format!(
                            "add `{}: <node>` under the node's `on:` (or a `next:` for all intents)",
                            name.value
                        ));
                        None
                    }
                },
            },
        };
        jump.map(IntentAction::Goto)
    }

    /// DTMF keys and phrases of an intent. `None`: reported.
    fn intent_selectors(
        &mut self,
        name: &Spanned<String>,
        intent: &RawIntent,
        key_owner: &mut HashMap<String, String>,
    ) -> Option<Selectors> {
        let mut ok = true;
        let mut dtmf = Vec::new();
        if let Some(keys) = &intent.dtmf {
            if keys.value.is_empty() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(keys),
                    format!("intent `{}` has an empty `dtmf` list", name.value),
                );
                ok = false;
            }
            for key in &keys.value {
                if key.value.is_empty() || !key.value.chars().all(is_dtmf_key) {
                    self.error(
                        ErrorKind::InvalidDigits,
                        pos(key),
                        format!("`{}` is not a DTMF key sequence", key.value),
                    )
                    .hint("keys are 0-9, *, # and A-D; quote them: `[\"1\"]`, `[\"*0\"]`");
                    ok = false;
                } else if let Some(owner) = key_owner.get(&key.value) {
                    let owner = owner.clone();
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(key),
                        format!("key `{}` is already used by intent `{owner}`", key.value),
                    );
                    ok = false;
                } else {
                    key_owner.insert(key.value.clone(), name.value.clone());
                    dtmf.push(key.value.clone());
                }
            }
        }
        let mut phrases = BTreeMap::new();
        if let Some(p) = &intent.phrases {
            for (lang, list) in &p.value.0 {
                if !self.languages.contains(&lang.value) {
                    let langs = self.languages.join(", ");
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(lang),
                        format!("phrases for `{}`, which is not in `languages`", lang.value),
                    )
                    .hint(format!("languages: [{}]", langs));
                    ok = false;
                    continue;
                }
                if list.value.iter().any(|s| s.trim().is_empty()) || list.value.is_empty() {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(list),
                        format!("empty phrase in intent `{}`", name.value),
                    );
                    ok = false;
                    continue;
                }
                phrases.insert(lang.value.clone(), list.value.clone());
            }
        }
        ok.then_some(Selectors { dtmf, phrases })
    }
}
