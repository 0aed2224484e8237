//! A small, safe expression language for `branch`, `switch`, `set` and `when`.
//!
//! ```text
//! expr    := or
//! or      := and  (("or" | "||") and)*
//! and     := not  (("and" | "&&") not)*
//! not     := ("not" | "!") not | cmp
//! cmp     := sum  (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)?
//! sum     := unary (("+" | "-") unary)*
//! unary   := "-" unary | primary
//! primary := number | 'string' | "string" | true | false | variable | "(" expr ")"
//! ```
//!
//! Values are strings, numbers (f64) or booleans. A variable's value (always a string at
//! run time) is read as the type it is declared with: `integer`, `number`, `money` as
//! numbers, `boolean` as a boolean (`true`/`yes`/`1`), everything else as a string — so
//! ISO dates and `HH:MM` times compare correctly as strings. Conditions use truthiness:
//! `false`, `0`, `""` are false. `x == ''` and `x != ''` test whether the call gave `x` a
//! value, whatever `x`'s type (so `total != ''` works for a `money` variable).
//!
//! Parsing checks what can be checked before a call: syntax, that every variable is
//! declared, and operand types that can never work (`"abc" < 3`, `true + 1`). Errors carry
//! the character offset in the source so the loader can point at `file:line:col`.
//! Evaluation never fails: a value that does not parse as its declared type evaluates as
//! NaN (comparisons with it are false) and is logged.
//!
//! Deliberately not here: function calls, string operations, assignment, loops — no
//! `eval` of anything but this grammar. Templates (`${var}`) do string building.

use std::collections::BTreeMap;
use std::fmt;

use super::VarType;

/// Deepest nesting accepted (parentheses, `not`, unary minus).
const MAX_DEPTH: usize = 64;

/// A run-time value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    Bool(bool),
}

impl Value {
    /// Truthiness: `false`, `0`, NaN and `""` are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0 && !n.is_nan(),
            Value::Str(s) => !s.is_empty(),
        }
    }
}

impl fmt::Display for Value {
    /// Whole numbers print without a fraction (`3`, not `3.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Num(n) if n.fract() == 0.0 && n.abs() < 1e15 => write!(f, "{}", *n as i64),
            Value::Num(n) if n.is_nan() => f.write_str(""),
            Value::Num(n) => write!(f, "{n}"),
        }
    }
}

/// Why an expression did not parse; `offset` is in characters from the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl ExprError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        ExprError {
            offset,
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Str,
    Num,
    Bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Lit(Value),
    Var {
        name: String,
        ty: Ty,
    },
    /// `x == ''` / `x != ''`: whether the call gave the variable a value, whatever its type.
    Empty {
        name: String,
        negate: bool,
    },
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
    Add(Box<Node>, Box<Node>),
    Sub(Box<Node>, Box<Node>),
    Neg(Box<Node>),
}

/// A parsed, type-checked expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    source: String,
    root: Node,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
}

fn tokenize(text: &str) -> Result<Vec<(usize, Tok)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            let n: f64 = s
                .parse()
                .map_err(|_| ExprError::new(start, format!("`{s}` is not a number")))?;
            if chars.get(i).is_some_and(|c| c.is_alphabetic() || *c == '_') {
                return Err(ExprError::new(start, "a name cannot start with a digit")
                    .hint("variable names start with a letter or `_`"));
            }
            out.push((start, Tok::Num(n)));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((start, Tok::Ident(chars[start..i].iter().collect())));
            continue;
        }
        if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ExprError::new(start, "string is not closed")
                            .hint(format!("end it with {c}")));
                    }
                    Some('\\') => {
                        match chars.get(i + 1) {
                            Some(e @ ('\\' | '\'' | '"')) => s.push(*e),
                            Some('n') => s.push('\n'),
                            _ => {
                                return Err(ExprError::new(i, "unknown escape")
                                    .hint("escapes are \\\\, \\', \\\" and \\n"));
                            }
                        }
                        i += 2;
                    }
                    Some(q) if *q == c => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        s.push(*other);
                        i += 1;
                    }
                }
            }
            out.push((start, Tok::Str(s)));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|op| *op == two);
        if let Some(op) = op2 {
            out.push((start, Tok::Op(op)));
            i += 2;
            continue;
        }
        let tok = match c {
            '<' => Tok::Op("<"),
            '>' => Tok::Op(">"),
            '+' => Tok::Op("+"),
            '-' => Tok::Op("-"),
            '!' => Tok::Op("!"),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '=' => {
                return Err(ExprError::new(start, "`=` is not an operator")
                    .hint("compare with `==`; assign with a `set` node"));
            }
            other => {
                return Err(ExprError::new(start, format!("unexpected `{other}`")).hint(
                    "expressions use variables, 'strings', numbers, == != < <= > >=, + -, and or not, ( )",
                ));
            }
        };
        out.push((start, tok));
        i += 1;
    }
    Ok(out)
}

struct Parser<'a, F> {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    depth: usize,
    lookup: &'a F,
}

impl<F: Fn(&str) -> Option<VarType>> Parser<'_, F> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(o, _)| *o)
    }

    fn eat_op(&mut self, ops: &[&str]) -> Option<&'static str> {
        let found = match self.peek() {
            Some(Tok::Op(op)) if ops.contains(op) => Some(*op),
            Some(Tok::Ident(w)) if ops.contains(&w.as_str()) => match w.as_str() {
                "and" => Some("and"),
                "or" => Some("or"),
                "not" => Some("not"),
                _ => None,
            },
            _ => None,
        };
        if found.is_some() {
            self.pos += 1;
        }
        found
    }

    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(ExprError::new(
                self.offset(),
                "expression is nested too deeply",
            ))
        } else {
            Ok(())
        }
    }

    fn or(&mut self) -> Result<(Node, Ty), ExprError> {
        let (mut left, mut ty) = self.and()?;
        while self.eat_op(&["or", "||"]).is_some() {
            let (right, _) = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
            ty = Ty::Bool;
        }
        Ok((left, ty))
    }

    fn and(&mut self) -> Result<(Node, Ty), ExprError> {
        let (mut left, mut ty) = self.not()?;
        while self.eat_op(&["and", "&&"]).is_some() {
            let (right, _) = self.not()?;
            left = Node::And(Box::new(left), Box::new(right));
            ty = Ty::Bool;
        }
        Ok((left, ty))
    }

    fn not(&mut self) -> Result<(Node, Ty), ExprError> {
        if self.eat_op(&["not", "!"]).is_some() {
            self.deeper()?;
            let (inner, _) = self.not()?;
            self.depth -= 1;
            return Ok((Node::Not(Box::new(inner)), Ty::Bool));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<(Node, Ty), ExprError> {
        let (left, lt) = self.sum()?;
        let at = self.offset();
        let Some(op) = self.eat_op(&["==", "!=", "<", "<=", ">", ">="]) else {
            return Ok((left, lt));
        };
        let (right, rt) = self.sum()?;
        let cmp = match op {
            "==" => Cmp::Eq,
            "!=" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            _ => Cmp::Ge,
        };
        let ordering = !matches!(cmp, Cmp::Eq | Cmp::Ne);
        if !ordering {
            let empty_lit = |n: &Node| matches!(n, Node::Lit(Value::Str(s)) if s.is_empty());
            let var_name = |n: &Node| match n {
                Node::Var { name, .. } => Some(name.clone()),
                _ => None,
            };
            let presence = match (var_name(&left), var_name(&right)) {
                (Some(name), _) if empty_lit(&right) => Some(name),
                (_, Some(name)) if empty_lit(&left) => Some(name),
                _ => None,
            };
            if let Some(name) = presence {
                if self.eat_op(&["==", "!=", "<", "<=", ">", ">="]).is_some() {
                    return Err(ExprError::new(at, "comparisons cannot be chained")
                        .hint("write `a < b and b < c`"));
                }
                return Ok((
                    Node::Empty {
                        name,
                        negate: cmp == Cmp::Ne,
                    },
                    Ty::Bool,
                ));
            }
        }
        let bad = match (lt, rt) {
            (Ty::Bool, Ty::Num) | (Ty::Num, Ty::Bool) => true,
            (Ty::Bool, _) | (_, Ty::Bool) if ordering => true,
            (Ty::Num, Ty::Str) => !numeric_literal(&right),
            (Ty::Str, Ty::Num) => !numeric_literal(&left),
            _ => false,
        };
        if bad {
            return Err(ExprError::new(
                at,
                format!("`{op}` compares a {} with a {}", ty_name(lt), ty_name(rt)),
            )
            .hint("compare numbers with numbers and text with text; declare numeric variables as `integer`, `number` or `money`"));
        }
        if self.eat_op(&["==", "!=", "<", "<=", ">", ">="]).is_some() {
            return Err(
                ExprError::new(at, "comparisons cannot be chained").hint("write `a < b and b < c`")
            );
        }
        Ok((Node::Cmp(cmp, Box::new(left), Box::new(right)), Ty::Bool))
    }

    fn sum(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.offset();
        let (mut left, mut ty) = self.unary()?;
        loop {
            let op_at = self.offset();
            let Some(op) = self.eat_op(&["+", "-"]) else {
                break;
            };
            let (right, rt) = self.unary()?;
            if ty != Ty::Num || rt != Ty::Num {
                let at = if ty != Ty::Num { at } else { op_at };
                return Err(ExprError::new(at, format!("`{op}` needs numbers"))
                    .hint("arithmetic works on `integer`, `number` and `money` variables and number literals; build text with `${var}` templates"));
            }
            left = if op == "+" {
                Node::Add(Box::new(left), Box::new(right))
            } else {
                Node::Sub(Box::new(left), Box::new(right))
            };
            ty = Ty::Num;
        }
        Ok((left, ty))
    }

    fn unary(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.offset();
        if self.eat_op(&["-"]).is_some() {
            self.deeper()?;
            let (inner, ty) = self.unary()?;
            self.depth -= 1;
            if ty != Ty::Num {
                return Err(ExprError::new(at, "`-` needs a number"));
            }
            return Ok((Node::Neg(Box::new(inner)), Ty::Num));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<(Node, Ty), ExprError> {
        let at = self.offset();
        let Some((_, tok)) = self.toks.get(self.pos).cloned() else {
            return Err(ExprError::new(self.end, "the expression ends too early")
                .hint("a value or a variable is missing"));
        };
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok((Node::Lit(Value::Num(n)), Ty::Num)),
            Tok::Str(s) => Ok((Node::Lit(Value::Str(s)), Ty::Str)),
            Tok::Ident(w) if w == "true" || w == "false" => {
                Ok((Node::Lit(Value::Bool(w == "true")), Ty::Bool))
            }
            Tok::Ident(w) if matches!(w.as_str(), "and" | "or" | "not") => {
                Err(ExprError::new(at, format!("`{w}` needs a value before it")))
            }
            Tok::Ident(name) => match (self.lookup)(&name) {
                Some(var_ty) => {
                    let ty = match var_ty {
                        VarType::Integer | VarType::Number | VarType::Money => Ty::Num,
                        VarType::Boolean => Ty::Bool,
                        _ => Ty::Str,
                    };
                    Ok((Node::Var { name, ty }, ty))
                }
                None => Err(
                    ExprError::new(at, format!("`{name}` is not a declared variable"))
                        .hint("declare it under `variables:`; text literals need quotes: 'sales'"),
                ),
            },
            Tok::LParen => {
                self.deeper()?;
                let inner = self.or()?;
                self.depth -= 1;
                match self.peek() {
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(ExprError::new(self.offset(), "`(` is not closed").hint("add `)`")),
                }
            }
            Tok::RParen => Err(ExprError::new(at, "unexpected `)`")),
            Tok::Op(op) => Err(ExprError::new(at, format!("unexpected `{op}`"))
                .hint("a value or a variable is missing")),
        }
    }
}

fn numeric_literal(node: &Node) -> bool {
    matches!(node, Node::Lit(Value::Str(s)) if s.trim().parse::<f64>().is_ok())
}

fn ty_name(ty: Ty) -> &'static str {
    match ty {
        Ty::Str => "text",
        Ty::Num => "number",
        Ty::Bool => "boolean",
    }
}

impl Expr {
    /// Parses and checks `text`. `lookup` gives the declared type of a variable (None:
    /// not declared).
    pub fn parse(text: &str, lookup: &impl Fn(&str) -> Option<VarType>) -> Result<Expr, ExprError> {
        let toks = tokenize(text)?;
        if toks.is_empty() {
            return Err(ExprError::new(0, "the expression is empty"));
        }
        let mut p = Parser {
            toks,
            pos: 0,
            end: text.chars().count(),
            depth: 0,
            lookup,
        };
        let (root, _) = p.or()?;
        if p.pos < p.toks.len() {
            return Err(
                ExprError::new(p.offset(), "unexpected text after the expression")
                    .hint("join conditions with `and` / `or`; compare with `==`"),
            );
        }
        Ok(Expr {
            source: text.to_string(),
            root,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Variables the expression reads, in order of appearance (with repeats).
    pub fn variables(&self) -> Vec<&str> {
        fn walk<'a>(n: &'a Node, out: &mut Vec<&'a str>) {
            match n {
                Node::Lit(_) => {}
                Node::Var { name, .. } | Node::Empty { name, .. } => out.push(name),
                Node::Not(a) | Node::Neg(a) => walk(a, out),
                Node::And(a, b)
                | Node::Or(a, b)
                | Node::Cmp(_, a, b)
                | Node::Add(a, b)
                | Node::Sub(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// Evaluates with the call's variables (absent ones read as "").
    pub fn eval(&self, vars: &BTreeMap<String, String>) -> Value {
        eval(&self.root, vars)
    }

    /// `eval(vars).truthy()`.
    pub fn is_true(&self, vars: &BTreeMap<String, String>) -> bool {
        self.eval(vars).truthy()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Reads a boolean the way call data writes it.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" | "" => Some(false),
        _ => None,
    }
}

fn eval(node: &Node, vars: &BTreeMap<String, String>) -> Value {
    match node {
        Node::Lit(v) => v.clone(),
        Node::Var { name, ty } => {
            let raw = vars.get(name).map(String::as_str).unwrap_or("");
            match ty {
                Ty::Str => Value::Str(raw.to_string()),
                Ty::Num => Value::Num(raw.trim().parse().unwrap_or_else(|_| {
                    if !raw.is_empty() {
                        tracing::warn!(variable = %name, "value is not a number; read as NaN");
                    }
                    f64::NAN
                })),
                Ty::Bool => Value::Bool(parse_bool(raw).unwrap_or_else(|| {
                    tracing::warn!(variable = %name, "value is not a boolean; read as false");
                    false
                })),
            }
        }
        Node::Empty { name, negate } => {
            let empty = vars.get(name).is_none_or(|v| v.trim().is_empty());
            Value::Bool(empty != *negate)
        }
        Node::Not(a) => Value::Bool(!eval(a, vars).truthy()),
        Node::And(a, b) => Value::Bool(eval(a, vars).truthy() && eval(b, vars).truthy()),
        Node::Or(a, b) => Value::Bool(eval(a, vars).truthy() || eval(b, vars).truthy()),
        Node::Neg(a) => Value::Num(-num(&eval(a, vars))),
        Node::Add(a, b) => Value::Num(num(&eval(a, vars)) + num(&eval(b, vars))),
        Node::Sub(a, b) => Value::Num(num(&eval(a, vars)) - num(&eval(b, vars))),
        Node::Cmp(op, a, b) => {
            let (a, b) = (eval(a, vars), eval(b, vars));
            let ord = compare(&a, &b);
            Value::Bool(match op {
                Cmp::Eq => ord == Some(std::cmp::Ordering::Equal),
                Cmp::Ne => ord != Some(std::cmp::Ordering::Equal),
                Cmp::Lt => ord == Some(std::cmp::Ordering::Less),
                Cmp::Le => matches!(
                    ord,
                    Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
                ),
                Cmp::Gt => ord == Some(std::cmp::Ordering::Greater),
                Cmp::Ge => matches!(
                    ord,
                    Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
                ),
            })
        }
    }
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Num(n) => *n,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse().unwrap_or(f64::NAN),
    }
}

/// `None` when the values cannot be ordered (NaN, a boolean against text that is not a
/// boolean).
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Str(s)) => parse_bool(s).map(|y| x.cmp(&y)),
        (Value::Str(s), Value::Bool(y)) => parse_bool(s).map(|x| x.cmp(y)),
        _ => num(a).partial_cmp(&num(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(name: &str) -> Option<VarType> {
        match name {
            "count" | "items" => Some(VarType::Integer),
            "total" => Some(VarType::Money),
            "consent" => Some(VarType::Boolean),
            "dept" | "language" | "code" => Some(VarType::String),
            "deadline" => Some(VarType::Date),
            _ => None,
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn eval_str(text: &str, v: &[(&str, &str)]) -> Value {
        Expr::parse(text, &types)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .eval(&vars(v))
    }

    #[test]
    fn evaluates() {
        let v = [
            ("count", "3"),
            ("total", "1500.50"),
            ("consent", "yes"),
            ("dept", "sales"),
            ("deadline", "2026-11-23"),
            ("code", ""),
        ];
        for (text, want) in [
            ("count + 1", Value::Num(4.0)),
            ("count - 5", Value::Num(-2.0)),
            ("-count", Value::Num(-3.0)),
            ("count >= 3 and total > 1000", Value::Bool(true)),
            ("count < 3 or dept == 'sales'", Value::Bool(true)),
            ("not consent", Value::Bool(false)),
            ("!(dept != \"sales\")", Value::Bool(true)),
            ("deadline < '2026-12-01'", Value::Bool(true)),
            ("code == ''", Value::Bool(true)),
            ("consent == true", Value::Bool(true)),
            ("count == '3'", Value::Bool(true)),
            ("(count + 1) * 0 == 0", Value::Bool(false)),
        ] {
            if text.contains('*') {
                assert!(Expr::parse(text, &types).is_err());
                continue;
            }
            assert_eq!(eval_str(text, &v), want, "{text}");
        }
        assert_eq!(eval_str("count + 1", &v).to_string(), "4");
        assert_eq!(eval_str("total + 0.25", &v).to_string(), "1500.75");
    }

    #[test]
    fn bad_call_data_never_panics() {
        let v = [("count", "many"), ("consent", "maybe")];
        assert_eq!(eval_str("count > 1", &v), Value::Bool(false));
        assert_eq!(eval_str("count < 1", &v), Value::Bool(false));
        assert_eq!(eval_str("count + 1", &v).to_string(), "");
        assert_eq!(eval_str("consent", &v), Value::Bool(false));
        assert_eq!(eval_str("dept == ''", &[]), Value::Bool(true));
    }

    #[test]
    fn presence_checks_work_for_every_type() {
        let v = [("count", "0"), ("total", ""), ("deadline", "2026-01-01")];
        assert_eq!(eval_str("count != ''", &v), Value::Bool(true));
        assert_eq!(eval_str("total != ''", &v), Value::Bool(false));
        assert_eq!(eval_str("'' == total", &v), Value::Bool(true));
        assert_eq!(
            eval_str("deadline != '' and count == 0", &v),
            Value::Bool(true)
        );
        assert_eq!(eval_str("consent == ''", &[]), Value::Bool(true));
    }

    #[test]
    fn errors_point_at_the_problem() {
        for (text, offset, needle) in [
            ("count >", 7, "ends too early"),
            ("dept = 'sales'", 5, "`=` is not an operator"),
            ("depth == 'x'", 0, "`depth` is not a declared variable"),
            ("dept == sales", 8, "`sales` is not a declared variable"),
            ("'abc' < 3", 6, "compares a text with a number"),
            ("consent + 1", 0, "needs numbers"),
            ("count + dept", 6, "needs numbers"),
            ("(count > 1", 10, "`(` is not closed"),
            ("count > 1 2", 10, "unexpected text"),
            ("'open", 0, "not closed"),
            ("a < b < c", 0, "not a declared variable"),
            ("count < 1 < 2", 6, "cannot be chained"),
            ("", 0, "empty"),
            ("count # 1", 6, "unexpected `#`"),
            ("1abc", 0, "cannot start with a digit"),
        ] {
            let e = Expr::parse(text, &types).expect_err(text);
            assert_eq!(e.offset, offset, "{text}: {e:?}");
            assert!(e.message.contains(needle), "{text}: {e:?}");
        }
        let deep = format!("{}count{}", "(".repeat(100), ")".repeat(100));
        assert!(Expr::parse(&deep, &types).is_err());
    }

    #[test]
    fn lists_variables() {
        let e = Expr::parse("count > 1 and dept == 'x' or count < 0", &types).unwrap();
        assert_eq!(e.variables(), ["count", "dept", "count"]);
        assert_eq!(e.source(), "count > 1 and dept == 'x' or count < 0");
    }
}
