//! `sms` and `notify` nodes: fire-and-forget CRM events (`sms` is `sms.requested` with a
//! template name, a recipient — `${customer}`, the other party, unless `to:` says — and
//! data), then `next` at once.
//!
//! Deliberately not here: delivering events (`crm`), or warning about events the CRM
//! integration does not document (the linter uses [`KNOWN_EVENTS`]).

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::{is_identifier, pos};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{RawNode, RawScenario};
use crate::scenario::{JsonTemplate, NodeKind, SourcePos};

/// Events the CRM integration documents; others are allowed but linted.
pub(crate) const KNOWN_EVENTS: [&str; 3] = ["sms.requested", "dnc.requested", "callback.requested"];

fn is_event_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

impl<'a> Compiler<'a> {
    /// `events:` — the scenario's own event names: well-formed, each once.
    pub(super) fn declared_events(&mut self, raw: &RawScenario) -> Vec<(String, SourcePos)> {
        let mut out: Vec<(String, SourcePos)> = Vec::new();
        for e in raw.events.iter().flat_map(|l| l.value.iter()) {
            if !is_event_name(&e.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(e),
                    format!("`{}` is not an event name", e.value),
                )
                .hint("dotted lower-case words, e.g. `survey.complaint`");
            } else if out.iter().any(|(n, _)| *n == e.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(e),
                    format!("event `{}` is declared twice", e.value),
                );
            } else {
                out.push((e.value.clone(), pos(e)));
            }
        }
        out
    }

    pub(super) fn notify(
        &mut self,
        name: &Spanned<String>,
        node: &RawNode,
        kind: &str,
    ) -> Option<NodeKind> {
        let next = self.required_next(name, node, kind);
        if kind == "sms" {
            let raw = &node.sms.as_ref()?.value;
            if !is_identifier(&raw.template.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(&raw.template),
                    format!("SMS template `{}` is not a valid name", raw.template.value),
                )
                .hint("the name of a text template the CRM knows, e.g. `order-confirmed`");
            }
            let mut fields = vec![(
                "template".to_string(),
                JsonTemplate::Literal(serde_json::Value::String(raw.template.value.clone())),
            )];
            let to = match &raw.to {
                Some(to) => self.template(to)?,
                None => {
                    let customer = format!("${{{}}}", crate::scenario::builtins::CUSTOMER);
                    self.template_at(&customer, pos(&raw.template))?
                }
            };
            fields.push(("to".to_string(), JsonTemplate::String(to)));
            let data = match &raw.data {
                Some(d) => self.json(&d.value, pos(d))?,
                None => JsonTemplate::Literal(serde_json::Value::Object(Default::default())),
            };
            fields.push(("data".to_string(), data));
            return Some(NodeKind::Notify {
                written_as: "sms",
                event: "sms.requested".to_string(),
                data: JsonTemplate::Object(fields),
                next: next?,
            });
        }
        let raw = &node.notify.as_ref()?.value;
        if !is_event_name(&raw.event.value) {
            self.error(
                ErrorKind::InvalidName,
                pos(&raw.event),
                format!("`{}` is not an event name", raw.event.value),
            )
            .hint(format!(
                "dotted lower-case words, e.g. {}",
                KNOWN_EVENTS.join(", ")
            ));
            return None;
        }
        let data = match &raw.data {
            Some(d) => self.json(&d.value, pos(d))?,
            None => JsonTemplate::Literal(serde_json::Value::Object(Default::default())),
        };
        Some(NodeKind::Notify {
            written_as: "notify",
            event: raw.event.value.clone(),
            data,
            next: next?,
        })
    }
}
