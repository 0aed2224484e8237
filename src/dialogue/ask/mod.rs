//! `ask` nodes: a question, and the caller's answer by key or speech.
//!
//! Timing follows VoiceXML 2.0 Appendix D: the no-input `timeout` starts when the prompt
//! has finished playing on the wire (the engine's `PlaybackDone`), not when `Play` was
//! requested; once a key has been pressed the no-input timer is gone and
//! `interdigit_timeout` (or, for a full digit string waiting for its terminator,
//! `term_timeout`) decides when the keys are complete; once the caller starts speaking
//! (`SpeechStarted`) the no-input timer is suspended until the recogniser's verdict
//! (`Utterance` / `SpeechUnrecognised`), guarded by `max_speech_timeout` +
//! `incomplete_timeout` + a grace period. DTMF and speech race: the first complete input
//! wins; a key cancels a pending recognition (a late utterance is ignored).
//!
//! An `ask` node, per question round:
//! ```text
//!  enter / reprompt ──Play──► Prompt ──PlaybackDone/Stopped──► NoInput(timeout)
//!                    key / speech, item allows barge-in │        │ key   │ speech  │ expires
//!                    (StopPlayback)                     ▼        ▼       ▼         ▼
//!                                              Keys(interdigit)     Speaking   noinput #k
//!        match ──► answer, jump   ◄── classify keys / utterance ──┘        k ≤ max: reprompt
//!        low confidence ──► Confirming ("did you say …?") yes → match, no → nomatch
//!        nomatch #k: k ≤ max reprompt, k > max on.nomatch; repeat intent: replay question
//! ```
//! A key (or speech) during a prompt item with `barge_in: false` is ignored (not buffered).
//! Keys during `play` and `hangup` nodes are ignored. The engine tells which prompt of a
//! `Play` is on the wire with
//! [`Input::PromptStarted`](crate::dialogue::Input::PromptStarted); without it the first prompt's flag
//! is assumed.
//!
//! This file holds the question rounds (question, reprompt, "did you say …?"), the
//! timers, accepting an answer and escalating no-input and no-match (a question left by
//! `on.noinput` / `on.nomatch` still records an answer: its input modes, no value, the
//! reason); `keys.rs` collects
//! and decides DTMF (classified by `dtmf.rs`), `speech.rs` takes speech and its
//! confirmation.
//!
//! Deliberately not here: understanding words (`nlu`), recognising speech (`asr`).

mod dtmf;
mod keys;
mod speech;

use std::sync::Arc;
use std::time::Instant;

pub(in crate::dialogue) use speech::candidates;
use speech::phrases_for;
pub use speech::{NO_PHRASES, SPEECH_RESULT_GRACE, YES_PHRASES};

use super::{Answer, Dialogue, JournalEvent, ListenSpec, Next, PromptRef, State, Timer};
use crate::scenario::{
    AnswerType, Ask, InputMode, IntentAction, MAX_REPEATS, NodeId, NodeKind, PromptItem,
    PromptKind, Scenario, Template,
};

/// An `ask` node while its question is open: where the round is, the keys so far, and
/// the counts that drive escalation.
#[derive(Debug)]
pub(in crate::dialogue) struct Asking {
    pub(in crate::dialogue) node: NodeId,
    listen: Listen,
    keys: String,
    noinput: u32,
    nomatch: u32,
    repeats: u32,
    /// Low-confidence speech waiting for "did you say …?" to be answered.
    confirming: Option<Pending>,
}

/// Speech whose answer waits for "did you say …?".
#[derive(Debug, Clone)]
struct Pending {
    choice: Choice,
    text: String,
    confidence: f32,
}

/// What unsure speech is read back as.
#[derive(Debug, Clone)]
enum Choice {
    /// Intent `i` of the ask (named by its `say`).
    Intent(usize),
    /// A value: the digits of a digit string, a day of the month, a date.
    Value(String),
}

/// Where a question round is.
#[derive(Debug)]
enum Listen {
    /// The question (with any reprompt) is playing; `barge_in[i]` is prompt i's flag.
    Prompt {
        play: u64,
        index: usize,
        barge_in: Vec<bool>,
    },
    /// Prompt done, no input yet; no-input at `deadline`.
    NoInput { deadline: Instant },
    /// The caller is speaking; the recogniser's verdict is due by `deadline`.
    Speaking { deadline: Instant },
    /// Keys so far are undecided; decide at `deadline`.
    Keys { deadline: Instant, expiry: Expiry },
}

/// What undecided keys become when their timer expires.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    Match(usize),
    Digits,
    NoMatch,
}

impl Listen {
    fn barge_allowed(&self) -> bool {
        match self {
            Listen::Prompt {
                index, barge_in, ..
            } => barge_in
                .get(*index)
                .or(barge_in.last())
                .copied()
                .unwrap_or(true),
            _ => true,
        }
    }
}

impl Asking {
    /// When the current timer of the question expires (none while its prompt plays).
    pub(in crate::dialogue) fn deadline(&self) -> Option<Instant> {
        match self.listen {
            Listen::NoInput { deadline }
            | Listen::Keys { deadline, .. }
            | Listen::Speaking { deadline } => Some(deadline),
            Listen::Prompt { .. } => None,
        }
    }
}

fn ask_of(scenario: &Scenario, node: NodeId) -> Option<&Ask> {
    match &scenario.node(node)?.kind {
        NodeKind::Ask(ask) => Some(ask),
        _ => None,
    }
}

impl Dialogue {
    /// What speech the dialogue accepts now, for the recogniser — one phrase-list entry
    /// per answer, its alternatives joined by [`crate::dialogue::ALTERNATIVES`]; `None` while it does not
    /// listen for speech. `Some` while the current `ask` takes speech: during its prompt if
    /// the item playing allows barge-in (`barge_in: true`), and after the prompt until the
    /// question is answered; `None` once keys are being typed (a key cancels speech).
    pub fn listen_spec(&self) -> Option<ListenSpec> {
        let State::Asking(asking) = &self.state else {
            return None;
        };
        let ask = ask_of(&self.scenario, asking.node)?;
        if !ask.inputs.contains(&InputMode::Speech) {
            return None;
        }
        let barge_in = match &asking.listen {
            Listen::Prompt { .. } if asking.listen.barge_allowed() => true,
            Listen::Prompt { .. } | Listen::Keys { .. } => return None,
            Listen::NoInput { .. } | Listen::Speaking { .. } => false,
        };
        let lang = self.language().to_string();
        // One entry per answer, its alternatives joined (`dialogue::ALTERNATIVES`): the
        // recogniser then knows "not yet" and "haven't paid" are the same answer.
        let join = |p: Vec<String>| p.join(&crate::dialogue::ALTERNATIVES.to_string());
        let mut phrases: Vec<String> = if asking.confirming.is_some() {
            let mut yes = phrases_for(&YES_PHRASES, &lang);
            yes.push("1".to_owned());
            let mut no = phrases_for(&NO_PHRASES, &lang);
            no.push("2".to_owned());
            vec![join(yes), join(no)]
        } else {
            candidates(ask, &lang, None)
                .into_iter()
                .map(|(_, p)| join(p))
                .collect()
        };
        let mut seen = std::collections::HashSet::new();
        phrases.retain(|p| seen.insert(p.clone()));
        Some(ListenSpec {
            lang,
            phrases,
            barge_in,
            complete_timeout: ask.complete_timeout,
            incomplete_timeout: ask.incomplete_timeout,
            max_speech_timeout: ask.max_speech_timeout,
        })
    }

    pub(in crate::dialogue) fn enter_ask(&mut self, now: Instant, id: NodeId, ask: &Ask) -> Next {
        self.state = State::Asking(Asking {
            node: id,
            listen: Listen::NoInput { deadline: now },
            keys: String::new(),
            noinput: 0,
            nomatch: 0,
            repeats: 0,
            confirming: None,
        });
        let typed = std::mem::take(&mut self.typeahead);
        if !typed.is_empty() {
            let first_bargeable = ask
                .prompt
                .first()
                .is_none_or(|p| p.barge_in.unwrap_or(ask.barge_in));
            if ask.typeahead && first_bargeable {
                // Keys typed during the prompts that led here answer the question at once,
                // as if typed after it; the question itself is not played.
                for key in typed.chars() {
                    if !matches!(&self.state, State::Asking(a) if a.node == id) {
                        break;
                    }
                    self.on_key(now, key);
                }
                return None;
            }
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!(
                        "{} key(s) typed ahead: {}",
                        typed.len(),
                        if ask.typeahead {
                            "the question's prompt does not allow barge-in"
                        } else {
                            "the question has `typeahead: false`"
                        }
                    ),
                },
            );
        }
        self.ask_round(now, ask, &[], true);
        None
    }

    /// Prompt `index` of play `id` started on the wire: barge-in follows its flag.
    pub(in crate::dialogue) fn on_prompt_started(&mut self, id: u64, index: usize) {
        if let State::Asking(Asking {
            listen: Listen::Prompt {
                play, index: at, ..
            },
            ..
        }) = &mut self.state
            && *play == id
        {
            *at = index;
        }
    }

    /// Play `id` ended; if it was the question, the no-input timer starts now.
    pub(in crate::dialogue) fn ask_prompt_done(&mut self, now: Instant, id: u64) {
        let State::Asking(asking) = &self.state else {
            return;
        };
        if let Listen::Prompt { play, .. } = asking.listen
            && play == id
        {
            let timeout = ask_of(&self.scenario, asking.node)
                .map_or(crate::scenario::DEFAULT_TIMEOUT, |a| a.timeout);
            let deadline = self.arm(now, Timer::NoInput, timeout);
            if let State::Asking(asking) = &mut self.state {
                asking.listen = Listen::NoInput { deadline };
            }
        }
    }

    /// Fires the question's timer if it is due: no input, keys decided, or no recognition
    /// result.
    pub(in crate::dialogue) fn ask_timeout(&mut self, now: Instant) {
        let State::Asking(asking) = &self.state else {
            return;
        };
        match asking.listen {
            Listen::NoInput { deadline } if now >= deadline => {
                self.note(
                    now,
                    JournalEvent::Fired {
                        timer: Timer::NoInput,
                    },
                );
                self.escalate(now, true, "no input");
            }
            Listen::Keys { deadline, expiry } if now >= deadline => {
                self.note(
                    now,
                    JournalEvent::Fired {
                        timer: Timer::InterDigit,
                    },
                );
                match expiry {
                    Expiry::Match(i) => {
                        let keys = self.take_keys();
                        self.choose(now, i, "dtmf", keys, None);
                    }
                    Expiry::Digits => self.digits_matched(now, "dtmf", None),
                    Expiry::NoMatch => self.escalate(now, false, "incomplete keys"),
                }
            }
            Listen::Speaking { deadline } if now >= deadline => {
                self.note(
                    now,
                    JournalEvent::Fired {
                        timer: Timer::Speech,
                    },
                );
                self.escalate(now, false, "no recognition result");
            }
            _ => {}
        }
    }

    /// Plays `extra` (a reprompt) and the question (unless `question` is false and there
    /// is a reprompt), and clears the key buffer.
    fn ask_round(&mut self, now: Instant, ask: &Ask, extra: &[PromptItem], question: bool) {
        let mut refs = Vec::new();
        self.render(extra, Some(ask.barge_in), &mut refs);
        if question || refs.is_empty() {
            self.render(&ask.prompt, Some(ask.barge_in), &mut refs);
        }
        self.listen_after(now, ask, refs);
    }

    /// "Did you say …?": the confirmation prompt, the intent's `say` (or the value: digits
    /// one by one, a day as an ordinal, a date), the question.
    fn confirm_round(&mut self, now: Instant, ask: &Ask, choice: &Choice) {
        let mut refs = Vec::new();
        if let Some(confirm) = &ask.confirm {
            self.render(&confirm.prompt, Some(true), &mut refs);
            match choice {
                Choice::Intent(intent) => {
                    if let Some(i) = ask.intents.get(*intent) {
                        self.render(&i.say, Some(true), &mut refs);
                    }
                }
                Choice::Value(value) => {
                    let value = Template::literal(value);
                    let kind = match ask.answer {
                        None => PromptKind::Digits(value),
                        Some(AnswerType::DayOfMonth) => PromptKind::Ordinal(value),
                        Some(AnswerType::Date) => PromptKind::Date {
                            value,
                            year: false,
                            weekday: false,
                        },
                    };
                    let item = PromptItem {
                        kind,
                        barge_in: Some(true),
                        when: None,
                        pos: Default::default(),
                    };
                    self.render(std::slice::from_ref(&item), Some(true), &mut refs);
                }
            }
            self.render(&confirm.question, Some(true), &mut refs);
        }
        self.listen_after(now, ask, refs);
    }

    fn listen_after(&mut self, now: Instant, ask: &Ask, refs: Vec<PromptRef>) {
        let listen = if refs.is_empty() {
            Listen::NoInput {
                deadline: self.arm(now, Timer::NoInput, ask.timeout),
            }
        } else {
            let barge_in = refs.iter().map(|r| r.barge_in).collect();
            let play = self.next_play(refs);
            Listen::Prompt {
                play,
                index: 0,
                barge_in,
            }
        };
        if let State::Asking(asking) = &mut self.state {
            asking.keys.clear();
            asking.listen = listen;
        }
    }

    /// Accepts intent `index` of the current ask.
    pub(super) fn choose(
        &mut self,
        now: Instant,
        index: usize,
        input: &'static str,
        value: String,
        confidence: Option<f32>,
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
        let Some(intent) = ask.intents.get(index) else {
            return;
        };
        match &intent.action {
            IntentAction::Repeat => {
                asking.repeats += 1;
                asking.confirming = None;
                let count = asking.repeats;
                self.note(now, JournalEvent::Repeat { count });
                if count > MAX_REPEATS {
                    self.escalate(now, false, "asked to repeat too often");
                } else {
                    self.ask_round(now, ask, &[], true);
                }
            }
            IntentAction::Goto(jump) => {
                tracing::debug!(node = %node.qualified, intent = %intent.name, input, "match");
                self.note(
                    now,
                    JournalEvent::Matched {
                        intent: Some(intent.name.clone()),
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
                        value,
                        reason: None,
                        intent: Some(intent.name.clone()),
                        confidence,
                        file: None,
                    },
                );
                if let Some(var) = &ask.store {
                    self.set_var(now, var, intent.name.clone());
                }
                self.take(now, node_id, jump);
            }
        }
    }

    /// Counts a no-input or no-match event: reprompt, or leave when the count exceeds max.
    pub(super) fn escalate(&mut self, now: Instant, noinput: bool, reason: &str) {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            return;
        };
        let node_id = asking.node;
        let Some(ask) = ask_of(&scenario, node_id) else {
            return;
        };
        asking.confirming = None;
        asking.keys.clear();
        let (count, escalation) = if noinput {
            asking.noinput += 1;
            (asking.noinput, &ask.noinput)
        } else {
            asking.nomatch += 1;
            (asking.nomatch, &ask.nomatch)
        };
        tracing::debug!(node = %scenario.node_name(node_id), noinput, count, max = escalation.max, "escalation");
        let event = if noinput {
            JournalEvent::NoInput {
                count,
                max: escalation.max,
            }
        } else {
            JournalEvent::NoMatch {
                count,
                max: escalation.max,
                reason: reason.to_string(),
            }
        };
        self.note(now, event);
        if count > escalation.max {
            // The question was asked and got no answer: the CRM still sees it, with what
            // it listened for and why it ended.
            if let Some(node) = scenario.node(node_id) {
                let input = ask
                    .inputs
                    .iter()
                    .map(|m| match m {
                        InputMode::Dtmf => "dtmf",
                        InputMode::Speech => "speech",
                    })
                    .collect::<Vec<_>>()
                    .join("+");
                let key = self.path_name(node);
                self.result.answers.insert(
                    key,
                    Answer {
                        input,
                        value: String::new(),
                        reason: Some(if noinput { "noinput" } else { "nomatch" }.to_string()),
                        intent: None,
                        confidence: None,
                        file: None,
                    },
                );
            }
            self.take(now, node_id, &escalation.target);
        } else {
            self.ask_round(now, ask, escalation.reprompt(count), escalation.question);
        }
    }
}
