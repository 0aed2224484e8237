//! How sure speech must be: an `ask`'s `confidence` threshold, and its `confirm` block —
//! "did you say …?" for speech below the threshold but at least `confirm.min`.
//!
//! Deliberately not here: the yes/no phrases of the answer, or scoring speech (`dialogue`
//! and `nlu`).

use super::AskContext;
use crate::scenario::compile::Compiler;
use crate::scenario::compile::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawAsk;
use crate::scenario::{Confirm, DEFAULT_CONFIDENCE};

/// `confirm.min` when not written.
const DEFAULT_CONFIRM_MIN: f32 = 0.2;

impl<'a> Compiler<'a> {
    /// `confidence:`, between 0 and 1.
    pub(super) fn confidence(&mut self, raw: &RawAsk) -> f32 {
        match &raw.confidence {
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
        }
    }

    /// `confirm:`, which only an `ask` that takes speech can use.
    pub(super) fn confirmation(&mut self, cx: &AskContext<'_>) -> Option<Confirm> {
        let cf = cx.ask.value.confirm.as_ref()?;
        if !cx.speech_in {
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
                DEFAULT_CONFIRM_MIN
            }
            Some(m) => m.value as f32,
            None => DEFAULT_CONFIRM_MIN,
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
}
