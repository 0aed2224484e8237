//! The dialogue interpreter: runs one call through a compiled [`Scenario`].
//!
//! Sans-IO, like the SIP core: it never touches audio, sockets or the clock. The engine
//! feeds [`Input`]s and timer wake-ups with the current instant and drains [`Action`]s;
//! [`Dialogue::poll_timeout`] says when it next wants to be woken. Time is an argument, so
//! tests play a whole call on a virtual clock.
//!
//! Timing follows VoiceXML 2.0 Appendix D for DTMF: the no-input `timeout` starts when the
//! prompt has finished playing on the wire (the engine's `PlaybackDone`), not when `Play`
//! was requested; once a key has been pressed the no-input timer is gone and
//! `interdigit_timeout` decides when an ambiguous key buffer is complete.
//!
//! An `ask` node, per question round:
//! ```text
//!  enter / reprompt ──Play──► Prompt ──PlaybackDone/Stopped──► NoInput(timeout)
//!                               │ key, item allows barge-in           │ key      │ expires
//!                               │ (StopPlayback)                      ▼          ▼
//!                               └──────────────────────────────► classify    noinput #k
//!        match ──► answer, on.<intent>     ◄── exact & no longer key │       k ≤ max: reprompt
//!        nomatch #k (k ≤ max: reprompt,    ◄── no key starts with it │       k > max: on.noinput
//!                    k > max: on.nomatch)                            │
//!        InterDigit(interdigit_timeout) ◄── a longer key may follow ─┘
//!            key: classify again; expires: exact ? match : nomatch
//! ```
//! A key during a prompt item with `barge_in: false` is ignored (not buffered). Keys during
//! `play` and `hangup` nodes are ignored. The engine tells which prompt of a `Play` is on
//! the wire with [`Input::PromptStarted`]; without it the first prompt's flag is assumed.
//!
//! Deliberately not here: how prompts are found or played (engine/media), SIP, the CRM
//! payload (the engine builds it from [`DialogueResult`]), speech (a later milestone adds
//! `Input::Utterance` and `Action::Listen` next to DTMF).

mod dtmf;
mod prompts;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::scenario::{Ask, NodeId, NodeKind, PromptItem, Scenario};
use dtmf::KeyMatch;

/// Zero-time transitions (`goto`, `set`, empty `play`) allowed while handling one input
/// before the dialogue gives up with outcome `error`.
pub const MAX_TRANSITIONS_PER_INPUT: u32 = 1000;

/// Outcome set when the caller hangs up before any outcome was recorded.
pub const OUTCOME_CALLER_HANGUP: &str = "caller_hangup";
/// Outcome set when the dialogue stops because of a scenario fault at run time.
pub const OUTCOME_ERROR: &str = "error";

/// One recording to play: `audio/<lang>/<name>.wav` as the engine resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PromptRef {
    pub lang: String,
    pub name: String,
    /// Whether a key pressed while this prompt plays interrupts it (and counts as input).
    pub barge_in: bool,
}

/// What the engine tells the dialogue.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Input {
    /// A DTMF key: 0-9, *, #, A-D.
    Dtmf(char),
    /// Play `id` finished: its last packet was sent.
    PlaybackDone { id: u64 },
    /// Play `id` was stopped (after [`Action::StopPlayback`], or by the engine).
    PlaybackStopped { id: u64 },
    /// Prompt `index` (into the `prompts` of Play `id`) started on the wire. Lets barge-in
    /// follow per-item `barge_in`; optional when all prompts of a play share one flag.
    PromptStarted { id: u64, index: usize },
    /// The caller hung up.
    Hangup,
}

impl Input {
    /// The variant's name, for logs (a key's value is not logged: keys can be personal data).
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Dtmf(_) => "dtmf",
            Input::PlaybackDone { .. } => "playback_done",
            Input::PlaybackStopped { .. } => "playback_stopped",
            Input::PromptStarted { .. } => "prompt_started",
            Input::Hangup => "hangup",
        }
    }
}

/// What the dialogue asks the engine to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Play the prompts back to back. Ids increase; a new Play replaces the current one.
    Play { id: u64, prompts: Vec<PromptRef> },
    /// Barge-in: stop the current play; the engine then feeds `PlaybackStopped`.
    StopPlayback,
    /// The robot hangs up (after the hangup node's prompts have finished).
    Hangup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupBy {
    Caller,
    Robot,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DialogueResult {
    pub outcome: Option<String>,
    /// Answers by `ask` node name; a node asked twice keeps its last answer.
    pub answers: BTreeMap<String, Answer>,
    /// Declared defaults, overridden by the call's variables and by `set`.
    pub variables: BTreeMap<String, String>,
    /// Node names in visit order (reprompts are not visits).
    pub path: Vec<String>,
    pub hangup_by: Option<HangupBy>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// `"dtmf"` (speech adds `"speech"`).
    pub input: String,
    /// The keys as pressed, e.g. `"1"`.
    pub value: String,
    pub intent: Option<String>,
}

/// One call's dialogue state machine.
#[derive(Debug)]
pub struct Dialogue {
    scenario: Arc<Scenario>,
    state: State,
    actions: VecDeque<Action>,
    last_play_id: u64,
    /// Transitions made while handling the current input.
    hops: u32,
    result: DialogueResult,
}

#[derive(Debug)]
enum State {
    NotStarted,
    /// A `play` node's prompts are playing.
    Playing {
        node: NodeId,
        play: u64,
    },
    Asking(Asking),
    /// A `hangup` node's prompts are playing.
    HangingUp {
        play: u64,
    },
    Finished,
}

#[derive(Debug)]
struct Asking {
    node: NodeId,
    listen: Listen,
    keys: String,
    noinput: u32,
    nomatch: u32,
}

#[derive(Debug)]
enum Listen {
    /// The question (with any reprompt) is playing; `barge_in[i]` is prompt i's flag.
    Prompt {
        play: u64,
        index: usize,
        barge_in: Vec<bool>,
    },
    /// Prompt done, no key yet; no-input at `deadline`.
    NoInput { deadline: Instant },
    /// Keys so far are a prefix of a longer intent key; decide at `deadline`.
    InterDigit { deadline: Instant },
}

impl Dialogue {
    /// A dialogue for one call. `variables` (from the call request or SIP headers) override
    /// the scenario's declared defaults; undeclared ones are kept and reported in the
    /// result. `language` selects the prompt set; an unsupported value falls back to the
    /// scenario's default language with a warning.
    pub fn new(scenario: Arc<Scenario>, variables: BTreeMap<String, String>) -> Dialogue {
        let mut vars = scenario.default_variables();
        vars.extend(variables);
        let dialogue = Dialogue {
            result: DialogueResult {
                variables: vars,
                ..DialogueResult::default()
            },
            scenario,
            state: State::NotStarted,
            actions: VecDeque::new(),
            last_play_id: 0,
            hops: 0,
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
        self.enter(now, self.scenario.start);
    }

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.hops = 0;
        match input {
            Input::Hangup => self.caller_hangup(),
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
                if let State::Asking(Asking {
                    listen:
                        Listen::Prompt {
                            play, index: at, ..
                        },
                    ..
                }) = &mut self.state
                    && *play == id
                {
                    *at = index;
                }
            }
        }
    }

    /// Fires the timer that is due at `now`, if any; an early or spurious wake-up is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.hops = 0;
        let State::Asking(asking) = &self.state else {
            return;
        };
        match asking.listen {
            Listen::NoInput { deadline } if now >= deadline => self.no_input(now),
            Listen::InterDigit { deadline } if now >= deadline => {
                match self
                    .current_ask()
                    .map(|(_, ask)| dtmf::exact(&asking.keys, &ask.intents))
                {
                    Some(Some(intent)) => self.matched(now, intent),
                    _ => self.no_match(now),
                }
            }
            _ => {}
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Asking(Asking {
                listen: Listen::NoInput { deadline } | Listen::InterDigit { deadline },
                ..
            }) => Some(*deadline),
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

    /// Name of the node the dialogue is in (None before start and after the end).
    pub fn current_node(&self) -> Option<&str> {
        let id = match &self.state {
            State::Playing { node, .. } => *node,
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

    fn current_ask(&self) -> Option<(NodeId, &Ask)> {
        let State::Asking(asking) = &self.state else {
            return None;
        };
        match &self.scenario.node(asking.node)?.kind {
            NodeKind::Ask(ask) => Some((asking.node, ask)),
            _ => None,
        }
    }

    fn next_play(&mut self, prompts: Vec<PromptRef>) -> u64 {
        self.last_play_id += 1;
        let id = self.last_play_id;
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

    /// Goes to `target` and on through zero-time nodes until something waits for time.
    fn enter(&mut self, now: Instant, target: NodeId) {
        let scenario = Arc::clone(&self.scenario);
        let mut next = Some(target);
        while let Some(id) = next.take() {
            self.hops += 1;
            if self.hops > MAX_TRANSITIONS_PER_INPUT {
                self.fail(&format!(
                    "more than {MAX_TRANSITIONS_PER_INPUT} transitions without waiting (at node `{}`)",
                    scenario.node_name(id)
                ));
                return;
            }
            let Some(node) = scenario.node(id) else {
                self.fail(&format!("node id {} is not in the scenario", id.0));
                return;
            };
            tracing::debug!(scenario = %scenario.name, node = %node.name, kind = node.kind_name(), "enter node");
            self.result.path.push(node.name.clone());
            if let Some(outcome) = &node.outcome {
                self.result.outcome = Some(outcome.clone());
            }
            match &node.kind {
                NodeKind::Play {
                    prompts,
                    next: after,
                } => {
                    let mut refs = Vec::new();
                    self.render(prompts, None, &mut refs);
                    if refs.is_empty() {
                        next = Some(*after);
                    } else {
                        let play = self.next_play(refs);
                        self.state = State::Playing { node: id, play };
                    }
                }
                NodeKind::Set {
                    assign,
                    next: after,
                } => {
                    for (var, value) in assign {
                        let value = value.render(&self.result.variables);
                        self.result.variables.insert(var.clone(), value);
                        if var == "language" {
                            self.check_language();
                        }
                    }
                    next = Some(*after);
                }
                NodeKind::Goto { target } => next = Some(*target),
                NodeKind::Hangup { outcome, prompts } => {
                    if let Some(outcome) = outcome {
                        self.result.outcome = Some(outcome.clone());
                    }
                    let mut refs = Vec::new();
                    self.render(prompts, None, &mut refs);
                    if refs.is_empty() {
                        self.robot_hangup();
                    } else {
                        let play = self.next_play(refs);
                        self.state = State::HangingUp { play };
                    }
                }
                NodeKind::Ask(ask) => {
                    self.state = State::Asking(Asking {
                        node: id,
                        listen: Listen::NoInput { deadline: now },
                        keys: String::new(),
                        noinput: 0,
                        nomatch: 0,
                    });
                    self.ask_round(now, ask, &[]);
                }
            }
        }
    }

    /// Plays `extra` (a reprompt) and the question, and clears the key buffer.
    fn ask_round(&mut self, now: Instant, ask: &Ask, extra: &[PromptItem]) {
        let mut refs = Vec::new();
        self.render(extra, Some(ask.barge_in), &mut refs);
        self.render(&ask.prompt, Some(ask.barge_in), &mut refs);
        let listen = if refs.is_empty() {
            Listen::NoInput {
                deadline: deadline(now, ask.timeout),
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

    fn on_playback_end(&mut self, now: Instant, id: u64) {
        match &mut self.state {
            State::Playing { node, play } if *play == id => {
                let node = *node;
                if let Some(crate::scenario::Node {
                    kind: NodeKind::Play { next, .. },
                    ..
                }) = self.scenario.node(node)
                {
                    let next = *next;
                    self.enter(now, next);
                }
            }
            State::HangingUp { play } if *play == id => self.robot_hangup(),
            State::Asking(asking) => {
                if let Listen::Prompt { play, .. } = asking.listen
                    && play == id
                {
                    let timeout = self
                        .current_ask()
                        .map_or(crate::scenario::DEFAULT_TIMEOUT, |(_, a)| a.timeout);
                    if let State::Asking(asking) = &mut self.state {
                        asking.listen = Listen::NoInput {
                            deadline: deadline(now, timeout),
                        };
                    }
                }
            }
            _ => tracing::trace!(id, "playback end of a play that is no longer current"),
        }
    }

    fn on_key(&mut self, now: Instant, key: char) {
        let Some(key) = dtmf::normalize_key(key) else {
            tracing::warn!("ignoring a DTMF key that is not 0-9, *, #, A-D");
            return;
        };
        let State::Asking(asking) = &mut self.state else {
            tracing::debug!("key outside an ask; ignored");
            return;
        };
        if let Listen::Prompt {
            index, barge_in, ..
        } = &asking.listen
        {
            let allowed = barge_in
                .get(*index)
                .or(barge_in.last())
                .copied()
                .unwrap_or(true);
            if !allowed {
                tracing::debug!("key during a prompt without barge-in; ignored");
                return;
            }
            self.actions.push_back(Action::StopPlayback);
        }
        asking.keys.push(key);
        // Until the keys are decided, the no-input timer is off.
        asking.listen = Listen::InterDigit { deadline: now };
        let Some((_, ask)) = self.current_ask() else {
            return;
        };
        let State::Asking(asking) = &self.state else {
            return;
        };
        match dtmf::classify(&asking.keys, &ask.intents) {
            KeyMatch::Match(intent) => self.matched(now, intent),
            KeyMatch::NoMatch => self.no_match(now),
            KeyMatch::Partial => {
                let at = deadline(now, ask.interdigit_timeout);
                if let State::Asking(asking) = &mut self.state {
                    asking.listen = Listen::InterDigit { deadline: at };
                }
            }
        }
    }

    fn matched(&mut self, now: Instant, intent: usize) {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            return;
        };
        let Some(node) = scenario.node(asking.node) else {
            return;
        };
        let NodeKind::Ask(ask) = &node.kind else {
            return;
        };
        let Some(intent) = ask.intents.get(intent) else {
            return;
        };
        let value = std::mem::take(&mut asking.keys);
        tracing::debug!(node = %node.name, intent = %intent.name, "dtmf match");
        self.result.answers.insert(
            node.name.clone(),
            Answer {
                input: "dtmf".to_string(),
                value,
                intent: Some(intent.name.clone()),
            },
        );
        self.enter(now, intent.target);
    }

    fn no_input(&mut self, now: Instant) {
        self.escalate(now, true);
    }

    fn no_match(&mut self, now: Instant) {
        self.escalate(now, false);
    }

    /// Counts a no-input or no-match event: reprompt, or leave when the count exceeds max.
    fn escalate(&mut self, now: Instant, noinput: bool) {
        let scenario = Arc::clone(&self.scenario);
        let State::Asking(asking) = &mut self.state else {
            return;
        };
        let Some(node) = scenario.node(asking.node) else {
            return;
        };
        let NodeKind::Ask(ask) = &node.kind else {
            return;
        };
        let (count, escalation, event) = if noinput {
            asking.noinput += 1;
            (asking.noinput, &ask.noinput, "noinput")
        } else {
            asking.nomatch += 1;
            (asking.nomatch, &ask.nomatch, "nomatch")
        };
        tracing::debug!(node = %node.name, event, count, max = escalation.max, "escalation");
        if count > escalation.max {
            self.enter(now, escalation.target);
        } else {
            self.ask_round(now, ask, escalation.reprompt(count));
        }
    }

    fn robot_hangup(&mut self) {
        self.actions.push_back(Action::Hangup);
        self.result.hangup_by = Some(HangupBy::Robot);
        self.state = State::Finished;
    }

    fn caller_hangup(&mut self) {
        if matches!(self.state, State::Finished) {
            return;
        }
        // Nothing queued matters any more: the call is gone.
        self.actions.clear();
        self.result.hangup_by = Some(HangupBy::Caller);
        self.result
            .outcome
            .get_or_insert_with(|| OUTCOME_CALLER_HANGUP.to_string());
        self.state = State::Finished;
    }

    fn fail(&mut self, reason: &str) {
        tracing::error!(scenario = %self.scenario.name, reason, "dialogue stopped");
        self.result.outcome = Some(OUTCOME_ERROR.to_string());
        self.robot_hangup();
    }
}

/// `now + d`, saturating far in the future instead of panicking on overflow.
fn deadline(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(crate::scenario::MAX_DURATION))
        .unwrap_or(now)
}
