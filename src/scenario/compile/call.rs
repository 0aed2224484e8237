//! `call` and `return` nodes: running a sub-dialogue with its parameters and handling each
//! value its `return` nodes give (or `next` for all); ending a sub-dialogue with a value.
//!
//! Deliberately not here: recursion between sub-dialogues (`checks.rs`, once every call is
//! known), or the call stack at run time (`dialogue`).

use std::collections::BTreeSet;

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::{is_identifier, pos, suggest};
use crate::scenario::NodeKind;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::RawNode;

impl<'a> Compiler<'a> {
    pub(super) fn call(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let callee = node.call.as_ref()?;
        let Some(sub) = self.sub_names.iter().position(|s| *s == callee.value) else {
            let hint = suggest(&callee.value, self.sub_names.clone(), "sub-dialogue");
            self.error(
                ErrorKind::UnknownTarget,
                pos(callee),
                format!("`{}` is not a sub-dialogue of this scenario", callee.value),
            )
            .hint(format!("{hint}; declare it under `subdialogs:`"));
            return None;
        };
        self.calls[self.space].push((sub, pos(callee)));
        let mut args = Vec::new();
        let mut ok = true;
        let mut passed = BTreeSet::new();
        if let Some(with) = &node.with {
            for (param, value) in &with.value.0 {
                let Some(decl) = self.sub_params[sub].get(&param.value).cloned() else {
                    let names: Vec<String> = self.sub_params[sub].keys().cloned().collect();
                    let hint = suggest(&param.value, names.iter().map(String::as_str), "parameter");
                    self.error(
                        ErrorKind::Misplaced,
                        pos(param),
                        format!(
                            "`{}` is not a parameter of sub-dialogue `{}`",
                            param.value, callee.value
                        ),
                    )
                    .hint(hint);
                    ok = false;
                    continue;
                };
                passed.insert(param.value.clone());
                let Some(t) = self.template_at(&value.value.0, pos(value)) else {
                    ok = false;
                    continue;
                };
                if let Some(lit) = t.as_literal()
                    && let Err(e) = decl.ty.check(&lit)
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(value),
                        format!("parameter `{}` is {}: {e}", param.value, decl.ty.name()),
                    );
                    ok = false;
                    continue;
                }
                args.push((param.value.clone(), t));
            }
        }
        for required in self.sub_required[sub].clone() {
            if !passed.contains(&required) {
                let at = node.with.as_ref().map_or(pos(callee), pos);
                self.error(
                    ErrorKind::MissingHandler,
                    at,
                    format!(
                        "call of `{}` does not pass parameter `{required}`",
                        callee.value
                    ),
                )
                .hint(format!(
                    "add `with: {{ {required}: … }}`, or give the parameter a `default`"
                ));
                ok = false;
            }
        }
        let returns_of_sub = self.sub_returns[sub].clone();
        let allowed: Vec<&str> = returns_of_sub.iter().map(String::as_str).collect();
        let on = self.on_map(
            node,
            &allowed,
            &format!("return value of `{}`", callee.value),
        );
        let next = node.next.as_ref().map(|n| self.target(n, "`next` target"));
        if returns_of_sub.is_empty()
            && let Some(n) = &node.next
        {
            self.error(
                ErrorKind::Misplaced,
                pos(n),
                format!("sub-dialogue `{}` never returns", callee.value),
            )
            .hint("it has no `return` node: the call ends there; remove `next`");
            ok = false;
        }
        let mut returns = Vec::new();
        for value in &returns_of_sub {
            match self.on_or_next(&on, next, value, pos(name), || {
                (
                    format!(
                        "`call` node `{}` does not handle return value `{value}` of `{}`",
                        name.value, callee.value
                    ),
                    format!("add `{value}: <node>` under `on:`, or a `next:` for every value"),
                )
            }) {
                Some(j) => returns.push((value.clone(), j)),
                None => ok = false,
            }
        }
        ok.then_some(NodeKind::Call { sub, args, returns })
    }

    /// A `return` node (inside a sub-dialogue only).
    pub(super) fn ret(&mut self, node: &RawNode) -> Option<NodeKind> {
        let value = node.ret.as_ref()?;
        if self.sub().is_none() {
            self.error(
                ErrorKind::Misplaced,
                pos(value),
                "`return` outside a sub-dialogue",
            )
            .hint("the main dialogue ends with `hangup`; `return` ends a sub-dialogue");
            return None;
        }
        if !is_identifier(&value.value) || value.value == "call" {
            self.error(
                ErrorKind::InvalidName,
                pos(value),
                format!("return value `{}` is not a valid name", value.value),
            )
            .hint("use letters, digits, `_` and `-`, e.g. `yes`");
            return None;
        }
        Some(NodeKind::Return {
            value: value.value.clone(),
        })
    }
}
