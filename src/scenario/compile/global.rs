//! `global:` — what applies in every `ask`: the global intents and the `noinput` /
//! `nomatch` handlers (with their escalation blocks) an `ask` falls back to.
//!
//! Deliberately not here: which global intents apply to a given `ask` (`ask.rs`).

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::core::{is_identifier, pos, suggest};
use super::{Compiler, DIGITS, NOINPUT, NOMATCH};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawGlobal;
use crate::scenario::{Intent, IntentAction, Jump, NodeId};

impl<'a> Compiler<'a> {
    pub(super) fn global(&mut self, global: &'a Spanned<RawGlobal>) {
        let raw = &global.value;
        let mut allowed: Vec<String> = vec![NOINPUT.to_string(), NOMATCH.to_string()];
        if let Some(intents) = &raw.intents {
            allowed.extend(intents.value.0.iter().map(|(n, _)| n.value.clone()));
        }
        let mut on: HashMap<String, Option<NodeId>> = HashMap::new();
        if let Some(map) = &raw.on {
            for (key, target) in &map.value.0 {
                if !allowed.contains(&key.value) {
                    let hint = suggest(&key.value, allowed.iter().map(String::as_str), "`on` key");
                    self.error(
                        ErrorKind::Misplaced,
                        pos(key),
                        format!("`global.on.{}` names no global intent", key.value),
                    )
                    .hint(hint);
                    continue;
                }
                let id = self.target(target, &format!("`global.on.{}` target", key.value));
                on.insert(key.value.clone(), id);
            }
        }
        let mut key_owner = HashMap::new();
        if let Some(intents) = &raw.intents {
            for (name, intent) in &intents.value.0 {
                if !is_identifier(&name.value)
                    || [NOINPUT, NOMATCH, DIGITS].contains(&name.value.as_str())
                {
                    self.error(
                        ErrorKind::InvalidName,
                        pos(name),
                        format!("`{}` cannot be an intent name", name.value),
                    )
                    .hint("use letters, digits, `_` and `-`; `noinput`, `nomatch` and `digits` are reserved");
                    continue;
                }
                let Some((dtmf, phrases)) =
                    self.intent_selectors(name, &intent.value, &mut key_owner)
                else {
                    continue;
                };
                if dtmf.is_empty() && phrases.is_empty() {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(name),
                        format!(
                            "global intent `{}` has neither `dtmf` nor `phrases`",
                            name.value
                        ),
                    );
                    continue;
                }
                let say = intent
                    .value
                    .say
                    .as_ref()
                    .map(|p| self.prompts(p))
                    .unwrap_or_default();
                let repeat = intent.value.repeat.as_ref().is_some_and(|r| r.value);
                let action = if repeat {
                    if on.contains_key(&name.value) {
                        self.error(
                            ErrorKind::Misplaced,
                            pos(name),
                            format!("`{}` repeats the question; it has no target", name.value),
                        )
                        .hint(format!("remove `global.on.{}`", name.value));
                        continue;
                    }
                    IntentAction::Repeat
                } else {
                    match on.get(&name.value) {
                        Some(Some(t)) => IntentAction::Goto(Jump {
                            target: *t,
                            key: format!("global.{}", name.value),
                            global: true,
                        }),
                        Some(None) => continue,
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
                            continue;
                        }
                    }
                };
                self.globals.push(Intent {
                    name: name.value.clone(),
                    dtmf,
                    phrases,
                    say,
                    action,
                    global: true,
                    pos: pos(name),
                });
            }
        }
        for (key, block) in [
            (NOINPUT, raw.noinput.as_ref()),
            (NOMATCH, raw.nomatch.as_ref()),
        ] {
            let jump = match on.get(key) {
                Some(Some(t)) => Some(Jump {
                    target: *t,
                    key: format!("global.{key}"),
                    global: true,
                }),
                _ => None,
            };
            match (jump, block) {
                (Some(j), b) => {
                    if key == NOINPUT {
                        self.global_noinput = Some((j, b));
                    } else {
                        self.global_nomatch = Some((j, b));
                    }
                }
                (None, Some(b)) => {
                    self.error(
                        ErrorKind::MissingHandler,
                        pos(b),
                        format!("`global.{key}` has no target"),
                    )
                    .hint(format!("add `{key}: <node>` under `global.on:`"));
                }
                (None, None) => {}
            }
        }
    }
}
