//! Checks over the whole compiled scenario, after every node has been compiled: sub-dialogues
//! that call each other in a cycle, loops of nodes that never wait, and the transfer
//! allow-list (the targets written in the file plus `allow.transfer`).
//!
//! Deliberately not here: reachability, dead ends and loops without exit — those are
//! warnings about the graph and belong to the linter.

use std::collections::BTreeMap;

use super::Compiler;
use super::core::pos;
use crate::scenario::allow::{TargetPattern, TransferAllow};
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawScenario;
use crate::scenario::{Node, NodeId, NodeKind, SourcePos, SubId};

impl<'a> Compiler<'a> {
    /// The scenario's transfer allow-list: targets written in the file (rendered with the
    /// declared defaults), and `allow.transfer` patterns.
    pub(super) fn transfer_allow(&mut self, raw: &RawScenario, nodes: &[Node]) -> TransferAllow {
        let defaults: BTreeMap<String, String> = self
            .variables
            .iter()
            .map(|(n, v)| (n.clone(), v.default.clone()))
            .collect();
        let mut allow = TransferAllow::default();
        for node in nodes {
            if let NodeKind::Transfer(t) = &node.kind {
                let target = t.target.render(&defaults);
                if !target.trim().is_empty() {
                    allow.exact.insert(target.trim().to_owned());
                }
            }
        }
        let patterns = raw.allow.as_ref().and_then(|a| a.value.transfer.as_ref());
        for p in patterns.map(|p| p.value.as_slice()).unwrap_or_default() {
            match TargetPattern::parse(&p.value) {
                Ok(pattern) => allow.patterns.push(pattern),
                Err(e) => {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(p),
                        format!("allow.transfer: {e}"),
                    )
                    .hint("e.g. `\"sip:*@pbx.shop.example\"` or `\"+7495*\"`");
                }
            }
        }
        allow
    }

    /// Reports sub-dialogues that call each other in a cycle.
    pub(super) fn recursion(&mut self) {
        let n = self.sub_names.len();
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut mark = vec![0u8; n];
        fn visit(
            s: usize,
            calls: &[Vec<(SubId, SourcePos)>],
            mark: &mut [u8],
            found: &mut Vec<(usize, SourcePos)>,
        ) {
            mark[s] = 1;
            for &(callee, at) in &calls[s + 1] {
                match mark[callee] {
                    0 => visit(callee, calls, mark, found),
                    1 => found.push((callee, at)),
                    _ => {}
                }
            }
            mark[s] = 2;
        }
        let mut found = Vec::new();
        for s in 0..n {
            if mark[s] == 0 {
                visit(s, &self.calls, &mut mark, &mut found);
            }
        }
        for (callee, at) in found {
            self.error(
                ErrorKind::Recursion,
                at,
                format!(
                    "sub-dialogue `{}` is called recursively",
                    self.sub_names[callee]
                ),
            )
            .hint("sub-dialogues may call others, but not themselves (directly or through others)");
        }
    }

    /// Reports cycles made only of nodes that never wait (`set`, `goto`, `notify`, `sms`):
    /// entering one would spin forever without playing anything or waiting for the caller.
    pub(super) fn zero_time_loops(&mut self, nodes: &[Node]) {
        let zero_time_next = |id: NodeId| -> Option<NodeId> {
            match &nodes.get(id.index())?.kind {
                NodeKind::Set { next, .. } | NodeKind::Notify { next, .. } => Some(next.target),
                NodeKind::Goto { target } => Some(target.target),
                _ => None,
            }
        };
        // 0 = unvisited, 1 = on the current walk, 2 = done.
        let mut mark = vec![0u8; nodes.len()];
        for start in 0..nodes.len() {
            let mut walk = Vec::new();
            let mut cur = NodeId(u32::try_from(start).unwrap_or(u32::MAX));
            loop {
                match mark.get(cur.index()) {
                    Some(0) => {}
                    Some(1) => {
                        let from = walk.iter().position(|id| *id == cur).unwrap_or(0);
                        let cycle: Vec<&str> = walk[from..]
                            .iter()
                            .chain([&cur])
                            .map(|id: &NodeId| nodes[id.index()].qualified.as_str())
                            .collect();
                        let first = &nodes[cur.index()];
                        self.error(
                            ErrorKind::ZeroTimeLoop,
                            first.pos,
                            format!(
                                "nodes {} loop forever without playing or asking anything",
                                cycle
                                    .iter()
                                    .map(|n| format!("`{n}`"))
                                    .collect::<Vec<_>>()
                                    .join(" → ")
                            ),
                        )
                        .hint("put a `play` or `ask` node on the loop, or leave it");
                        break;
                    }
                    _ => break,
                }
                mark[cur.index()] = 1;
                walk.push(cur);
                match zero_time_next(cur) {
                    Some(next) => cur = next,
                    None => break,
                }
            }
            for id in walk {
                mark[id.index()] = 2;
            }
        }
    }
}
