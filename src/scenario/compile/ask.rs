//! `ask` nodes: a question, then the caller's answer by key or speech — an intent, a digit
//! string, or "say that again" — with its timing, confirmation of doubtful speech, and
//! count-based escalation of no-input and no-match.
//!
//! Deliberately not here: anything that happens during a call (`dialogue`).

use std::collections::HashMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::core::{is_dtmf_key, is_identifier, pos, suggest};
use super::{Compiler, DIGITS, NOINPUT, NOMATCH};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{
    Named, OrderedMap, RawAsk, RawEscalation, RawGlobals, RawInputMode, RawIntent, RawNode,
};
use crate::scenario::{
    Ask, Confirm, DEFAULT_COMPLETE_TIMEOUT, DEFAULT_CONFIDENCE, DEFAULT_INCOMPLETE_TIMEOUT,
    DEFAULT_INTERDIGIT_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_MAX_SPEECH_TIMEOUT, DEFAULT_TIMEOUT,
    DigitString, Escalation, InputMode, Intent, IntentAction, Jump, NodeKind,
};

impl<'a> Compiler<'a> {
    pub(super) fn ask(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let ask = node.ask.as_ref()?;
        let raw: &RawAsk = &ask.value;
        let qualified = self.qualify(&name.value);
        let prompt = self.prompts(&raw.prompt);
        if raw.prompt.value.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(&raw.prompt),
                "`prompt` list is empty",
            )
            .hint("an `ask` must say what it asks");
        }

        let mut inputs = Vec::new();
        match &raw.input {
            None => inputs.push(InputMode::Dtmf),
            Some(list) => {
                if list.value.is_empty() {
                    self.error(ErrorKind::InvalidValue, pos(list), "`input` list is empty")
                        .hint("write `input: [dtmf]`, `[speech]` or `[dtmf, speech]`");
                }
                for mode in &list.value {
                    let m = match mode.value {
                        RawInputMode::Dtmf => InputMode::Dtmf,
                        RawInputMode::Speech => InputMode::Speech,
                    };
                    if !inputs.contains(&m) {
                        inputs.push(m);
                    }
                }
            }
        }
        let dtmf_in = inputs.contains(&InputMode::Dtmf);
        let speech_in = inputs.contains(&InputMode::Speech);

        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_TIMEOUT, "timeout");
        let interdigit_timeout = self.duration(
            raw.interdigit_timeout.as_ref(),
            DEFAULT_INTERDIGIT_TIMEOUT,
            "interdigit_timeout",
        );
        let term_timeout = self.duration_or(
            raw.term_timeout.as_ref(),
            Duration::ZERO,
            "term_timeout",
            true,
        );
        let complete_timeout = self.duration(
            raw.complete_timeout.as_ref(),
            DEFAULT_COMPLETE_TIMEOUT,
            "complete_timeout",
        );
        let incomplete_timeout = self.duration(
            raw.incomplete_timeout.as_ref(),
            DEFAULT_INCOMPLETE_TIMEOUT,
            "incomplete_timeout",
        );
        let max_speech_timeout = self.duration(
            raw.max_speech_timeout.as_ref(),
            DEFAULT_MAX_SPEECH_TIMEOUT,
            "max_speech_timeout",
        );
        let confidence = match &raw.confidence {
            Some(c) if !(0.0..=1.0).contains(&c.value) => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(c),
                    format!("confidence {} is not between 0 and 1", c.value),
                );
                DEFAULT_CONFIDENCE
            }
            Some(c) => c.value as f32,
            None => DEFAULT_CONFIDENCE,
        };

        let empty: Named<RawIntent> = OrderedMap(Vec::new());
        let raw_intents = raw.intents.as_ref().map_or(&empty, |i| &i.value);
        let intent_names: Vec<&str> = raw_intents
            .0
            .iter()
            .map(|(n, _)| n.value.as_str())
            .collect();
        let mut on_allowed: Vec<&str> = intent_names.clone();
        on_allowed.extend([NOINPUT, NOMATCH]);
        if raw.digits.is_some() {
            on_allowed.push(DIGITS);
        }
        let on = self.on_map(node, &on_allowed, "intent of this `ask`");
        let default_next = node.next.as_ref().map(|n| self.target(n, "`next` target"));

        if raw_intents.0.is_empty() && raw.digits.is_none() {
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

        let mut intents = Vec::new();
        let mut key_owner: HashMap<String, String> = HashMap::new();
        let mut complete = true;
        for (intent_name, intent) in &raw_intents.0 {
            if !is_identifier(&intent_name.value)
                || [NOINPUT, NOMATCH, DIGITS].contains(&intent_name.value.as_str())
            {
                self.error(
                    ErrorKind::InvalidName,
                    pos(intent_name),
                    format!("`{}` cannot be an intent name", intent_name.value),
                )
                .hint("use letters, digits, `_` and `-`; `noinput`, `nomatch` and `digits` are reserved");
                complete = false;
                continue;
            }
            let Some((dtmf, phrases)) =
                self.intent_selectors(intent_name, &intent.value, &mut key_owner)
            else {
                complete = false;
                continue;
            };
            if dtmf_in && !speech_in && intent.value.dtmf.is_none() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!("intent `{}` has no `dtmf` keys", intent_name.value),
                )
                .hint("e.g. `{ dtmf: [\"1\"] }`");
                complete = false;
                continue;
            }
            if speech_in && !dtmf_in && phrases.is_empty() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!("intent `{}` has no `phrases`", intent_name.value),
                )
                .hint("e.g. `{ phrases: { en: [yes], ru: [да] } }`");
                complete = false;
                continue;
            }
            if dtmf_in && speech_in && dtmf.is_empty() && phrases.is_empty() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!(
                        "intent `{}` has neither `dtmf` nor `phrases`",
                        intent_name.value
                    ),
                );
                complete = false;
                continue;
            }
            if raw.digits.is_some()
                && let Some(k) = dtmf
                    .iter()
                    .find(|k| k.starts_with(|c: char| c.is_ascii_digit()))
            {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!(
                        "intent `{}` uses key `{k}`, but this `ask` collects digits",
                        intent_name.value
                    ),
                )
                .hint("next to `digits`, intent keys must start with `*` or `#`");
                complete = false;
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
                if on.contains_key(&intent_name.value) {
                    self.error(
                        ErrorKind::Misplaced,
                        pos(intent_name),
                        format!(
                            "`{}` repeats the question; it has no target",
                            intent_name.value
                        ),
                    )
                    .hint(format!("remove `on.{}`", intent_name.value));
                    complete = false;
                    continue;
                }
                IntentAction::Repeat
            } else {
                let target = match on.get(intent_name.value.as_str()) {
                    Some(t) => t.map(|t| Jump::local(t, intent_name.value.clone())),
                    None => match default_next {
                        Some(t) => t.map(|t| Jump::local(t, "next")),
                        None => {
                            self.error(
                                ErrorKind::MissingHandler,
                                pos(intent_name),
                                format!("intent `{}` has no target", intent_name.value),
                            )
                            .hint(format!(
                                "add `{}: <node>` under the node's `on:` (or a `next:` for all intents)",
                                intent_name.value
                            ));
                            None
                        }
                    },
                };
                match target {
                    Some(j) => IntentAction::Goto(j),
                    None => {
                        complete = false;
                        continue;
                    }
                }
            };
            intents.push(Intent {
                name: intent_name.value.clone(),
                dtmf,
                phrases,
                say,
                action,
                global: false,
                pos: pos(intent_name),
            });
        }

        let store = match &raw.store {
            Some(var) => {
                let s = self.store_var(var, "`store` names");
                if s.as_deref() == Some("language") {
                    for intent in &intents {
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
                            complete = false;
                        }
                    }
                }
                s
            }
            None => None,
        };

        // The digit string.
        let digits = match &raw.digits {
            None => None,
            Some(d) => {
                let min = d.value.min.as_ref().map_or(1, |m| m.value) as usize;
                let max = d.value.max.as_ref().map_or(20.max(min as u32), |m| m.value) as usize;
                if min == 0 {
                    self.error(
                        ErrorKind::InvalidValue,
                        d.value.min.as_ref().map_or(pos(d), pos),
                        "`min` must be at least 1",
                    );
                }
                if max < min || max > crate::scenario::MAX_KEYS {
                    self.error(
                        ErrorKind::InvalidValue,
                        d.value.max.as_ref().map_or(pos(d), pos),
                        format!(
                            "`max` must be between `min` ({min}) and {}",
                            crate::scenario::MAX_KEYS
                        ),
                    );
                }
                let terminator = match &d.value.terminator {
                    None => None,
                    Some(t) => {
                        let mut chars = t.value.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) if is_dtmf_key(c) && !c.is_ascii_digit() => Some(c),
                            _ => {
                                self.error(
                                    ErrorKind::InvalidDigits,
                                    pos(t),
                                    format!("`{}` is not a terminator key", t.value),
                                )
                                .hint("one of `#`, `*`, `A`-`D`, quoted: `terminator: \"#\"`");
                                None
                            }
                        }
                    }
                };
                if let Some(t) = terminator
                    && let Some(owner) = key_owner.get(&t.to_string())
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(d),
                        format!("terminator `{t}` is also the key of intent `{owner}`"),
                    );
                }
                let jump = self.on_or_next(&on, default_next, DIGITS, pos(name), || {
                    (
                        format!(
                            "the digit string of `ask` node `{}` has no target",
                            qualified
                        ),
                        "add `digits: <node>` under `on:` (or a `next:`)".to_string(),
                    )
                });
                match jump {
                    Some(jump) => Some(DigitString {
                        min,
                        max,
                        terminator,
                        jump,
                    }),
                    None => {
                        complete = false;
                        None
                    }
                }
            }
        };

        // Global intents that apply here.
        let selection: Option<Vec<String>> = match raw.globals.as_ref().map(|g| &g.value) {
            None | Some(RawGlobals::All(true)) => None,
            Some(RawGlobals::All(false)) => Some(Vec::new()),
            Some(RawGlobals::Only(names)) => {
                for n in names {
                    if !self.globals.iter().any(|g| &g.name == n) {
                        let at = raw.globals.as_ref().map_or(pos(ask), pos);
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
        };
        for g in self.globals.clone() {
            if selection.as_ref().is_some_and(|s| !s.contains(&g.name))
                || intents.iter().any(|i| !i.global && i.name == g.name)
            {
                continue;
            }
            let mut g = g;
            if digits.is_some() {
                g.dtmf
                    .retain(|k| !k.starts_with(|c: char| c.is_ascii_digit()));
            }
            if !dtmf_in {
                g.dtmf.clear();
            }
            if !speech_in {
                g.phrases.clear();
            }
            if g.dtmf.is_empty() && g.phrases.is_empty() {
                continue;
            }
            let mut clash = false;
            for k in &g.dtmf {
                if let Some(owner) = key_owner.get(k) {
                    let at = intents
                        .iter()
                        .find(|i| &i.name == owner)
                        .map_or(pos(name), |i| i.pos);
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
                complete = false;
                continue;
            }
            intents.push(g);
        }

        let confirm = match &raw.confirm {
            None => None,
            Some(cf) => {
                if !speech_in {
                    self.error(
                        ErrorKind::Misplaced,
                        pos(cf),
                        "`confirm` applies to speech, but this `ask` takes no speech",
                    )
                    .hint("add `input: [dtmf, speech]`");
                }
                let min = match &cf.value.min {
                    Some(m) if !(0.0..=1.0).contains(&m.value) => {
                        self.error(
                            ErrorKind::InvalidValue,
                            pos(m),
                            format!("`min` {} is not between 0 and 1", m.value),
                        );
                        0.2
                    }
                    Some(m) => m.value as f32,
                    None => 0.2,
                };
                Some(Confirm {
                    min,
                    prompt: self.prompts(&cf.value.prompt),
                    question: cf
                        .value
                        .question
                        .as_ref()
                        .map(|q| self.prompts(q))
                        .unwrap_or_default(),
                })
            }
        };

        let handler_pos = node.on.as_ref().map_or(pos(name), pos);
        let handler = |c: &mut Self,
                       key: &str|
         -> (Option<Jump>, Option<&'a Spanned<RawEscalation>>) {
            match on.get(key) {
                Some(t) => (t.map(|t| Jump::local(t, key)), None),
                None => {
                    let global = if key == NOINPUT {
                        c.global_noinput.clone()
                    } else {
                        c.global_nomatch.clone()
                    };
                    match global {
                        Some((j, block)) => (Some(j), block),
                        None => {
                            c.error(
                                ErrorKind::MissingHandler,
                                handler_pos,
                                format!("`ask` node `{}` does not handle `{key}`", qualified),
                            )
                            .hint(format!(
                                "add `{key}: <node>` under `on:` — where to go when the retries run out"
                            ));
                            (None, None)
                        }
                    }
                }
            }
        };
        let (noinput_target, noinput_global) = handler(self, NOINPUT);
        let (nomatch_target, nomatch_global) = handler(self, NOMATCH);
        let noinput = self.escalation(raw.noinput.as_ref().or(noinput_global), noinput_target);
        let nomatch = self.escalation(raw.nomatch.as_ref().or(nomatch_global), nomatch_target);

        if !complete {
            return None;
        }
        Some(NodeKind::Ask(Box::new(Ask {
            prompt,
            inputs,
            timeout,
            interdigit_timeout,
            term_timeout,
            complete_timeout,
            incomplete_timeout,
            max_speech_timeout,
            barge_in: raw.barge_in.unwrap_or(true),
            intents,
            digits,
            confidence,
            confirm,
            store,
            noinput: noinput?,
            nomatch: nomatch?,
        })))
    }

    fn escalation(
        &mut self,
        raw: Option<&Spanned<RawEscalation>>,
        target: Option<Jump>,
    ) -> Option<Escalation> {
        let max = raw.and_then(|r| r.value.max).unwrap_or(DEFAULT_MAX_RETRIES);
        let reprompts = raw
            .and_then(|r| r.value.reprompt.as_ref())
            .map(|lists| lists.iter().map(|l| self.prompts(l)).collect())
            .unwrap_or_default();
        let question = raw.and_then(|r| r.value.question).unwrap_or(true);
        Some(Escalation {
            max,
            reprompts,
            question,
            target: target?,
        })
    }
}
