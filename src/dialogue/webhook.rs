//! `webhook` nodes: [`Action::Webhook`] with the URL and body rendered from the call's
//! variables; a response stores the fields the node names and takes `next`, a failure or
//! the node's timeout takes `on.error`. A result after the timeout is ignored.
//!
//! Deliberately not here: HTTP (the runtime carries the request out).

use std::sync::Arc;
use std::time::Instant;

use super::{Action, Dialogue, JournalEvent, Next, State, Timer, Wait, WebhookRequest};
use crate::scenario::{NodeId, NodeKind, Webhook};

/// A response field by dotted path (`order.status`, `items.0.name`).
fn json_path<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut cur = value;
    for seg in path.split('.') {
        cur = match cur {
            serde_json::Value::Object(map) => map.get(seg)?,
            serde_json::Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn json_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

impl Dialogue {
    pub(super) fn enter_webhook(&mut self, now: Instant, id: NodeId, w: &Webhook) -> Next {
        let vars = &self.result.variables;
        let request = WebhookRequest {
            name: w.name.clone(),
            url: w.url.as_ref().map(|u| u.render(vars)),
            method: w.method.clone(),
            body: w.body.render(vars),
            timeout: w.timeout,
        };
        let wid = self.next_id();
        self.actions.push_back(Action::Webhook { id: wid, request });
        let deadline = self.arm(now, Timer::Webhook, w.timeout);
        self.state = State::Waiting {
            node: id,
            wait: Wait::Webhook,
            id: wid,
            deadline,
        };
        None
    }

    pub(super) fn on_webhook(
        &mut self,
        now: Instant,
        id: u64,
        result: Result<serde_json::Value, String>,
    ) {
        let Some(node) = self.waiting_for(Wait::Webhook, id) else {
            self.note(
                now,
                JournalEvent::Ignored {
                    what: format!("webhook result {id} after its node's timeout"),
                },
            );
            return;
        };
        let scenario = Arc::clone(&self.scenario);
        let Some(NodeKind::Webhook(w)) = scenario.node(node).map(|n| &n.kind) else {
            return;
        };
        match result {
            Ok(body) => {
                self.note(
                    now,
                    JournalEvent::Result {
                        what: "webhook ok".to_string(),
                    },
                );
                for (var, path) in &w.store {
                    match json_path(&body, path) {
                        Some(v) => self.set_var(now, var, json_text(v)),
                        None => tracing::warn!(
                            node = %scenario.node_name(node),
                            field = %path,
                            "webhook response has no such field; variable unchanged"
                        ),
                    }
                }
                self.take(now, node, &w.next);
            }
            Err(e) => {
                self.note(
                    now,
                    JournalEvent::Result {
                        what: format!("webhook failed: {e}"),
                    },
                );
                self.take(now, node, &w.error);
            }
        }
    }
}
