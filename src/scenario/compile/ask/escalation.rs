//! No-input and no-match of an `ask`: where each goes once its retries run out — the node's
//! `on.noinput` / `on.nomatch`, else `global.on`'s — and the count-based escalation block
//! (`max`, `reprompt` lists, whether the question is replayed), the node's own or, when it
//! has none, the one declared with the global handler it falls back to.
//!
//! Deliberately not here: counting events during a call (`dialogue`).

use serde_saphyr::Spanned;

use super::AskContext;
use crate::scenario::compile::core::pos;
use crate::scenario::compile::{Compiler, NOINPUT, NOMATCH};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawEscalation;
use crate::scenario::{DEFAULT_MAX_RETRIES, Escalation, Jump};

impl<'a> Compiler<'a> {
    /// The no-input and no-match escalations (`None`: reported).
    pub(super) fn escalations(
        &mut self,
        cx: &AskContext<'_>,
    ) -> (Option<Escalation>, Option<Escalation>) {
        let raw = &cx.ask.value;
        let (noinput_target, noinput_global) = self.handler(cx, NOINPUT);
        let (nomatch_target, nomatch_global) = self.handler(cx, NOMATCH);
        let noinput = self.escalation(raw.noinput.as_ref().or(noinput_global), noinput_target);
        let nomatch = self.escalation(raw.nomatch.as_ref().or(nomatch_global), nomatch_target);
        (noinput, nomatch)
    }

    /// The target of `key` (`noinput` or `nomatch`): the node's own, else the global one
    /// with its escalation block; a missing-handler error when there is neither.
    fn handler(
        &mut self,
        cx: &AskContext<'_>,
        key: &str,
    ) -> (Option<Jump>, Option<&'a Spanned<RawEscalation>>) {
        if let Some(t) = cx.on.get(key) {
            return (t.map(|t| Jump::local(t, key)), None);
        }
        let global = if key == NOINPUT {
            self.global_noinput.clone()
        } else {
            self.global_nomatch.clone()
        };
        match global {
            Some((j, block)) => (Some(j), block),
            None => {
                let at = cx.node.on.as_ref().map_or(pos(cx.name), pos);
                self.error(
                    ErrorKind::MissingHandler,
                    at,
                    format!("`ask` node `{}` does not handle `{key}`", cx.qualified),
                )
                .hint(format!(
                    "add `{key}: <node>` under `on:` — where to go when the retries run out"
                ));
                (None, None)
            }
        }
    }

    fn escalation(
        &mut self,
        raw: Option<&Spanned<RawEscalation>>,
        target: Option<Jump>,
    ) -> Option<Escalation> {
        let max = raw.and_then(|r| r.value.max).unwrap_or(DEFAULT_MAX_RETRIES);
        let reprompts = raw
            .and_then(|r| r.value.reprompt.as_ref())
            .map(|lists| lists.iter().map(|l| self.prompts(l)).collect())
            .unwrap_or_default();
        let question = raw.and_then(|r| r.value.question).unwrap_or(true);
        Some(Escalation {
            max,
            reprompts,
            question,
            target: target?,
        })
    }
}
