//! The journal: what the dialogue did — transitions with the edge taken, timers armed and
//! fired, classifications, escalations, effect results — for the simulator's timeline and
//! the coverage report. Bounded by [`MAX_JOURNAL`] entries per call.
//!
//! Deliberately not here: logging. Values here may be personal data; the journal is for
//! tests and the simulator, never for logs.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Dialogue, HangupBy, deadline};
use crate::scenario::NodeId;

/// Journal entries kept per call (a runaway call stops journaling, not working).
pub const MAX_JOURNAL: usize = 10_000;

/// A transition, as coverage counts it: the node it leaves (`None` for a global handler)
/// and the key that declares it (see [`crate::scenario::Jump`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeId {
    pub from: Option<NodeId>,
    pub key: String,
}

/// The dialogue's timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// VoiceXML `timeout`.
    NoInput,
    /// VoiceXML `interdigittimeout`.
    InterDigit,
    /// VoiceXML `termtimeout`.
    TermChar,
    /// Waiting for the recogniser's verdict after `SpeechStarted`.
    Speech,
    Webhook,
    Transfer,
    Recording,
}

impl Timer {
    pub fn name(self) -> &'static str {
        match self {
            Timer::NoInput => "no-input",
            Timer::InterDigit => "inter-digit",
            Timer::TermChar => "terminator",
            Timer::Speech => "speech result",
            Timer::Webhook => "webhook",
            Timer::Transfer => "transfer",
            Timer::Recording => "recording",
        }
    }
}

/// One entry of [`Dialogue::journal`].
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub at: Instant,
    pub event: JournalEvent,
}

/// What the dialogue did, for timelines and coverage. Values here may be personal data:
/// the journal is for tests and the simulator, never for logs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum JournalEvent {
    /// Entered `node` (`path_name` as in the result's path) through `edge` (`None` for the
    /// start node).
    Enter {
        node: NodeId,
        path_name: String,
        edge: Option<EdgeId>,
    },
    /// A timer was armed for `deadline`.
    Timer {
        timer: Timer,
        deadline: Instant,
    },
    /// A timer fired.
    Fired {
        timer: Timer,
    },
    /// An answer was accepted: an intent (or, for a digit string, none).
    Matched {
        intent: Option<String>,
        input: &'static str,
        value: String,
        confidence: Option<f32>,
    },
    /// The caller asked to hear the question again.
    Repeat {
        count: u32,
    },
    /// Speech with low confidence: asking "did you say …?".
    Confirming {
        intent: String,
        confidence: f32,
    },
    NoInput {
        count: u32,
        max: u32,
    },
    NoMatch {
        count: u32,
        max: u32,
        reason: String,
    },
    /// A key typed during prompts that lead into a question, kept for that question
    /// (type-ahead).
    TypeAhead {
        key: char,
    },
    /// An input that did not count (a key during a protected prompt, a late result, …).
    Ignored {
        what: String,
    },
    /// A variable was assigned.
    Set {
        variable: String,
        value: String,
    },
    /// The result of an effect, in words (`webhook ok`, `transfer busy`, …).
    Result {
        what: String,
    },
    /// The dialogue ended.
    Finished {
        outcome: Option<String>,
        by: HangupBy,
    },
}

impl Dialogue {
    pub(super) fn note(&mut self, at: Instant, event: JournalEvent) {
        if self.journal.len() < MAX_JOURNAL {
            self.journal.push(JournalEntry { at, event });
        }
    }

    pub(super) fn arm(&mut self, now: Instant, timer: Timer, d: Duration) -> Instant {
        let at = deadline(now, d);
        self.note(
            now,
            JournalEvent::Timer {
                timer,
                deadline: at,
            },
        );
        at
    }
}
