//! DTMF in an `ask`: a key stops a prompt that allows barge-in (and is ignored during one
//! that does not), cancels speech in progress, and joins the key buffer; the buffer is
//! then decided — an intent, a digit string, or wait for more keys (inter-digit or
//! terminator timeout) — or counted as a no-match.
//!
//! Deliberately not here: matching the buffer against intent keys and digit-string rules
//! (`dtmf.rs`), or detecting keys in audio (`media`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dtmf::{self, DigitsState, KeyMatch};
use super::{Expiry, Listen, ask_of};
use crate::dialogue::{Action, Answer, Dialogue, JournalEvent, State, Timer};
use crate::scenario::{AnswerType, Ask, MAX_KEYS, NodeKind};

impl Dialogue {
    pub(super) fn take_keys(&mut self) -> String {
        match &mut self.state {
            State::Asking(asking) => std::mem::take(&mut asking.keys),
            _ => String::new(),
        }
    }

    pub(in crate::dialogue) fn on_key(&mut self, now: Instant, key: char) {
        let Some(key) = dtmf::normalize_key(key) else {
            tracing::warn!("ignoring a DTMF key that is not 0-9, *, #, A-D");
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        if matches!(self.state, State::Playing { .. }) {
            // Type-ahead: kept for the question the play leads into (`play.rs`).
            self.play_key(now, key);
            return;
        }
        let State::Asking(asking) = &mut self.state else {
            tracing::debug!("key outside an ask; ignored");
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("key {key} outside a question"),
                },
            );
            return;
        };
        let Some(ask) = ask_of(&scenario, asking.node) else {
            return;
        };
        if !ask.inputs.contains(&crate::scenario::InputMode::Dtmf) {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("key {key}: the question takes speech only"),
                },
            );
            return;
        }
        let mut cancelled_speech = false;
        match &asking.listen {
            Listen::Prompt { .. } => {
                if !asking.listen.barge_allowed() {
                    tracing::debug!("key during a prompt without barge-in; ignored");
                    self.note(
                        now,
                        JournalEvent::Ignored {
                            what: format!("key {key} during a protected prompt"),
                        },
                    );
                    return;
                }
                self.actions.push_back(Action::StopPlayback);
            }
            Listen::Speaking { .. } => cancelled_speech = true,
            _ => {}
        }
        if asking.confirming.is_some() {
            self.confirm_answer(now, key == '1');
            return;
        }
        asking.keys.push(key);
        // Until the keys are decided, the no-input timer is off.
        asking.listen = Listen::Keys {
            deadline: now,
            expiry: Expiry::NoMatch,
        };
        if cancelled_speech {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: "speech in progress (a key cancels it)".to_string(),
                },
            );
        }
        self.decide_keys(now, ask);
    }

    fn set_keys_timer(&mut self, now: Instant, timer: Timer, d: Duration, expiry: Expiry) {
        let deadline = self.arm(now, timer, d);
        if let State::Asking(asking) = &mut self.state {
            asking.listen = Listen::Keys { deadline, expiry };
        }
    }

    fn decide_keys(&mut self, now: Instant, ask: &Ask) {
        let State::Asking(asking) = &self.state else {
            return;
        };
        let keys = asking.keys.clone();
        if keys.len() > MAX_KEYS {
            self.escalate(now, false, "too many keys");
            return;
        }
        let digit_mode = ask.digits.as_ref().filter(|spec| {
            keys.starts_with(|c: char| c.is_ascii_digit())
                || spec.terminator.is_some_and(|t| keys.starts_with(t))
        });
        if let Some(spec) = digit_mode {
            match dtmf::digits_state(&keys, spec) {
                DigitsState::Terminated => self.digits_matched(now, "dtmf", None),
                DigitsState::Full if spec.terminator.is_some() && !ask.term_timeout.is_zero() => {
                    self.set_keys_timer(now, Timer::TermChar, ask.term_timeout, Expiry::Digits)
                }
                DigitsState::Full => self.digits_matched(now, "dtmf", None),
                DigitsState::Complete => self.set_keys_timer(
                    now,
                    Timer::InterDigit,
                    ask.interdigit_timeout,
                    Expiry::Digits,
                ),
                DigitsState::Incomplete => self.set_keys_timer(
                    now,
                    Timer::InterDigit,
                    ask.interdigit_timeout,
                    Expiry::NoMatch,
                ),
                DigitsState::NoMatch => self.escalate(now, false, "not a valid digit string"),
            }
            return;
        }
        match dtmf::classify(&keys, &ask.intents) {
            KeyMatch::Match(i) => {
                let keys = self.take_keys();
                self.choose(now, i, "dtmf", keys, None);
            }
            KeyMatch::NoMatch => self.escalate(now, false, "keys match no choice"),
            KeyMatch::Partial => {
                let expiry =
                    dtmf::exact(&keys, &ask.intents).map_or(Expiry::NoMatch, Expiry::Match);
                self.set_keys_timer(now, Timer::InterDigit, ask.interdigit_timeout, expiry);
            }
        }
    }

    /// The value of an answer type typed on the keypad: a day 1-31 (`15`), a date `DDMM`
    /// (the next such date from today, as `YYYY-MM-DD`).
    fn value_from_keys(&self, ty: AnswerType, keys: &str) -> Option<String> {
        match ty {
            AnswerType::DayOfMonth => keys
                .parse::<u32>()
                .ok()
                .filter(|d| (1..=31).contains(d))
                .map(|d| d.to_string()),
            AnswerType::Date if keys.len() == 4 => {
                let text = format!("{}.{}", &keys[..2], &keys[2..]);
                crate::nlu::dates::parse_date(&text, "en", self.today()).map(|d| d.to_string())
            }
            AnswerType::Date => None,
        }
    }

    /// Accepts the digit string in the key buffer (or `spoken` digits, or a spoken value of
    /// the question's answer type).
    pub(super) fn digits_matched(
        &mut self,
        now: Instant,
        input: &'static str,
        spoken: Option<(String, f32)>,
    ) {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            return;
        };
        let node_id = asking.node;
        let Some(node) = scenario.node(node_id) else {
            return;
        };
        let NodeKind::Ask(ask) = &node.kind else {
            return;
        };
        let Some(spec) = &ask.digits else {
            return;
        };
        let (value, confidence) = match spoken {
            Some((v, c)) => (v, Some(c)),
            None => {
                let keys = dtmf::digits_value(&std::mem::take(&mut asking.keys), spec);
                match ask.answer {
                    None => (keys, None),
                    Some(ty) => match self.value_from_keys(ty, &keys) {
                        Some(v) => (v, None),
                        None => {
                            self.escalate(now, false, &format!("keys are not a {}", ty.name()));
                            return;
                        }
                    },
                }
            }
        };
        self.note(
            now,
            JournalEvent::Matched {
                intent: None,
                input,
                value: value.clone(),
                confidence,
            },
        );
        let key = self.path_name(node);
        self.result.answers.insert(
            key,
            Answer {
                input: input.to_string(),
                value: value.clone(),
                reason: None,
                intent: None,
                confidence,
                file: None,
            },
        );
        if let Some(var) = &ask.store {
            self.set_var(now, var, value);
        }
        self.take(now, node_id, &spec.jump);
    }
}
