//! The compiler's shared tools: diagnostics and where they point, names and their
//! "did you mean" hints, node targets and jumps, visible variables, `${…}` templates,
//! expressions, JSON bodies, durations, and the node-level keys every kind checks
//! (`next`, `on`, `else`, `with`).
//!
//! Deliberately not here: anything about one node kind (each has its own file) or about
//! declarations (`declare.rs`). These helpers report what is wrong and return `None`; they
//! never decide whether a node is left out — the caller does.

use std::collections::HashMap;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::Compiler;
use crate::scenario::error::{Diagnostic, ErrorKind};
use crate::scenario::raw::RawNode;
use crate::scenario::{
    Expr, JsonTemplate, Jump, NodeId, SourcePos, SubId, Template, VarType, parse_duration,
};

pub(super) fn pos<T>(s: &Spanned<T>) -> SourcePos {
    SourcePos::of(&s.referenced)
}

/// Node, intent and outcome names: `[A-Za-z0-9_][A-Za-z0-9_-]*`.
pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(super) fn is_dtmf_key(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// Edit distance for "did you mean" hints: insertions, deletions, substitutions and
/// swaps of two neighbouring letters (`sya` → `say`) each count 1.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `wanted`, if it is close enough to be a typo of it (a third
/// of the letters wrong at most, at least one right).
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(wanted, c), c))
        .filter(|(d, _)| *d <= 1.max(wanted.chars().count() / 3) && *d < wanted.chars().count())
        .min()
        .map(|(_, c)| c)
}

/// "did you mean `x`?" when a candidate is close, else a list of (up to 8) candidates.
pub(crate) fn suggest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> String {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    if let Some(c) = closest(wanted, candidates.iter().copied()) {
        return format!("did you mean `{c}`?");
    }
    if candidates.is_empty() {
        return format!("no {what} is declared");
    }
    let mut list: Vec<String> = candidates
        .iter()
        .take(8)
        .map(|c| format!("`{c}`"))
        .collect();
    if candidates.len() > 8 {
        list.push("…".to_string());
    }
    format!("known {what}s: {}", list.join(", "))
}

impl<'a> Compiler<'a> {
    pub(super) fn error(
        &mut self,
        kind: ErrorKind,
        at: SourcePos,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(kind, at, message));
        self.diags.last_mut().expect("just pushed")
    }

    /// The position of character `offset` inside the string scalar that starts at `at`:
    /// exact for one-line plain and quoted scalars, the scalar's start otherwise.
    pub(super) fn offset_pos(&self, at: SourcePos, value: &str, offset: usize) -> SourcePos {
        if value.contains('\n') {
            return at;
        }
        let Some(line) = self.lines.get(at.line.saturating_sub(1) as usize) else {
            return at;
        };
        let first = line.chars().nth(at.column.saturating_sub(1) as usize);
        let skip = u32::from(matches!(first, Some('"' | '\'')));
        let column = at
            .column
            .saturating_add(skip)
            .saturating_add(u32::try_from(offset).unwrap_or(0));
        SourcePos {
            line: at.line,
            column,
        }
    }

    /// Where `needle` first appears in the file at or after `from` (JSON bodies lose their
    /// positions in parsing; their strings are found again in the text for messages).
    pub(super) fn find_in_source(&self, from: SourcePos, needle: &str) -> Option<SourcePos> {
        if needle.is_empty() || needle.contains('\n') {
            return None;
        }
        let first = from.line.saturating_sub(1) as usize;
        for (i, line) in self.lines.iter().enumerate().skip(first) {
            let start = if i == first {
                line.char_indices()
                    .nth(from.column.saturating_sub(1) as usize)
                    .map_or(line.len(), |(b, _)| b)
            } else {
                0
            };
            if let Some(b) = line.get(start..).and_then(|rest| rest.find(needle)) {
                let column = line[..start + b].chars().count() + 1;
                return Some(SourcePos {
                    line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    column: u32::try_from(column).unwrap_or(u32::MAX),
                });
            }
        }
        None
    }

    pub(super) fn sub(&self) -> Option<SubId> {
        self.space.checked_sub(1)
    }

    /// A node name as messages show it: `yes_no.ask` inside a sub-dialogue.
    pub(super) fn qualify(&self, name: &str) -> String {
        match self.sub() {
            Some(s) => format!("{}.{name}", self.sub_names[s]),
            None => name.to_string(),
        }
    }

    /// The declared type of a variable visible in the current space.
    pub(super) fn lookup(&self, name: &str) -> Option<VarType> {
        self.sub()
            .and_then(|s| self.sub_params.get(s))
            .and_then(|p| p.get(name))
            .or_else(|| self.variables.get(name))
            .map(|v| v.ty)
    }

    pub(super) fn visible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.variables.keys().cloned().collect();
        if let Some(p) = self.sub().and_then(|s| self.sub_params.get(s)) {
            names.extend(p.keys().cloned());
        }
        names.sort();
        names
    }

    /// A target in the current name space.
    pub(super) fn target(&mut self, name: &Spanned<String>, what: &str) -> Option<NodeId> {
        if let Some(id) = self.spaces[self.space].ids.get(name.value.as_str()) {
            return Some(*id);
        }
        let candidates = self.spaces[self.space].names.clone();
        let hint = suggest(&name.value, candidates, "node");
        let scope = match self.sub() {
            Some(s) => format!("of sub-dialogue `{}`", self.sub_names[s]),
            None => "of this scenario".to_string(),
        };
        self.error(
            ErrorKind::UnknownTarget,
            pos(name),
            format!("{what} `{}` is not a node {scope}", name.value),
        )
        .hint(hint);
        None
    }

    pub(super) fn jump(&mut self, name: &Spanned<String>, key: &str, what: &str) -> Option<Jump> {
        self.target(name, what).map(|t| Jump::local(t, key))
    }

    pub(super) fn outcome(&mut self, outcome: &Spanned<String>) -> Option<String> {
        if is_identifier(&outcome.value) {
            Some(outcome.value.clone())
        } else {
            self.error(
                ErrorKind::InvalidName,
                pos(outcome),
                format!("outcome `{}` is not a valid name", outcome.value),
            )
            .hint("use letters, digits, `_` and `-`, e.g. `confirmed`");
            None
        }
    }

    /// A `${…}` template whose variables are all visible.
    pub(super) fn template_at(&mut self, text: &str, at: SourcePos) -> Option<Template> {
        let template = match Template::parse(text) {
            Ok(t) => t,
            Err(e) => {
                let at = self.offset_pos(at, text, e.offset);
                self.error(ErrorKind::Template, at, e.message)
                    .hint("write `${name}` for a variable, `$$` for a literal `$`");
                return None;
            }
        };
        let mut ok = true;
        let mut offset = 0usize;
        for var in template.variables().map(str::to_string).collect::<Vec<_>>() {
            // Point at this reference inside the string.
            let needle = format!("${{{var}");
            let found = text
                .match_indices(&needle)
                .map(|(i, _)| text[..i].chars().count())
                .find(|i| *i >= offset);
            if let Some(i) = found {
                offset = i + 1;
            }
            if self.lookup(&var).is_none() {
                ok = false;
                let names = self.visible_names();
                let hint = suggest(&var, names.iter().map(String::as_str), "variable");
                let at = self.offset_pos(at, text, found.unwrap_or(0));
                self.error(
                    ErrorKind::UndeclaredVariable,
                    at,
                    format!("`${{{var}}}` refers to an undeclared variable"),
                )
                .hint(format!("{hint}; declare variables under `variables:`"));
            }
        }
        ok.then_some(template)
    }

    pub(super) fn template(&mut self, text: &Spanned<String>) -> Option<Template> {
        self.template_at(&text.value, pos(text))
    }

    pub(super) fn expr(&mut self, text: &Spanned<String>) -> Option<Expr> {
        let lookup = |name: &str| self.lookup(name);
        match Expr::parse(&text.value, &lookup) {
            Ok(e) => Some(e),
            Err(e) => {
                let at = self.offset_pos(pos(text), &text.value, e.offset);
                let kind = if e.message.contains("is not a declared variable") {
                    ErrorKind::UndeclaredVariable
                } else {
                    ErrorKind::Expression
                };
                let d = self.error(kind, at, e.message);
                if let Some(h) = e.hint {
                    d.hint(h);
                }
                None
            }
        }
    }

    pub(super) fn json(
        &mut self,
        value: &serde_json::Value,
        at: SourcePos,
    ) -> Option<JsonTemplate> {
        Some(match value {
            serde_json::Value::String(s) => {
                let here = self.find_in_source(at, s).unwrap_or(at);
                let t = self.template_at(s, here)?;
                if t.is_literal() {
                    JsonTemplate::Literal(value.clone())
                } else {
                    JsonTemplate::String(t)
                }
            }
            serde_json::Value::Array(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.push(self.json(i, at)?);
                }
                JsonTemplate::Array(out)
            }
            serde_json::Value::Object(fields) => {
                let mut out = Vec::new();
                for (k, v) in fields {
                    out.push((k.clone(), self.json(v, at)?));
                }
                JsonTemplate::Object(out)
            }
            other => JsonTemplate::Literal(other.clone()),
        })
    }

    pub(super) fn duration_or(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
        key: &str,
        allow_zero: bool,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        match parse_duration(&value.value) {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(
                    ErrorKind::InvalidDuration,
                    pos(value),
                    format!("`{key}` must be longer than zero"),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(ErrorKind::InvalidDuration, pos(value), e)
                    .hint("write a number with a unit: `5s`, `500ms`, `1.5s`");
                default
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
        key: &str,
    ) -> Duration {
        self.duration_or(value, default, key, false)
    }

    /// A variable that receives a value (`store`, `set`): it must be declared and visible,
    /// and not one of the runtime's built-ins.
    pub(super) fn store_var(&mut self, var: &Spanned<String>, what: &str) -> Option<String> {
        if crate::scenario::builtins::is_builtin(&var.value) {
            self.error(
                ErrorKind::UndeclaredVariable,
                pos(var),
                format!(
                    "{what} `{}`, a built-in variable the runtime sets; it cannot be assigned",
                    var.value
                ),
            )
            .hint("store the value in a variable of your own (e.g. `sms_number`) and use that");
            return None;
        }
        if self.lookup(&var.value).is_some() {
            return Some(var.value.clone());
        }
        let names = self.visible_names();
        let hint = suggest(&var.value, names.iter().map(String::as_str), "variable");
        self.error(
            ErrorKind::UndeclaredVariable,
            pos(var),
            format!("{what} undeclared variable `{}`", var.value),
        )
        .hint(format!("{hint}; declare variables under `variables:`"));
        None
    }

    /// Node-level keys that do not belong to a node of `kind`.
    pub(super) fn check_keys(&mut self, node: &RawNode, kind: &str, allowed: &[&str]) {
        let keys: [(&str, Option<SourcePos>); 4] = [
            ("next", node.next.as_ref().map(pos)),
            ("on", node.on.as_ref().map(pos)),
            ("else", node.otherwise.as_ref().map(pos)),
            ("with", node.with.as_ref().map(pos)),
        ];
        for (key, at) in keys {
            if let Some(at) = at
                && !allowed.contains(&key)
            {
                let hint = match key {
                    "on" => {
                        "`on` belongs to `ask`, `record`, `webhook`, `transfer` and `call` nodes"
                            .to_string()
                    }
                    "else" => "`else` belongs to `branch` nodes".to_string(),
                    "with" => "`with` belongs to `call` nodes".to_string(),
                    _ => format!("a `{kind}` node names its targets itself"),
                };
                self.error(
                    ErrorKind::Misplaced,
                    at,
                    format!("`{key}` is not allowed on a `{kind}` node"),
                )
                .hint(hint);
            }
        }
    }

    pub(super) fn required_next(
        &mut self,
        name: &Spanned<String>,
        node: &RawNode,
        kind: &str,
    ) -> Option<Jump> {
        match &node.next {
            Some(next) => self.jump(next, "next", "`next` target"),
            None => {
                self.error(
                    ErrorKind::MissingHandler,
                    pos(name),
                    format!(
                        "`{kind}` node `{}` has no `next`",
                        self.qualify(&name.value)
                    ),
                )
                .hint("add `next: <node>`; to end the call go to a `hangup` node");
                None
            }
        }
    }

    /// The `on:` map of a node: each key must be one of `allowed`; returns key → target.
    pub(super) fn on_map(
        &mut self,
        node: &RawNode,
        allowed: &[&str],
        what: &str,
    ) -> HashMap<String, Option<NodeId>> {
        let mut out = HashMap::new();
        let Some(on) = &node.on else {
            return out;
        };
        for (key, target) in &on.value.0 {
            if !allowed.contains(&key.value.as_str()) {
                let hint = suggest(&key.value, allowed.iter().copied(), "`on` key");
                self.error(
                    ErrorKind::Misplaced,
                    pos(key),
                    format!("`on.{}` names no {what}", key.value),
                )
                .hint(hint);
                continue;
            }
            let id = self.target(target, &format!("`on.{}` target", key.value));
            out.insert(key.value.clone(), id);
        }
        out
    }

    /// `on.<key>`, else `next`, else a missing-handler error (`None` in the outer option
    /// means: already reported).
    pub(super) fn on_or_next(
        &mut self,
        on: &HashMap<String, Option<NodeId>>,
        next: Option<Option<NodeId>>,
        key: &str,
        at: SourcePos,
        message: impl FnOnce() -> (String, String),
    ) -> Option<Jump> {
        match on.get(key) {
            Some(Some(t)) => Some(Jump::local(*t, key)),
            Some(None) => None,
            None => match next {
                Some(Some(t)) => Some(Jump::local(t, "next")),
                Some(None) => None,
                None => {
                    let (msg, hint) = message();
                    self.error(ErrorKind::MissingHandler, at, msg).hint(hint);
                    None
                }
            },
        }
    }
}
