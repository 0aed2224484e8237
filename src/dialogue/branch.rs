//! `branch` and `switch` nodes: choose a jump from the call's variables (the first `if:`
//! that holds, else `else`; the case equal to the value, else `default`) and take it at
//! once. `goto` needs no code of its own (the dispatch in `mod.rs` takes its jump).
//!
//! Deliberately not here: parsing or type-checking expressions (`scenario::expr`).

use super::{Dialogue, Next, local};
use crate::scenario::{Expr, Jump, NodeId};

impl Dialogue {
    pub(super) fn enter_branch(
        &mut self,
        id: NodeId,
        arms: &[(Expr, Jump)],
        otherwise: &Jump,
    ) -> Next {
        let vars = &self.result.variables;
        let chosen = arms
            .iter()
            .find(|(cond, _)| cond.is_true(vars))
            .map_or(otherwise, |(_, j)| j);
        local(id, chosen)
    }

    pub(super) fn enter_switch(
        &mut self,
        id: NodeId,
        value: &Expr,
        cases: &[(String, Jump)],
        default: &Jump,
    ) -> Next {
        let v = value.eval(&self.result.variables).to_string();
        let chosen = cases
            .iter()
            .find(|(case, _)| *case == v)
            .map_or(default, |(_, j)| j);
        local(id, chosen)
    }
}
