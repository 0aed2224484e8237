//! Speech in an `ask`: the caller starting to talk (barge-in, and the no-input timer
//! suspended until the recogniser's verdict), the final transcript — a digit string said
//! aloud, or an intent by its phrases, accepted, confirmed ("did you say …?") or counted as
//! a no-match by confidence — and speech that could not be recognised.
//!
//! Deliberately not here: recognising speech (`asr`), or matching words to intents
//! (`nlu`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Asking, Listen, Pending, ask_of};
use crate::dialogue::{Action, Dialogue, JournalEvent, State, Timer};
use crate::scenario::NodeId;

/// How long after the longest possible utterance the dialogue waits for the recogniser's
/// verdict before counting a no-match.
pub const SPEECH_RESULT_GRACE: Duration = Duration::from_secs(5);

/// Phrases that answer "did you say …?" with yes, by language.
pub const YES_PHRASES: [(&str, &[&str]); 3] = [
    (
        "en",
        &["yes", "yeah", "yep", "correct", "right", "that's right"],
    ),
    ("ru", &["да", "верно", "правильно", "ага", "да верно"]),
    ("uk", &["так", "вірно", "правильно", "ага", "так вірно"]),
];

/// Phrases that answer "did you say …?" with no, by language.
pub const NO_PHRASES: [(&str, &[&str]); 3] = [
    ("en", &["no", "nope", "wrong", "incorrect", "not right"]),
    ("ru", &["нет", "неверно", "неправильно", "не то"]),
    ("uk", &["ні", "невірно", "неправильно", "не те"]),
];

pub(super) fn phrases_for(table: &[(&str, &[&str])], lang: &str) -> Vec<String> {
    table
        .iter()
        .find(|(l, _)| *l == lang)
        .map(|(_, p)| p.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

impl Dialogue {
    /// Whether speech counts now; stops a bargeable prompt when it does.
    fn accept_speech(&mut self, now: Instant, what: &str) -> Option<NodeId> {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("{what} outside a question"),
                },
            );
            return None;
        };
        let speech = ask_of(&scenario, asking.node)
            .is_some_and(|a| a.inputs.contains(&crate::scenario::InputMode::Speech));
        let ignored = if !speech {
            Some("the question takes keys only")
        } else {
            match &asking.listen {
                Listen::Keys { .. } => Some("keys are being typed"),
                Listen::Prompt { .. } if !asking.listen.barge_allowed() => {
                    Some("during a protected prompt")
                }
                Listen::Prompt { .. } => {
                    self.actions.push_back(Action::StopPlayback);
                    None
                }
                _ => None,
            }
        };
        if let Some(why) = ignored {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("{what}: {why}"),
                },
            );
            return None;
        }
        Some(asking.node)
    }

    pub(in crate::dialogue) fn on_speech_started(&mut self, now: Instant) {
        let Some(node) = self.accept_speech(now, "speech") else {
            return;
        };
        if let State::Asking(Asking {
            listen: Listen::Speaking { .. },
            ..
        }) = &self.state
        {
            return;
        }
        let Some(ask) = ask_of(&self.scenario, node) else {
            return;
        };
        let wait = ask.max_speech_timeout + ask.incomplete_timeout + SPEECH_RESULT_GRACE;
        let deadline = self.arm(now, Timer::Speech, wait);
        if let State::Asking(asking) = &mut self.state {
            asking.listen = Listen::Speaking { deadline };
        }
    }

    pub(in crate::dialogue) fn on_utterance(
        &mut self,
        now: Instant,
        text: String,
        confidence: f32,
    ) {
        let Some(node) = self.accept_speech(now, "utterance") else {
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(ask) = ask_of(&scenario, node) else {
            return;
        };
        let confidence = if confidence.is_finite() {
            confidence.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let lang = self.language().to_string();
        let confirming = match &self.state {
            State::Asking(a) => a.confirming.clone(),
            _ => None,
        };
        if confirming.is_some() {
            let answers = [
                ("yes".to_string(), phrases_for(&YES_PHRASES, &lang)),
                ("no".to_string(), phrases_for(&NO_PHRASES, &lang)),
            ];
            let yes =
                crate::nlu::classify(&text, &lang, &answers).is_some_and(|m| m.intent == "yes");
            self.confirm_answer(now, yes);
            return;
        }
        if let Some(spec) = &ask.digits {
            // "four seven one one", «сорок два», "4711": the digits said, in order.
            let words = crate::nlu::numbers_to_digits(&crate::nlu::normalize(&text));
            let spoken: String = words.chars().filter(char::is_ascii_digit).collect();
            let n = spoken.chars().count();
            if n >= spec.min && n <= spec.max {
                self.digits_matched(now, "speech", Some((spoken, confidence)));
                return;
            }
        }
        let candidates: Vec<(String, Vec<String>)> = ask
            .intents
            .iter()
            .filter_map(|i| i.phrases.get(&lang).map(|p| (i.name.clone(), p.clone())))
            .collect();
        let Some(m) = crate::nlu::classify(&text, &lang, &candidates) else {
            self.escalate(now, false, "speech matches no choice");
            return;
        };
        let Some(index) = ask.intents.iter().position(|i| i.name == m.intent) else {
            self.escalate(now, false, "speech matches no choice");
            return;
        };
        let score = confidence.min(m.score);
        if score >= ask.confidence {
            self.choose(now, index, "speech", text, Some(score));
        } else if let Some(confirm) = &ask.confirm
            && score >= confirm.min
        {
            self.note(
                now,
                JournalEvent::Confirming {
                    intent: m.intent.clone(),
                    confidence: score,
                },
            );
            if let State::Asking(asking) = &mut self.state {
                asking.confirming = Some(Pending {
                    intent: index,
                    text,
                    confidence: score,
                });
            }
            self.confirm_round(now, ask, index);
        } else {
            self.escalate(now, false, &format!("confidence {score:.2} too low"));
        }
    }

    pub(in crate::dialogue) fn on_unrecognised(&mut self, now: Instant) {
        if self.accept_speech(now, "unrecognised speech").is_none() {
            return;
        }
        let confirming = matches!(&self.state, State::Asking(a) if a.confirming.is_some());
        if confirming {
            self.confirm_answer(now, false);
        } else {
            self.escalate(now, false, "speech not recognised");
        }
    }

    /// The answer to "did you say …?": yes accepts the pending intent, anything else is a
    /// no-match of the question.
    pub(super) fn confirm_answer(&mut self, now: Instant, yes: bool) {
        let pending = match &mut self.state {
            State::Asking(a) => a.confirming.take(),
            _ => None,
        };
        match (pending, yes) {
            (Some(p), true) => self.choose(now, p.intent, "speech", p.text, Some(p.confidence)),
            _ => self.escalate(now, false, "not confirmed"),
        }
    }
}
