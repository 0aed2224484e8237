//! `amd:` — answering-machine detection: where a machine's call goes (a node of the main
//! dialogue, as a global jump, or `hangup`) and the detector's timings, checked against each
//! other.
//!
//! Deliberately not here: detecting anything (that is `media::amd`), or declaring the
//! `answered_by` variable (`declare.rs`).

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawAmd;
use crate::scenario::{AMD_MACHINE_KEY, Amd, DEFAULT_AMD_MAX_WAIT, Jump, MAX_AMD_WAIT};

impl<'a> Compiler<'a> {
    /// `amd:` (main dialogue name space).
    pub(super) fn amd(&mut self, amd: &Spanned<RawAmd>) -> Option<Amd> {
        let raw = &amd.value;
        let on_machine = if raw.on_machine.value == "hangup" {
            None
        } else {
            Some(Jump {
                global: true,
                ..self.jump(&raw.on_machine, AMD_MACHINE_KEY, "`amd.on_machine` node")?
            })
        };
        let max_wait = self.duration(raw.max_wait.as_ref(), DEFAULT_AMD_MAX_WAIT, "max_wait");
        if max_wait > MAX_AMD_WAIT
            && let Some(at) = raw.max_wait.as_ref()
        {
            self.error(
                ErrorKind::InvalidDuration,
                pos(at),
                format!(
                    "`max_wait` of {} keeps a person waiting in silence",
                    at.value
                ),
            )
            .hint("at most 10s; 3s to 5s is usual");
        }
        let d = crate::media::amd::AmdConfig::default();
        let greeting = self.duration(raw.greeting.as_ref(), d.machine_speech, "greeting");
        let silence = self.duration(raw.silence.as_ref(), d.human_silence, "silence");
        if let (Some(g), true) = (raw.greeting.as_ref(), greeting >= max_wait) {
            self.error(
                ErrorKind::InvalidDuration,
                pos(g),
                "`greeting` must be shorter than `max_wait`",
            )
            .hint("a machine is recognised once its greeting has lasted `greeting`, which must happen before `max_wait`");
        }
        let max_greeting = self.duration(raw.max_greeting.as_ref(), d.max_greeting, "max_greeting");
        Some(Amd {
            on_machine,
            max_wait,
            greeting,
            silence,
            max_greeting,
            pos: pos(amd),
        })
    }
}
