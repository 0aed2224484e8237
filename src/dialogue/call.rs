//! `call` and `return` nodes: sub-dialogues on a call stack. A call pushes a [`Frame`]
//! that saves the variables its parameters shadow, sets the parameters, and enters the
//! sub-dialogue's start; `return` pops it, restores what was shadowed, and takes the
//! calling node's jump for the returned value. A global jump, or the end of the call,
//! unwinds every frame.
//!
//! Deliberately not here: recursion (the compiler rejects it; [`MAX_CALL_DEPTH`] guards
//! the stack anyway).

use std::time::Instant;

use super::{Dialogue, EdgeId, Next};
use crate::scenario::{MAX_CALL_DEPTH, Node, NodeId, NodeKind, SubId, Template};

/// A running sub-dialogue.
#[derive(Debug)]
pub(super) struct Frame {
    call: NodeId,
    /// Variables its parameters shadow, with their values before the call.
    saved: Vec<(String, Option<String>)>,
    /// Path prefix of its nodes (`quality/`).
    prefix: String,
}

impl Dialogue {
    pub(super) fn enter_call(
        &mut self,
        now: Instant,
        id: NodeId,
        node: &Node,
        sub: SubId,
        args: &[(String, Template)],
    ) -> Next {
        let scenario = self.scenario.clone();
        let Some(def) = scenario.subdialogs.get(sub) else {
            self.fail(now, "call of a sub-dialogue that does not exist");
            return None;
        };
        if self.frames.len() >= MAX_CALL_DEPTH {
            self.fail(
                now,
                &format!("sub-dialogue calls nested deeper than {MAX_CALL_DEPTH}"),
            );
            return None;
        }
        let values: Vec<(String, String)> = def
            .params
            .values()
            .map(|p| {
                let v = args.iter().find(|(n, _)| *n == p.name).map_or_else(
                    || p.default.clone(),
                    |(_, t)| t.render(&self.result.variables),
                );
                (p.name.clone(), v)
            })
            .collect();
        let saved = values
            .iter()
            .map(|(n, _)| (n.clone(), self.result.variables.get(n).cloned()))
            .collect();
        let parent = self.frames.last().map_or("", |f| f.prefix.as_str());
        let prefix = format!("{parent}{}/", node.name);
        self.frames.push(Frame {
            call: id,
            saved,
            prefix,
        });
        for (n, v) in values {
            self.set_var(now, &n, v);
        }
        Some((
            def.start,
            Some(EdgeId {
                from: Some(id),
                key: "call".to_string(),
            }),
        ))
    }

    pub(super) fn enter_return(&mut self, now: Instant, value: &str) -> Next {
        let Some(frame) = self.frames.pop() else {
            self.fail(now, "`return` outside a sub-dialogue");
            return None;
        };
        let call = frame.call;
        self.restore(frame);
        let scenario = self.scenario.clone();
        let jump = match scenario.node(call).map(|n| &n.kind) {
            Some(NodeKind::Call { returns, .. }) => {
                returns.iter().find(|(v, _)| v == value).map(|(_, j)| j)
            }
            _ => None,
        };
        let Some(jump) = jump else {
            self.fail(now, &format!("no target for return value `{value}`"));
            return None;
        };
        Some((
            jump.target,
            Some(EdgeId {
                from: Some(call),
                key: jump.key.clone(),
            }),
        ))
    }

    /// Ends every running sub-dialogue, restoring the variables its parameters shadowed.
    /// The node's name in the path and in answers: qualified by the calls it runs in
    /// (`quality/ask` for node `ask` of a sub-dialogue called from node `quality`).
    pub(super) fn path_name(&self, node: &Node) -> String {
        match self.frames.last() {
            Some(frame) => format!("{}{}", frame.prefix, node.name),
            None => node.qualified.clone(),
        }
    }

    pub(super) fn unwind(&mut self) {
        while let Some(frame) = self.frames.pop() {
            self.restore(frame);
        }
    }

    fn restore(&mut self, frame: Frame) {
        for (name, old) in frame.saved {
            match old {
                Some(v) => self.result.variables.insert(name, v),
                None => self.result.variables.remove(&name),
            };
        }
    }
}
