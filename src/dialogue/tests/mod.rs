//! Whole dialogues on a virtual clock: `t0` once, then `t0 + ms`; nothing sleeps.
//!
//! This file is the harness (a [`Call`] with its clock, and helpers to read actions); the
//! tests are grouped like the interpreter: the bundled order confirmation played through,
//! keys and digit strings, speech, effects (webhooks, recordings, transfers), sub-dialogues,
//! and the rest of the flow (zero-time loops, `set`, say-as items).

mod ask;
mod call;
mod effects;
mod flow;
mod order_confirmation;
mod speech;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::scenario::{TransferMode, load_file, load_str};

fn order_confirmation() -> Arc<Scenario> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join("order-confirmation.yaml");
    Arc::new(load_file(&path).unwrap_or_else(|e| panic!("{e}")))
}

const QUESTION: [&str; 9] = [
    "if-correct-press",
    "digits/1",
    "vm-press",
    "digits/2",
    "for",
    "cancelled",
    "vm-press",
    "digits/3",
    "shop/to-change-order",
];
const GREETING: [&str; 8] = [
    "hello", "your", "number", "is", "digits/1", "digits/2", "digits/3", "digits/4",
];

/// A dialogue plus a virtual clock and the actions it produced.
struct Call {
    d: Dialogue,
    t0: Instant,
}

impl Call {
    fn new(scenario: Arc<Scenario>, vars: &[(&str, &str)]) -> Call {
        let vars = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>();
        let mut call = Call {
            d: Dialogue::new(scenario, vars),
            t0: Instant::now(),
        };
        call.d.start(call.t0);
        call
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn input(&mut self, ms: u64, input: Input) -> Vec<Action> {
        self.d.handle_input(self.at(ms), input);
        self.drain()
    }

    fn timeout(&mut self, ms: u64) -> Vec<Action> {
        self.d.handle_timeout(self.at(ms));
        self.drain()
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.d.poll_action()).collect()
    }

    /// Fires the next timer at the instant the dialogue asked for.
    fn wait_timer(&mut self) -> (u64, Vec<Action>) {
        let at = self.d.poll_timeout().expect("a timer is armed");
        let ms = at.duration_since(self.t0).as_millis() as u64;
        (ms, self.timeout(ms))
    }
}

/// The single Play in `actions`: (id, prompt names).
#[track_caller]
fn play(actions: &[Action]) -> (u64, Vec<String>) {
    match actions {
        [Action::Play { id, prompts }] => (*id, prompts.iter().map(|p| p.name.clone()).collect()),
        other => panic!("expected one Play, got {other:?}"),
    }
}

fn names(parts: &[&[&str]]) -> Vec<String> {
    parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|s| s.to_string())
        .collect()
}

/// Starts the order confirmation and lets the greeting finish at 3 s; returns the
/// question's play id (played from 3 s).
fn to_question(call: &mut Call) -> u64 {
    let actions = call.drain();
    let (greet, prompts) = play(&actions);
    assert_eq!(prompts, names(&[&GREETING]));
    let (question, prompts) = play(&call.input(3000, Input::PlaybackDone { id: greet }));
    assert_eq!(prompts, names(&[&QUESTION]));
    assert!(question > greet);
    question
}

fn scenario(yaml: &str) -> Arc<Scenario> {
    Arc::new(load_str("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}")))
}

/// The ids and names of the actions, for compact assertions.
fn kinds(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            Action::Play { prompts, .. } => format!(
                "play {}",
                prompts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            Action::StopPlayback => "stop".to_string(),
            Action::Hangup => "hangup".to_string(),
            Action::Webhook { request, .. } => format!("webhook {}", request.body),
            Action::Transfer { target, .. } => format!("transfer {target}"),
            Action::Notify { event, .. } => format!("notify {event}"),
            Action::Record { .. } => "record".to_string(),
        })
        .collect()
}

fn play_id(actions: &[Action]) -> u64 {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Play { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no Play in {actions:?}"))
}
