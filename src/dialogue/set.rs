//! `set` nodes: assign each variable (a template rendered, or an expression evaluated
//! with the call's variables), then go to `next` at once.
//!
//! Deliberately not here: type checks (the compiler checks literals; call-time values are
//! strings, checked where they are used).

use std::time::Instant;

use super::{Dialogue, Next, local};
use crate::scenario::{Assign, Jump, NodeId};

impl Dialogue {
    pub(super) fn enter_set(
        &mut self,
        now: Instant,
        id: NodeId,
        assign: &[(String, Assign)],
        next: &Jump,
    ) -> Next {
        for (var, value) in assign {
            let value = match value {
                Assign::Template(t) => t.render(&self.result.variables),
                Assign::Expr(e) => e.eval(&self.result.variables).to_string(),
            };
            self.set_var(now, var, value);
        }
        local(id, next)
    }
}
