//! The dialogue interpreter: runs one call through a compiled [`Scenario`].
//!
//! Sans-IO, like the SIP core: it never touches audio, sockets or the clock. The engine
//! feeds [`Input`]s and timer wake-ups with the current instant and drains [`Action`]s;
//! [`Dialogue::poll_timeout`] says when it next wants to be woken. Time is an argument, so
//! tests play a whole call on a virtual clock.
//!
//! This file is the interpreter's core: its state, the inputs and timer wake-ups it
//! dispatches, transitions between nodes, and the call's variables. Every node kind has its
//! own file, with what entering it does and, where it waits, how its result or timer is
//! handled: `play`, `ask/` (question rounds and their VoiceXML timing, keys, speech,
//! confirmation, escalation), `set`, `branch` (and `switch`; `goto` needs nothing but the
//! dispatch), `notify`, `hangup` (and every other way a dialogue ends), `record`,
//! `webhook`, `transfer`, `call` (and `return`: the sub-dialogue stack). `messages.rs`
//! holds what goes in and out, `journal.rs` and `result.rs` what it records,
//! `prompts.rs` how prompt items become recordings.
//!
//! Effects that take time (webhooks, transfers, recordings) leave as actions with an id;
//! the dialogue waits in the node, enforces the node's timeout itself and ignores results
//! that arrive after it. Sub-dialogues run on a call stack of frames that save the
//! variables their parameters shadow.
//!
//! [`Dialogue::journal`] records what happened (transitions with the edge taken, timers,
//! classifications) for the simulator's timeline and the coverage report.
//!
//! Deliberately not here: how prompts are found or played (engine/media), SIP, the CRM
//! payload (the engine builds it from [`DialogueResult`]), audio capture and recognition
//! (the speech path feeds [`Input::SpeechStarted`] / [`Input::Utterance`] and reads
//! [`Dialogue::listen_spec`]), HTTP (the runtime carries out [`Action::Webhook`]).

mod ask;
mod branch;
mod call;
mod hangup;
mod journal;
mod messages;
mod notify;
mod play;
mod prompts;
mod record;
mod result;
mod set;
mod transfer;
mod webhook;

#[cfg(test)]
mod tests;

/// Separates the alternatives of one answer in a phrase list entry: the dialogue lists each
/// intent as one entry (`"not yet|haven't paid"`), so the recogniser knows which phrases
/// are the same answer — they are not each other's rivals when it scores them. An entry
/// without it is an answer of its own.
pub const ALTERNATIVES: char = '|';

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ask::Asking;
pub use ask::{NO_PHRASES, SPEECH_RESULT_GRACE, YES_PHRASES};

/// What speech can select in `ask`, by intent, in `lang`, as the dialogue matches it: the
/// intents' phrases and their digit keys said aloud (spoken keys; counted only when `heard`
/// says exactly one number). For `ivrflow explain` and tests.
pub fn speech_choices(
    ask: &crate::scenario::Ask,
    lang: &str,
    heard: Option<&str>,
) -> Vec<(String, Vec<String>)> {
    ask::candidates(ask, lang, heard)
}
use call::Frame;
pub use journal::{EdgeId, JournalEntry, JournalEvent, MAX_JOURNAL, Timer};
pub use messages::{
    Action, Input, ListenSpec, PromptRef, RecordRequest, TransferOutcome, WebhookRequest,
};
pub use record::RECORD_RESULT_GRACE;
pub use result::{Answer, DialogueResult, HangupBy};

use crate::scenario::{Jump, Node, NodeId, NodeKind, PromptItem, Scenario};

/// Zero-time transitions (`goto`, `set`, `branch`, empty `play`, …) allowed while handling
/// one input before the dialogue gives up with outcome `error`.
pub const MAX_TRANSITIONS_PER_INPUT: u32 = 1000;

/// Outcome set when the caller hangs up before any outcome was recorded.
pub const OUTCOME_CALLER_HANGUP: &str = "caller_hangup";

/// Outcome set when an answering machine answered and the scenario's `amd.on_machine` is
/// `hangup`.
pub const OUTCOME_ANSWERING_MACHINE: &str = "answering_machine";

/// Outcome set when the dialogue stops because of a scenario fault at run time.
pub const OUTCOME_ERROR: &str = "error";

/// One call's dialogue state machine.
#[derive(Debug)]
pub struct Dialogue {
    scenario: Arc<Scenario>,
    state: State,
    actions: VecDeque<Action>,
    /// Ids of plays and effects (one counter; ids increase).
    last_id: u64,
    /// Transitions made while handling the current input.
    hops: u32,
    result: DialogueResult,
    frames: Vec<Frame>,
    journal: Vec<JournalEntry>,
    /// Keys typed during prompts that lead into a question, for that question (VoiceXML
    /// type-ahead; see `play.rs`).
    typeahead: String,
}

#[derive(Debug)]
enum State {
    NotStarted,
    /// A `play` node's prompts are playing; `barge_in[i]` is prompt i's flag (true only
    /// where the play leads into a question: type-ahead), `index` the one on the wire.
    Playing {
        node: NodeId,
        play: u64,
        index: usize,
        barge_in: Vec<bool>,
    },
    Asking(Asking),
    /// A `record` node's prompt is playing.
    RecordPrompt {
        node: NodeId,
        play: u64,
    },
    /// A webhook, transfer or recording is under way.
    Waiting {
        node: NodeId,
        wait: Wait,
        id: u64,
        deadline: Instant,
    },
    /// A `hangup` node's prompts are playing.
    HangingUp {
        play: u64,
    },
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Webhook,
    Transfer,
    Record,
}

impl Wait {
    /// The timer that bounds the wait.
    fn timer(self) -> Timer {
        match self {
            Wait::Webhook => Timer::Webhook,
            Wait::Transfer => Timer::Transfer,
            Wait::Record => Timer::Recording,
        }
    }
}

/// Where [`Dialogue::enter`] goes on at once after entering a node: the next node and the
/// edge taken (`None` when the node waits for something, or the dialogue ended).
type Next = Option<(NodeId, Option<EdgeId>)>;

/// Taking `jump` out of node `from`, at once.
fn local(from: NodeId, jump: &Jump) -> Next {
    Some((
        jump.target,
        Some(EdgeId {
            from: Some(from),
            key: jump.key.clone(),
        }),
    ))
}

impl Dialogue {
    /// A dialogue for one call. `variables` (from the call request or SIP headers) override
    /// the scenario's declared defaults; undeclared ones are kept and reported in the
    /// result. `language` selects the prompt set; an unsupported value falls back to the
    /// scenario's default language with a warning. A value that does not fit its declared
    /// type is kept and logged (by name, not value).
    pub fn new(scenario: Arc<Scenario>, variables: BTreeMap<String, String>) -> Dialogue {
        let mut vars = scenario.default_variables();
        for (name, value) in &variables {
            if let Some(decl) = scenario.variables.get(name)
                && decl.ty.check(value).is_err()
            {
                tracing::warn!(
                    scenario = %scenario.name,
                    variable = %name,
                    r#type = decl.ty.name(),
                    "call value does not fit the declared type"
                );
            }
        }
        vars.extend(variables);
        let dialogue = Dialogue {
            result: DialogueResult {
                variables: vars,
                ..DialogueResult::default()
            },
            scenario,
            state: State::NotStarted,
            actions: VecDeque::new(),
            last_id: 0,
            hops: 0,
            frames: Vec::new(),
            journal: Vec::new(),
            typeahead: String::new(),
        };
        dialogue.check_language();
        dialogue
    }

    /// Enters the start node. Call once, when the call is answered.
    pub fn start(&mut self, now: Instant) {
        if !matches!(self.state, State::NotStarted) {
            tracing::warn!(scenario = %self.scenario.name, "dialogue started twice; ignored");
            return;
        }
        self.hops = 0;
        self.enter(now, self.scenario.start, None);
    }

    /// An answering machine answered and its greeting is over (the scenario's `amd:`): enters
    /// `amd.on_machine` instead of the start node, or hangs up (outcome
    /// [`OUTCOME_ANSWERING_MACHINE`]). Call instead of [`Dialogue::start`].
    pub fn start_machine(&mut self, now: Instant) {
        if !matches!(self.state, State::NotStarted) {
            tracing::warn!(scenario = %self.scenario.name, "dialogue started twice; ignored");
            return;
        }
        self.hops = 0;
        let Some(amd) = self.scenario.amd.clone() else {
            self.enter(now, self.scenario.start, None);
            return;
        };
        match &amd.on_machine {
            Some(jump) => {
                let edge = EdgeId {
                    from: None,
                    key: jump.key.clone(),
                };
                self.enter(now, jump.target, Some(edge));
            }
            None => {
                self.result.outcome = Some(OUTCOME_ANSWERING_MACHINE.to_string());
                self.robot_hangup(now);
            }
        }
    }

    /// Sets a call variable from outside the scenario (the call core's `answered_by`),
    /// journalled like a `set`. Works before the dialogue starts.
    pub fn set_variable(&mut self, now: Instant, name: &str, value: &str) {
        self.set_var(now, name, value.to_string());
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.hops = 0;
        match input {
            Input::Hangup => self.caller_hangup(now),
            _ if matches!(self.state, State::Finished) => {
                tracing::debug!(
                    input = input.kind(),
                    "input after the dialogue finished; ignored"
                );
            }
            _ if matches!(self.state, State::NotStarted) => {
                tracing::warn!(
                    input = input.kind(),
                    "input before the dialogue started; ignored"
                );
            }
            Input::Dtmf(key) => self.on_key(now, key),
            Input::PlaybackDone { id } | Input::PlaybackStopped { id } => {
                self.on_playback_end(now, id)
            }
            Input::PromptStarted { id, index } => {
                self.on_prompt_started(id, index);
                self.play_prompt_started(id, index);
            }
            Input::SpeechStarted => self.on_speech_started(now),
            Input::Utterance { text, confidence } => self.on_utterance(now, text, confidence),
            Input::SpeechUnrecognised => self.on_unrecognised(now),
            Input::WebhookResult { id, result } => self.on_webhook(now, id, result),
            Input::TransferResult { id, outcome } => self.on_transfer(now, id, outcome),
            Input::RecordingDone {
                id,
                duration,
                transcript,
                file,
            } => self.on_recording(now, id, duration, transcript, file),
        }
    }

    /// Fires the timer that is due at `now`, if any; an early or spurious wake-up is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.hops = 0;
        match &self.state {
            State::Asking(_) => self.ask_timeout(now),
            State::Waiting {
                wait, id, deadline, ..
            } if now >= *deadline => {
                let (wait, id) = (*wait, *id);
                self.note(
                    now,
                    JournalEvent::Fired {
                        timer: wait.timer(),
                    },
                );
                match wait {
                    Wait::Webhook => self.on_webhook(now, id, Err("timeout".to_string())),
                    Wait::Transfer => {
                        self.on_transfer(now, id, TransferOutcome::Failed("timeout".to_string()))
                    }
                    Wait::Record => self.on_recording(now, id, Duration::ZERO, None, None),
                }
            }
            _ => {}
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Asking(asking) => asking.deadline(),
            State::Waiting { deadline, .. } => Some(*deadline),
            _ => None,
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// True once the robot or the caller has hung up. Drain [`poll_action`](Self::poll_action)
    /// first: the final `Action::Hangup` is queued when this turns true.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    pub fn result(&self) -> &DialogueResult {
        &self.result
    }

    pub fn scenario(&self) -> &Arc<Scenario> {
        &self.scenario
    }

    /// What happened so far (transitions, timers, classifications).
    pub fn journal(&self) -> &[JournalEntry] {
        &self.journal
    }

    /// Qualified name of the node the dialogue is in (None before start and after the end).
    pub fn current_node(&self) -> Option<&str> {
        let id = match &self.state {
            State::Playing { node, .. }
            | State::RecordPrompt { node, .. }
            | State::Waiting { node, .. } => *node,
            State::Asking(asking) => asking.node,
            _ => return None,
        };
        Some(self.scenario.node_name(id))
    }

    /// The language prompts are played in now.
    pub fn language(&self) -> &str {
        match self.result.variables.get("language") {
            Some(lang) if self.scenario.languages.contains(lang) => lang,
            _ => self.scenario.default_language(),
        }
    }

    /// The date relative spoken dates count from (`answer: date`): the call variable
    /// `today` (YYYY-MM-DD) when it is set — the simulator and tests set it — else the
    /// system's date now (the one place the dialogue reads a clock: a date, never an
    /// instant, so timing stays virtual).
    pub(crate) fn today(&self) -> jiff::civil::Date {
        self.result
            .variables
            .get("today")
            .and_then(|t| t.parse::<jiff::civil::Date>().ok())
            .unwrap_or_else(|| jiff::Zoned::now().date())
    }

    fn check_language(&self) {
        if let Some(lang) = self.result.variables.get("language")
            && !self.scenario.languages.contains(lang)
        {
            tracing::warn!(
                scenario = %self.scenario.name,
                language = %lang,
                fallback = self.scenario.default_language(),
                "language not supported by the scenario; using the default"
            );
        }
    }

    fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    fn next_play(&mut self, prompts: Vec<PromptRef>) -> u64 {
        let id = self.next_id();
        self.actions.push_back(Action::Play { id, prompts });
        id
    }

    fn render(&self, items: &[PromptItem], barge_in: Option<bool>, out: &mut Vec<PromptRef>) {
        prompts::render(
            items,
            self.language(),
            &self.result.variables,
            |item| barge_in.is_some_and(|default| item.barge_in.unwrap_or(default)),
            out,
        );
    }

    fn set_var(&mut self, now: Instant, name: &str, value: String) {
        self.note(
            now,
            JournalEvent::Set {
                variable: name.to_string(),
                value: value.clone(),
            },
        );
        self.result.variables.insert(name.to_string(), value);
        if name == "language" {
            self.check_language();
        }
    }

    /// Takes `jump` out of `from`.
    fn take(&mut self, now: Instant, from: NodeId, jump: &Jump) {
        if jump.global {
            // A global handler leaves whatever sub-dialogue is running.
            self.unwind();
        }
        let edge = EdgeId {
            from: (!jump.global).then_some(from),
            key: jump.key.clone(),
        };
        self.enter(now, jump.target, Some(edge));
    }

    /// Goes to `target` and on through zero-time nodes until something waits for time.
    fn enter(&mut self, now: Instant, target: NodeId, edge: Option<EdgeId>) {
        let scenario = Arc::clone(&self.scenario);
        let mut next = Some((target, edge));
        while let Some((id, edge)) = next.take() {
            self.hops += 1;
            if self.hops > MAX_TRANSITIONS_PER_INPUT {
                self.fail(
                    now,
                    &format!(
                        "more than {MAX_TRANSITIONS_PER_INPUT} transitions without waiting (at node `{}`)",
                        scenario.node_name(id)
                    ),
                );
                return;
            }
            let Some(node) = scenario.node(id) else {
                self.fail(now, &format!("node id {} is not in the scenario", id.0));
                return;
            };
            self.arrive(now, id, node, edge);
            next = match &node.kind {
                NodeKind::Play { prompts, next } => self.enter_play(id, prompts, next),
                NodeKind::Set { assign, next } => self.enter_set(now, id, assign, next),
                NodeKind::Goto { target } => local(id, target),
                NodeKind::Branch { arms, otherwise } => self.enter_branch(id, arms, otherwise),
                NodeKind::Switch {
                    value,
                    cases,
                    default,
                } => self.enter_switch(id, value, cases, default),
                NodeKind::Notify {
                    event, data, next, ..
                } => self.enter_notify(id, event, data, next),
                NodeKind::Hangup { outcome, prompts } => {
                    self.enter_hangup(now, outcome.as_ref(), prompts)
                }
                NodeKind::Ask(ask) => self.enter_ask(now, id, ask),
                NodeKind::Record(rec) => self.enter_record(now, id, rec),
                NodeKind::Webhook(w) => self.enter_webhook(now, id, w),
                NodeKind::Transfer(t) => self.enter_transfer(now, id, t),
                NodeKind::Call { sub, args, .. } => self.enter_call(now, id, node, *sub, args),
                NodeKind::Return { value } => self.enter_return(now, value),
            };
        }
    }

    /// What entering any node does: the path, the journal, the node's `outcome:`.
    fn arrive(&mut self, now: Instant, id: NodeId, node: &Node, edge: Option<EdgeId>) {
        tracing::debug!(scenario = %self.scenario.name, node = %node.qualified, kind = node.kind_name(), "enter node");
        if !self.typeahead.is_empty()
            && !matches!(
                node.kind,
                NodeKind::Set { .. }
                    | NodeKind::Goto { .. }
                    | NodeKind::Notify { .. }
                    | NodeKind::Ask(_)
            )
        {
            self.typeahead.clear();
        }
        let path_name = self.path_name(node);
        self.result.path.push(path_name.clone());
        self.note(
            now,
            JournalEvent::Enter {
                node: id,
                path_name,
                edge,
            },
        );
        if let Some(outcome) = &node.outcome {
            self.result.outcome = Some(outcome.clone());
        }
    }

    fn on_playback_end(&mut self, now: Instant, id: u64) {
        match &self.state {
            State::Playing { node, play, .. } if *play == id => {
                let node = *node;
                self.play_done(now, node);
            }
            State::RecordPrompt { node, play } if *play == id => {
                let node = *node;
                self.start_record(now, node);
            }
            State::HangingUp { play } if *play == id => self.robot_hangup(now),
            State::Asking(_) => self.ask_prompt_done(now, id),
            _ => tracing::trace!(id, "playback end of a play that is no longer current"),
        }
    }

    /// The pending effect of `wait` kind with this id, if it is the current one.
    fn waiting_for(&self, wait: Wait, id: u64) -> Option<NodeId> {
        match &self.state {
            State::Waiting {
                node,
                wait: w,
                id: i,
                ..
            } if *w == wait && *i == id => Some(*node),
            _ => None,
        }
    }
}

/// `now + d`, saturating far in the future instead of panicking on overflow.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(crate::scenario::MAX_DURATION))
        .unwrap_or(now)
}
