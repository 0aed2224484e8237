//! Speech in an `ask`: the caller starting to talk (barge-in, and the no-input timer
//! suspended until the recogniser's verdict), the final transcript — a digit string said
//! aloud, or an intent by its phrases, accepted, confirmed ("did you say …?") or counted as
//! a no-match by confidence — and speech that could not be recognised.
//!
//! Deliberately not here: recognising speech (`asr`), or matching words to intents
//! (`nlu`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Asking, Choice, Listen, Pending, ask_of};
use crate::dialogue::{Action, Dialogue, JournalEvent, State, Timer};
use crate::nlu::Verdict;
use crate::scenario::{AnswerType, Ask, InputMode, NodeId};

/// How long after the longest possible utterance the dialogue waits for the recogniser's
/// verdict before counting a no-match.
pub const SPEECH_RESULT_GRACE: Duration = Duration::from_secs(5);

/// The most a spoken day or date is trusted when its transcript has words the reading
/// does not explain: below any usual `confidence`, above the default `confirm.min`.
pub const UNEXPLAINED_VALUE_CONFIDENCE: f32 = 0.5;

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

/// What speech can select in `ask`, by intent, in `lang`: each intent's phrases and —
/// when the question takes keys and speech and `spoken_keys` is on — its keys made of
/// digits, said aloud ("1" matches "one", "number one", «один», «одна», «перший»,
/// "first"). With `heard` (the transcript) a spoken key counts only when the one number it
/// says is that key ("one two" reads as 12: neither key 1 nor key 2); without it (what to
/// listen for) every such key is listed. Never when another intent lists that number as a
/// phrase of its own.
pub(in crate::dialogue) fn candidates(
    ask: &Ask,
    lang: &str,
    heard: Option<&str>,
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = ask
        .intents
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                i.phrases.get(lang).cloned().unwrap_or_default(),
            )
        })
        .collect();
    let keys_spoken = ask.spoken_keys
        && ask.inputs.contains(&InputMode::Dtmf)
        && ask.inputs.contains(&InputMode::Speech);
    // The one number the caller said, if that is what they said.
    let said: Option<Option<String>> = heard.map(|t| {
        let mut n = crate::nlu::numbers_said(t);
        (n.len() == 1).then(|| n.remove(0))
    });
    if keys_spoken {
        let own: Vec<Vec<String>> = out
            .iter()
            .map(|(_, p)| p.iter().flat_map(|p| crate::nlu::numbers_said(p)).collect())
            .collect();
        for (i, intent) in ask.intents.iter().enumerate() {
            for key in &intent.dtmf {
                if !key.chars().all(|c| c.is_ascii_digit())
                    || said
                        .as_ref()
                        .is_some_and(|n| n.as_deref() != Some(key.as_str()))
                {
                    continue;
                }
                let taken = own
                    .iter()
                    .enumerate()
                    .any(|(j, nums)| j != i && nums.contains(key));
                if !taken && !out[i].1.contains(key) {
                    out[i].1.push(key.clone());
                }
            }
        }
    }
    out.retain(|(_, p)| !p.is_empty());
    out
}

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
            // "Yes", «да», or the key the question names said aloud ("one").
            let mut yes = phrases_for(&YES_PHRASES, &lang);
            let mut no = phrases_for(&NO_PHRASES, &lang);
            match crate::nlu::numbers_said(&text).as_slice() {
                [n] if n == "1" => yes.push("1".to_owned()),
                [n] if n == "2" => no.push("2".to_owned()),
                _ => {}
            }
            let answers = [("yes".to_string(), yes), ("no".to_string(), no)];
            let yes =
                crate::nlu::classify(&text, &lang, &answers).is_some_and(|m| m.intent == "yes");
            self.confirm_answer(now, yes);
            return;
        }
        if let Some(ty) = ask.answer {
            let value = match ty {
                AnswerType::DayOfMonth => {
                    crate::nlu::dates::day_of_month(&text, &lang).map(|d| d.to_string())
                }
                AnswerType::Date => {
                    crate::nlu::dates::parse_date(&text, &lang, self.today()).map(|d| d.to_string())
                }
            };
            // A number next to words the reading does not explain («5 нацяти», Whisper's
            // garbling of «п'ятнадцятий») may be a fragment of another: read it back, at
            // most, never take it as heard.
            let confidence = if crate::nlu::dates::unexplained_words(&text, &lang).is_empty() {
                confidence
            } else {
                confidence.min(UNEXPLAINED_VALUE_CONFIDENCE)
            };
            match value {
                Some(v) => self.value_heard(now, ask, v, confidence),
                None => self.escalate(now, false, &format!("speech is not a {}", ty.name())),
            }
            return;
        }
        if let Some(spec) = &ask.digits {
            // "four seven one one", «сорок два», "4711": the digits said, in order.
            let words = crate::nlu::numbers_to_digits(&crate::nlu::normalize(&text));
            let spoken: String = words.chars().filter(char::is_ascii_digit).collect();
            let n = spoken.chars().count();
            if n >= spec.min && n <= spec.max {
                self.value_heard(now, ask, spoken, confidence);
                return;
            }
        }
        let candidates = candidates(ask, &lang, Some(&text));
        let verdict = crate::nlu::verdict(
            &text,
            confidence,
            &lang,
            &candidates,
            ask.confidence,
            ask.confirm.as_ref().map(|c| c.min),
        );
        let index_of = |intent: &str| ask.intents.iter().position(|i| i.name == intent);
        match verdict {
            Verdict::Accept { intent, score } => match index_of(&intent) {
                Some(index) => self.choose(now, index, "speech", text, Some(score)),
                None => self.escalate(now, false, "speech matches no choice"),
            },
            Verdict::Confirm { intent, score } => match index_of(&intent) {
                Some(index) => self.read_back(now, ask, Choice::Intent(index), intent, text, score),
                None => self.escalate(now, false, "speech matches no choice"),
            },
            Verdict::NoMatch { heard: None } => {
                self.escalate(now, false, "speech matches no choice")
            }
            Verdict::NoMatch { heard: Some(m) } => {
                let score = confidence.min(m.score);
                self.escalate(now, false, &format!("confidence {score:.2} too low"))
            }
        }
    }

    /// A spoken value (a digit string, a day, a date) heard with `confidence`: taken at or
    /// above the node's `confidence`, read back ("did you say four seven one one?") from
    /// `confirm.min` with a `confirm:` block, a no-match otherwise — the same rule as for
    /// intents, so a wrong digit is never taken on an unsure recognition.
    fn value_heard(&mut self, now: Instant, ask: &Ask, value: String, confidence: f32) {
        if confidence >= ask.confidence {
            self.digits_matched(now, "speech", Some((value, confidence)));
        } else if let Some(confirm) = &ask.confirm
            && confidence >= confirm.min
        {
            self.read_back(
                now,
                ask,
                Choice::Value(value.clone()),
                value,
                String::new(),
                confidence,
            );
        } else {
            self.escalate(now, false, &format!("confidence {confidence:.2} too low"));
        }
    }

    /// Asks "did you say …?" about `choice` (journalled as `what`).
    fn read_back(
        &mut self,
        now: Instant,
        ask: &Ask,
        choice: Choice,
        what: String,
        text: String,
        confidence: f32,
    ) {
        self.note(
            now,
            JournalEvent::Confirming {
                intent: what,
                confidence,
            },
        );
        if let State::Asking(asking) = &mut self.state {
            asking.confirming = Some(Pending {
                choice: choice.clone(),
                text,
                confidence,
            });
        }
        self.confirm_round(now, ask, &choice);
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
            (Some(p), true) => match p.choice {
                Choice::Intent(i) => self.choose(now, i, "speech", p.text, Some(p.confidence)),
                Choice::Value(v) => self.digits_matched(now, "speech", Some((v, p.confidence))),
            },
            _ => self.escalate(now, false, "not confirmed"),
        }
    }
}
