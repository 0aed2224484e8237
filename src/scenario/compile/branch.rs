//! The nodes that decide at once where to go: `goto` (always the same node), `branch` (the
//! first `if:` that holds, else `else`) and `switch` (the case equal to the value, else
//! `default`).
//!
//! Deliberately not here: type-checking the conditions (that is `scenario::expr`, reached
//! through `core.rs`), or loops of such nodes (`checks.rs`).

use std::collections::BTreeSet;

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::NodeKind;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawNode;

impl<'a> Compiler<'a> {
    pub(super) fn goto(&mut self, node: &RawNode) -> Option<NodeKind> {
        let target = self.jump(node.goto.as_ref()?, "goto", "goto target")?;
        Some(NodeKind::Goto { target })
    }

    pub(super) fn branch(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let arms_raw = node.branch.as_ref()?;
        if arms_raw.value.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(arms_raw),
                "`branch` has no conditions",
            )
            .hint("e.g. `branch: [{ if: 'total > 1000', goto: vip }]` with `else: normal`");
        }
        let mut arms = Vec::new();
        let mut ok = true;
        for (i, arm) in arms_raw.value.iter().enumerate() {
            let cond = self.expr(&arm.value.cond);
            let jump = self.jump(&arm.value.goto, &format!("if.{}", i + 1), "`goto` target");
            match (cond, jump) {
                (Some(c), Some(j)) => arms.push((c, j)),
                _ => ok = false,
            }
        }
        let otherwise = match &node.otherwise {
            Some(e) => self.jump(e, "else", "`else` target"),
            None => {
                self.error(
                    ErrorKind::MissingHandler,
                    pos(name),
                    format!(
                        "`branch` node `{}` has no `else`",
                        self.qualify(&name.value)
                    ),
                )
                .hint("add `else: <node>`: where to go when no condition holds");
                None
            }
        };
        if !ok {
            return None;
        }
        Some(NodeKind::Branch {
            arms,
            otherwise: otherwise?,
        })
    }

    pub(super) fn switch(&mut self, node: &RawNode) -> Option<NodeKind> {
        let sw = node.switch.as_ref()?;
        let value = self.expr(&sw.value.value);
        let mut cases = Vec::new();
        let mut ok = true;
        let mut seen = BTreeSet::new();
        for (case, target) in &sw.value.cases.value.0 {
            if !seen.insert(case.value.0.clone()) {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(case),
                    format!("case `{}` is listed twice", case.value.0),
                );
                ok = false;
                continue;
            }
            match self.jump(target, &format!("case.{}", case.value.0), "case target") {
                Some(j) => cases.push((case.value.0.clone(), j)),
                None => ok = false,
            }
        }
        let default = self.jump(&sw.value.default, "default", "`default` target");
        if !ok {
            return None;
        }
        Some(NodeKind::Switch {
            value: value?,
            cases,
            default: default?,
        })
    }
}
