//! The DTMF keys and phrases that select an intent, local to an `ask` or declared under
//! `global:`.
//!
//! Deliberately not here: matching keys or speech against intents (`dialogue`, `nlu`).

use std::collections::{BTreeMap, HashMap};

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::{is_dtmf_key, pos};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawIntent;

impl<'a> Compiler<'a> {
    /// DTMF keys and phrases of an intent (local or global). `None`: reported.
    #[allow(clippy::type_complexity)]
    pub(super) fn intent_selectors(
        &mut self,
        name: &Spanned<String>,
        intent: &RawIntent,
        key_owner: &mut HashMap<String, String>,
    ) -> Option<(Vec<String>, BTreeMap<String, Vec<String>>)> {
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
        ok.then_some((dtmf, phrases))
    }
}
