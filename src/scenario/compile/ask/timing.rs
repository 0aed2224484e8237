//! How and when an `ask` listens: its input modes (`dtmf` by default) and the VoiceXML
//! timeouts — `timeout` (no input), `interdigit_timeout`, `term_timeout`, and the speech
//! endpointing `complete_timeout`, `incomplete_timeout`, `max_speech_timeout`.
//!
//! Deliberately not here: running the timers (`dialogue`), or the speech endpointing
//! itself (`asr::listen`).

use std::time::Duration;

use crate::scenario::compile::Compiler;
use crate::scenario::compile::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{RawAsk, RawInputMode};
use crate::scenario::{
    DEFAULT_COMPLETE_TIMEOUT, DEFAULT_INCOMPLETE_TIMEOUT, DEFAULT_INTERDIGIT_TIMEOUT,
    DEFAULT_MAX_SPEECH_TIMEOUT, DEFAULT_TIMEOUT, InputMode,
};

/// The timeouts of an `ask`, each its default when not written.
pub(super) struct Timing {
    pub(super) timeout: Duration,
    pub(super) interdigit: Duration,
    pub(super) term: Duration,
    pub(super) complete: Duration,
    pub(super) incomplete: Duration,
    pub(super) max_speech: Duration,
}

impl<'a> Compiler<'a> {
    /// `input:` without repeats; `[dtmf]` when absent.
    pub(super) fn input_modes(&mut self, raw: &RawAsk) -> Vec<InputMode> {
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
        inputs
    }

    pub(super) fn timing(&mut self, raw: &RawAsk) -> Timing {
        Timing {
            timeout: self.duration(raw.timeout.as_ref(), DEFAULT_TIMEOUT, "timeout"),
            interdigit: self.duration(
                raw.interdigit_timeout.as_ref(),
                DEFAULT_INTERDIGIT_TIMEOUT,
                "interdigit_timeout",
            ),
            term: self.duration_or(
                raw.term_timeout.as_ref(),
                Duration::ZERO,
                "term_timeout",
                true,
            ),
            complete: self.duration(
                raw.complete_timeout.as_ref(),
                DEFAULT_COMPLETE_TIMEOUT,
                "complete_timeout",
            ),
            incomplete: self.duration(
                raw.incomplete_timeout.as_ref(),
                DEFAULT_INCOMPLETE_TIMEOUT,
                "incomplete_timeout",
            ),
            max_speech: self.duration(
                raw.max_speech_timeout.as_ref(),
                DEFAULT_MAX_SPEECH_TIMEOUT,
                "max_speech_timeout",
            ),
        }
    }
}
