//! `webhook` nodes: URL (or the configured CRM webhook), method, JSON body with `${…}`
//! templates, timeout, response fields stored in variables, `next` and the required
//! `on.error`.
//!
//! Deliberately not here: sending anything (`rt::http`), or checking that a URL is
//! reachable.

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{RawNode, RawWebhook};
use crate::scenario::{DEFAULT_WEBHOOK_TIMEOUT, JsonTemplate, Jump, NodeKind, Webhook};

impl<'a> Compiler<'a> {
    pub(super) fn webhook(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let raw = &node.webhook.as_ref()?.value;
        let url = match &raw.url {
            Some(u) => {
                let t = self.template(u)?;
                if let Some(lit) = t.as_literal()
                    && !(lit.starts_with("http://") || lit.starts_with("https://"))
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(u),
                        format!("`{lit}` is not an http(s) URL"),
                    )
                    .hint("leave `url` out to use the configured CRM webhook");
                }
                Some(t)
            }
            None => None,
        };
        let method = match &raw.method {
            Some(m) => {
                let upper = m.value.to_ascii_uppercase();
                if upper != "GET" && upper != "POST" {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(m),
                        format!("method `{}` is not GET or POST", m.value),
                    );
                }
                upper
            }
            None => "POST".to_string(),
        };
        let body = match &raw.body {
            Some(b) => self.json(&b.value, pos(b))?,
            None => JsonTemplate::Literal(serde_json::Value::Object(Default::default())),
        };
        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_WEBHOOK_TIMEOUT, "timeout");
        let mut store = Vec::new();
        if let Some(s) = &raw.store {
            for (var, path) in &s.value.0 {
                let Some(var) = self.store_var(var, "`store` names") else {
                    continue;
                };
                if path.value.is_empty() || path.value.split('.').any(str::is_empty) {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(path),
                        format!("`{}` is not a response field path", path.value),
                    )
                    .hint("write a dotted path into the JSON response, e.g. `order.status` or `items.0.name`");
                    continue;
                }
                store.push((var, path.value.clone()));
            }
        }
        let on = self.on_map(node, &["error"], "webhook result (only `error`)");
        let next = self.required_next(name, node, "webhook");
        let error = match on.get("error") {
            Some(Some(t)) => Some(Jump::local(*t, "error")),
            Some(None) => None,
            None => {
                self.error(
                    ErrorKind::MissingHandler,
                    pos(name),
                    format!(
                        "`webhook` node `{}` does not handle `error`",
                        self.qualify(&name.value)
                    ),
                )
                .hint(
                    "add `on: { error: <node> }` — where to go when the request fails or times out",
                );
                None
            }
        };
        Some(NodeKind::Webhook(Box::new(Webhook {
            name: raw.webhook_name(),
            url,
            method,
            body,
            timeout,
            store,
            next: next?,
            error: error?,
        })))
    }
}

impl RawWebhook {
    fn webhook_name(&self) -> Option<String> {
        self.name.as_ref().map(|n| n.value.clone())
    }
}
