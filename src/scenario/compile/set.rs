//! `set` nodes: assignments of templates or expressions to declared variables, literals
//! checked against the variable's type (and `language` against `languages`), then `next`.
//!
//! Deliberately not here: evaluating anything (`dialogue`).

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{Named, RawNode, RawSetValue};
use crate::scenario::{Assign, NodeKind, VarType};

impl<'a> Compiler<'a> {
    pub(super) fn set(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let assign = self.assignments(node.set.as_ref()?);
        let next = self.required_next(name, node, "set");
        Some(NodeKind::Set {
            assign: assign?,
            next: next?,
        })
    }

    /// The assignments; `None` when any of them was reported.
    fn assignments(
        &mut self,
        assign: &Spanned<Named<RawSetValue>>,
    ) -> Option<Vec<(String, Assign)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (var, value) in &assign.value.0 {
            if crate::scenario::builtins::is_builtin(&var.value) {
                // Reported there: the runtime's numbers are not the scenario's to change.
                self.store_var(var, "`set` assigns");
                ok = false;
                continue;
            }
            let Some(ty) = self.lookup(&var.value) else {
                self.store_var(var, "`set` assigns");
                ok = false;
                continue;
            };
            match &value.value {
                RawSetValue::Text(text) => {
                    let Some(template) = self.template_at(text, pos(value)) else {
                        ok = false;
                        continue;
                    };
                    if let Some(lit) = template.as_literal() {
                        if let Err(e) = ty.check(&lit) {
                            let kind = if ty == VarType::Digits {
                                ErrorKind::InvalidDigits
                            } else {
                                ErrorKind::InvalidValue
                            };
                            self.error(
                                kind,
                                pos(value),
                                format!("`{}` is declared `{}`: {e}", var.value, ty.name()),
                            );
                            ok = false;
                            continue;
                        }
                        if var.value == "language" && !self.languages.contains(&lit) {
                            let langs = self.languages.join(", ");
                            self.error(
                                ErrorKind::InvalidValue,
                                pos(value),
                                format!("language `{lit}` is not in `languages`"),
                            )
                            .hint(format!("languages: [{}]", langs));
                            ok = false;
                            continue;
                        }
                    }
                    out.push((var.value.clone(), Assign::Template(template)));
                }
                RawSetValue::Expr(e) => match self.expr(&e.expr) {
                    Some(expr) => out.push((var.value.clone(), Assign::Expr(expr))),
                    None => ok = false,
                },
            }
        }
        ok.then_some(out)
    }
}
