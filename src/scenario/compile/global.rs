//! `global:` — what applies in every `ask` of the main dialogue and its sub-dialogues: the
//! global intents ("operator", "repeat"), compiled once here, and the `noinput` /
//! `nomatch` handlers (with their escalation blocks) an `ask` falls back to when it has none
//! of its own. Every target is a main-dialogue node reached by a global jump, which leaves
//! any running sub-dialogue.
//!
//! Deliberately not here: which global intents apply to a given `ask` and how they are
//! narrowed to its input modes (`ask/intents.rs`).

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::core::{pos, suggest};
use super::intent::IntentScope;
use super::{Compiler, NOINPUT, NOMATCH};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawGlobal;
use crate::scenario::{Jump, NodeId};

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
        let scope = IntentScope::Global { on: &on };
        for (name, intent) in raw.intents.iter().flat_map(|i| &i.value.0) {
            if let Some(intent) = self.intent(name, &intent.value, &scope, &mut key_owner) {
                self.globals.push(intent);
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
