//! Raw YAML model → validated [`Scenario`].
//!
//! Checks are collected, not short-circuited: a file with three dangling targets and an
//! undeclared variable reports all four. Each check points at the YAML node that has to
//! change; expression and template errors point at the character inside the string.
//!
//! Name spaces: the main dialogue's nodes form one; each sub-dialogue's nodes another
//! (targets resolve within their own). Variables: the scenario's, plus inside a
//! sub-dialogue its parameters. Global intents and `global.on` targets are main-dialogue
//! nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::error::{Diagnostic, ErrorKind};
use super::raw::{
    Named, OrderedMap, PromptList, RawAsk, RawEscalation, RawGender, RawGlobal, RawGlobals,
    RawHangup, RawInputMode, RawIntent, RawNode, RawPromptItem, RawPromptMap, RawScenario,
    RawSetValue, RawTransferMode, RawVarType, RawVariable, Scalar,
};
use super::{
    Ask, Assign, Confirm, DEFAULT_COMPLETE_TIMEOUT, DEFAULT_CONFIDENCE, DEFAULT_INCOMPLETE_TIMEOUT,
    DEFAULT_INTERDIGIT_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_MAX_SPEECH_TIMEOUT,
    DEFAULT_RECORD_FINAL_SILENCE, DEFAULT_RECORD_MAX_LENGTH, DEFAULT_TIMEOUT,
    DEFAULT_TRANSFER_TIMEOUT, DEFAULT_WEBHOOK_TIMEOUT, DigitString, Escalation, Expr,
    FALLBACK_LANGUAGE, Gender, InputMode, Intent, IntentAction, JsonTemplate, Jump,
    LANGUAGE_VERSION, Node, NodeId, NodeKind, PluralNames, PromptItem, PromptKind, Record,
    Scenario, SourcePos, SubId, Subdialog, Template, Transfer, TransferMode, VarType, Variable,
    Webhook, parse_duration, validate_prompt_name,
};

/// `on:` keys of an `ask` that are not intent names.
const NOINPUT: &str = "noinput";
const NOMATCH: &str = "nomatch";
const DIGITS: &str = "digits";

/// Events the CRM integration documents; others are allowed but linted.
pub(crate) const KNOWN_EVENTS: [&str; 3] = ["sms.requested", "dnc.requested", "callback.requested"];

fn pos<T>(s: &Spanned<T>) -> SourcePos {
    SourcePos::of(&s.referenced)
}

/// Node, intent and outcome names: `[A-Za-z0-9_][A-Za-z0-9_-]*`.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 16
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn is_dtmf_key(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

fn is_event_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// "did you mean `x`?" when a candidate is close, else a list of (up to 8) candidates.
pub(crate) fn suggest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    what: &str,
) -> String {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    let best = candidates
        .iter()
        .map(|c| (distance(wanted, c), *c))
        .filter(|(d, _)| *d <= 1.max(wanted.len() / 3) && *d < wanted.len())
        .min();
    if let Some((_, c)) = best {
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

fn var_type(raw: Option<RawVarType>) -> VarType {
    match raw {
        None | Some(RawVarType::String) => VarType::String,
        Some(RawVarType::Digits) => VarType::Digits,
        Some(RawVarType::Integer) => VarType::Integer,
        Some(RawVarType::Number) => VarType::Number,
        Some(RawVarType::Money) => VarType::Money,
        Some(RawVarType::Date) => VarType::Date,
        Some(RawVarType::Time) => VarType::Time,
        Some(RawVarType::Boolean) => VarType::Boolean,
    }
}

/// One name space of nodes.
#[derive(Default)]
struct Space<'a> {
    ids: HashMap<&'a str, NodeId>,
    names: Vec<&'a str>,
}

struct Compiler<'a> {
    /// The file's lines, to find where a quoted string's text starts.
    lines: Vec<&'a str>,
    diags: Vec<Diagnostic>,
    languages: Vec<String>,
    variables: BTreeMap<String, Variable>,
    /// 0 = the main dialogue, i + 1 = sub-dialogue i.
    spaces: Vec<Space<'a>>,
    /// The space (and sub-dialogue) being compiled.
    space: usize,
    sub_names: Vec<&'a str>,
    sub_params: Vec<BTreeMap<String, Variable>>,
    /// Parameters declared without a default (must be passed).
    sub_required: Vec<Vec<String>>,
    sub_returns: Vec<Vec<String>>,
    globals: Vec<Intent>,
    global_noinput: Option<(Jump, Option<&'a Spanned<RawEscalation>>)>,
    global_nomatch: Option<(Jump, Option<&'a Spanned<RawEscalation>>)>,
    /// Sub-dialogues called from each space (for recursion), with the call's position.
    calls: Vec<Vec<(SubId, SourcePos)>>,
}

pub(crate) fn compile(
    file: &str,
    text: &str,
    raw: RawScenario,
) -> Result<Scenario, Vec<Diagnostic>> {
    let mut c = Compiler {
        lines: text.lines().collect(),
        diags: Vec::new(),
        languages: Vec::new(),
        variables: BTreeMap::new(),
        spaces: Vec::new(),
        space: 0,
        sub_names: Vec::new(),
        sub_params: Vec::new(),
        sub_required: Vec::new(),
        sub_returns: Vec::new(),
        globals: Vec::new(),
        global_noinput: None,
        global_nomatch: None,
        calls: Vec::new(),
    };

    if raw.version.value != LANGUAGE_VERSION {
        c.error(
            ErrorKind::UnsupportedVersion,
            pos(&raw.version),
            format!("unsupported scenario version {}", raw.version.value),
        )
        .hint(format!("this ivrflow reads `version: {LANGUAGE_VERSION}`"));
    }

    let name = match &raw.name {
        Some(n) => {
            if !is_identifier(&n.value) {
                c.error(
                    ErrorKind::InvalidName,
                    pos(n),
                    format!("scenario name `{}` is not a valid name", n.value),
                )
                .hint("use letters, digits, `_` and `-`");
            }
            n.value.clone()
        }
        None => std::path::Path::new(file)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(file)
            .to_string(),
    };

    c.languages = c.languages(&raw);
    c.declare_variables(&raw);

    // Node ids: the main dialogue's nodes, then each sub-dialogue's, in file order.
    let empty_subs = OrderedMap(Vec::new());
    let subs = raw.subdialogs.as_ref().unwrap_or(&empty_subs);
    let mut next_id = 0u32;
    let main_space = c.space_of(&raw.nodes, &mut next_id);
    c.spaces.push(main_space);
    c.calls.push(Vec::new());
    for (sub_name, sub) in &subs.0 {
        if !is_identifier(&sub_name.value) {
            c.error(
                ErrorKind::InvalidName,
                pos(sub_name),
                format!("sub-dialogue name `{}` is not a valid name", sub_name.value),
            )
            .hint("use letters, digits, `_` and `-`");
        }
        c.sub_names.push(sub_name.value.as_str());
        let space = c.space_of(&sub.value.nodes, &mut next_id);
        c.spaces.push(space);
        c.calls.push(Vec::new());
        let (params, required) = c.declare_params(sub_name, sub.value.params.as_ref());
        c.sub_params.push(params);
        c.sub_required.push(required);
        let mut returns: Vec<String> = Vec::new();
        for (_, node) in &sub.value.nodes.value.0 {
            if let Some(r) = &node.value.ret
                && !returns.contains(&r.value)
            {
                returns.push(r.value.clone());
            }
        }
        c.sub_returns.push(returns);
    }
    if raw.nodes.value.0.is_empty() {
        c.error(
            ErrorKind::InvalidValue,
            pos(&raw.nodes),
            "the scenario has no nodes",
        );
    }

    c.space = 0;
    let start = c.target(&raw.start, "start node");
    if let Some(global) = &raw.global {
        c.global(global);
    }
    let amd = raw.amd.as_ref().and_then(|a| c.amd(a));

    let mut nodes = Vec::new();
    let mut complete = true;
    for (name, node) in &raw.nodes.value.0 {
        match c.node(name, &node.value) {
            Some(kind) => nodes.push(Node {
                name: name.value.clone(),
                qualified: name.value.clone(),
                sub: None,
                pos: pos(name),
                outcome: node.value.outcome.as_ref().and_then(|o| c.outcome(o)),
                kind,
            }),
            None => complete = false,
        }
    }
    let mut subdialogs = Vec::new();
    for (i, (sub_name, sub)) in subs.0.iter().enumerate() {
        c.space = i + 1;
        let sub_start = c.target(&sub.value.start, "sub-dialogue start node");
        for (name, node) in &sub.value.nodes.value.0 {
            match c.node(name, &node.value) {
                Some(kind) => nodes.push(Node {
                    name: name.value.clone(),
                    qualified: format!("{}.{}", sub_name.value, name.value),
                    sub: Some(i),
                    pos: pos(name),
                    outcome: node.value.outcome.as_ref().and_then(|o| c.outcome(o)),
                    kind,
                }),
                None => complete = false,
            }
        }
        if sub.value.nodes.value.0.is_empty() {
            c.error(
                ErrorKind::InvalidValue,
                pos(&sub.value.nodes),
                format!("sub-dialogue `{}` has no nodes", sub_name.value),
            );
        }
        subdialogs.push(Subdialog {
            name: sub_name.value.clone(),
            description: sub.value.description.clone(),
            params: c.sub_params[i].clone(),
            start: sub_start.unwrap_or(NodeId(0)),
            returns: c.sub_returns[i].clone(),
            pos: pos(sub_name),
        });
    }
    c.space = 0;
    c.recursion();

    if c.diags.is_empty() && complete {
        c.zero_time_loops(&nodes);
    }

    let transfer_allow = c.transfer_allow(&raw, &nodes);
    let global_noinput = c.global_noinput.as_ref().map(|(j, _)| j.clone());
    let global_nomatch = c.global_nomatch.as_ref().map(|(j, _)| j.clone());
    match (c.diags.is_empty() && complete, start) {
        (true, Some(start)) => Ok(Scenario {
            name,
            description: raw.description.clone(),
            file: file.to_string(),
            languages: c.languages,
            variables: c.variables,
            start,
            nodes,
            globals: c.globals,
            global_noinput,
            global_nomatch,
            subdialogs,
            amd,
            transfer_allow,
        }),
        _ => Err(c.diags),
    }
}

/// Headers that belong to SIP itself: no variable may be set from them.
const RESERVED_HEADERS: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Route",
    "Record-Route",
    "Content-Length",
    "Content-Type",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Expires",
    "Allow",
    "Supported",
    "Require",
];

impl<'a> Compiler<'a> {
    /// The scenario's transfer allow-list: targets written in the file (rendered with the
    /// declared defaults), and `allow.transfer` patterns.
    fn transfer_allow(&mut self, raw: &RawScenario, nodes: &[Node]) -> super::allow::TransferAllow {
        let defaults: BTreeMap<String, String> = self
            .variables
            .iter()
            .map(|(n, v)| (n.clone(), v.default.clone()))
            .collect();
        let mut allow = super::allow::TransferAllow::default();
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
            match super::allow::TargetPattern::parse(&p.value) {
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

    fn error(
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
    fn offset_pos(&self, at: SourcePos, value: &str, offset: usize) -> SourcePos {
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

    fn space_of(&mut self, nodes: &'a Spanned<Named<RawNode>>, next_id: &mut u32) -> Space<'a> {
        let mut space = Space::default();
        for (name, _) in &nodes.value.0 {
            if !is_identifier(&name.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(name),
                    format!("node name `{}` is not a valid name", name.value),
                )
                .hint("use letters, digits, `_` and `-`");
            }
            space.ids.insert(name.value.as_str(), NodeId(*next_id));
            space.names.push(name.value.as_str());
            *next_id += 1;
        }
        space
    }

    fn sub(&self) -> Option<SubId> {
        self.space.checked_sub(1)
    }

    /// A node name as messages show it: `yes_no.ask` inside a sub-dialogue.
    fn qualify(&self, name: &str) -> String {
        match self.sub() {
            Some(s) => format!("{}.{name}", self.sub_names[s]),
            None => name.to_string(),
        }
    }

    /// The declared type of a variable visible in the current space.
    fn lookup(&self, name: &str) -> Option<VarType> {
        self.sub()
            .and_then(|s| self.sub_params.get(s))
            .and_then(|p| p.get(name))
            .or_else(|| self.variables.get(name))
            .map(|v| v.ty)
    }

    fn visible_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.variables.keys().cloned().collect();
        if let Some(p) = self.sub().and_then(|s| self.sub_params.get(s)) {
            names.extend(p.keys().cloned());
        }
        names.sort();
        names
    }

    fn languages(&mut self, raw: &RawScenario) -> Vec<String> {
        let Some(list) = &raw.languages else {
            return vec![FALLBACK_LANGUAGE.to_string()];
        };
        if list.value.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(list),
                "`languages` is empty",
            )
            .hint("list the prompt languages, e.g. `[en, ru, uk]`, or leave the key out for `[en]`");
        }
        let mut out: Vec<String> = Vec::new();
        for lang in &list.value {
            if !is_language_tag(&lang.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(lang),
                    format!("`{}` is not a language tag", lang.value),
                )
                .hint("use the name of the folder under audio/, e.g. `en`, `ru`, `uk`");
            } else if out.contains(&lang.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(lang),
                    format!("language `{}` is listed twice", lang.value),
                );
            } else {
                out.push(lang.value.clone());
            }
        }
        if out.is_empty() {
            out.push(FALLBACK_LANGUAGE.to_string());
        }
        out
    }

    /// A declared variable or parameter, its default checked against its type.
    fn variable(&mut self, name: &Spanned<String>, decl: &RawVariable) -> Option<Variable> {
        if !super::is_variable_name(&name.value) {
            self.error(
                ErrorKind::InvalidName,
                pos(name),
                format!("variable name `{}` is not a valid name", name.value),
            )
            .hint("use letters, digits and `_`, not starting with a digit");
            return None;
        }
        let ty = var_type(decl.ty);
        let default = decl.default.as_ref();
        if let Some(d) = default
            && let Err(e) = ty.check(&d.value.0)
        {
            let kind = if ty == VarType::Digits {
                ErrorKind::InvalidDigits
            } else {
                ErrorKind::InvalidValue
            };
            self.error(
                kind,
                pos(d),
                format!("default of {} variable `{}`: {e}", ty.name(), name.value),
            )
            .hint(format!("the default must be a valid `{}` value", ty.name()));
        }
        let sip_header = decl
            .from
            .as_ref()
            .and_then(|f| self.variable_origin(name, f));
        let max_length = match &decl.max_length {
            Some(m) if m.value == 0 || m.value > super::MAX_SIP_VALUE_MAX => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(m),
                    format!(
                        "max_length of `{}` must be between 1 and {}",
                        name.value,
                        super::MAX_SIP_VALUE_MAX
                    ),
                );
                super::DEFAULT_SIP_VALUE_MAX
            }
            Some(m) => m.value,
            None => super::DEFAULT_SIP_VALUE_MAX,
        };
        Some(Variable {
            name: name.value.clone(),
            ty,
            default: default.map(|d| d.value.0.clone()).unwrap_or_default(),
            description: decl.description.clone(),
            pos: Some(pos(name)),
            sip_header,
            max_length,
        })
    }

    /// `from: sip_header NAME` → the header name.
    fn variable_origin(
        &mut self,
        name: &Spanned<String>,
        from: &Spanned<String>,
    ) -> Option<String> {
        let text = from.value.trim();
        let header = text.strip_prefix("sip_header").map(str::trim);
        match header {
            Some(h)
                if !h.is_empty()
                    && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(h)) =>
            {
                Some(h.to_owned())
            }
            Some(h) if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(h)) => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(from),
                    format!(
                        "`{h}` is a header of the SIP protocol itself; it cannot set `{}`",
                        name.value
                    ),
                )
                .hint("use a header of your own, e.g. `from: sip_header X-Order-Id`");
                None
            }
            _ => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(from),
                    format!("`from: {text}` of `{}` is not understood", name.value),
                )
                .hint("write `from: sip_header X-Order-Id` (the header of an inbound INVITE that sets it)");
                None
            }
        }
    }

    fn declare_variables(&mut self, raw: &RawScenario) {
        if let Some(vars) = &raw.variables {
            for (name, decl) in &vars.0 {
                let Some(mut var) = self.variable(name, &decl.value) else {
                    continue;
                };
                if name.value == "language" {
                    match &decl.value.default {
                        Some(d) if !self.languages.contains(&d.value.0) => {
                            let langs = self.languages.join(", ");
                            self.error(
                                ErrorKind::InvalidValue,
                                pos(d),
                                format!("default language `{}` is not in `languages`", d.value.0),
                            )
                            .hint(format!("languages: [{}]", langs));
                        }
                        Some(_) => {}
                        None => var.default = self.languages[0].clone(),
                    }
                }
                self.variables.insert(name.value.clone(), var);
            }
        }
        if let Some(amd) = &raw.amd {
            match self.variables.get(super::ANSWERED_BY) {
                Some(v) if v.ty != VarType::String => {
                    let at = v.pos.unwrap_or(pos(amd));
                    self.error(
                        ErrorKind::InvalidValue,
                        at,
                        format!(
                            "`{}` is set by `amd:` to human, machine or unknown; it cannot be a {} variable",
                            super::ANSWERED_BY,
                            v.ty.name()
                        ),
                    )
                    .hint("declare it as `type: string`, or leave it out (`amd:` declares it)");
                }
                Some(_) => {}
                None => {
                    self.variables.insert(
                        super::ANSWERED_BY.to_string(),
                        Variable {
                            name: super::ANSWERED_BY.to_string(),
                            ty: VarType::String,
                            default: String::new(),
                            description: Some(
                                "who answered: human, machine or unknown (implicit, `amd:`)"
                                    .to_string(),
                            ),
                            pos: None,
                            sip_header: None,
                            max_length: super::DEFAULT_SIP_VALUE_MAX,
                        },
                    );
                }
            }
        }
        let default_lang = self.languages[0].clone();
        self.variables
            .entry("language".to_string())
            .or_insert_with(|| Variable {
                name: "language".to_string(),
                ty: VarType::String,
                default: default_lang,
                description: Some("prompt language (implicit)".to_string()),
                pos: None,
                sip_header: None,
                max_length: super::DEFAULT_SIP_VALUE_MAX,
            });
    }

    fn declare_params(
        &mut self,
        sub: &Spanned<String>,
        params: Option<&Named<RawVariable>>,
    ) -> (BTreeMap<String, Variable>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut required = Vec::new();
        for (name, decl) in params.map(|p| p.0.as_slice()).unwrap_or_default() {
            if self.variables.contains_key(&name.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(name),
                    format!(
                        "parameter `{}` of `{}` has the name of a scenario variable",
                        name.value, sub.value
                    ),
                )
                .hint("give the parameter another name; a sub-dialogue sees the scenario's variables anyway");
                continue;
            }
            if let Some(f) = &decl.value.from {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(f),
                    format!(
                        "parameter `{}` of `{}` cannot come from SIP",
                        name.value, sub.value
                    ),
                )
                .hint("only scenario variables can say `from:`; pass the value as an argument");
            }
            if let Some(var) = self.variable(name, &decl.value) {
                if decl.value.default.is_none() {
                    required.push(var.name.clone());
                }
                out.insert(var.name.clone(), var);
            }
        }
        (out, required)
    }

    /// `amd:` (main dialogue name space).
    fn amd(&mut self, amd: &Spanned<super::raw::RawAmd>) -> Option<super::Amd> {
        let raw = &amd.value;
        let on_machine = if raw.on_machine.value == "hangup" {
            None
        } else {
            Some(Jump {
                global: true,
                ..self.jump(
                    &raw.on_machine,
                    super::AMD_MACHINE_KEY,
                    "`amd.on_machine` node",
                )?
            })
        };
        let max_wait = self.duration(
            raw.max_wait.as_ref(),
            super::DEFAULT_AMD_MAX_WAIT,
            "max_wait",
        );
        if max_wait > super::MAX_AMD_WAIT
            && let Some(at) = raw.max_wait.as_ref()
        {
            self.error(
                ErrorKind::InvalidDuration,
                pos(at),
                format!(
                    "`max_wait` of {} keeps a person waiting in silence",
                    at.value
                ),
            )
            .hint("at most 10s; 3s to 5s is usual");
        }
        let d = crate::media::amd::AmdConfig::default();
        let greeting = self.duration(raw.greeting.as_ref(), d.machine_speech, "greeting");
        let silence = self.duration(raw.silence.as_ref(), d.human_silence, "silence");
        if let (Some(g), true) = (raw.greeting.as_ref(), greeting >= max_wait) {
            self.error(
                ErrorKind::InvalidDuration,
                pos(g),
                "`greeting` must be shorter than `max_wait`",
            )
            .hint("a machine is recognised once its greeting has lasted `greeting`, which must happen before `max_wait`");
        }
        let max_greeting = self.duration(raw.max_greeting.as_ref(), d.max_greeting, "max_greeting");
        Some(super::Amd {
            on_machine,
            max_wait,
            greeting,
            silence,
            max_greeting,
            pos: pos(amd),
        })
    }

    /// A target in the current name space.
    fn target(&mut self, name: &Spanned<String>, what: &str) -> Option<NodeId> {
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

    fn jump(&mut self, name: &Spanned<String>, key: &str, what: &str) -> Option<Jump> {
        self.target(name, what).map(|t| Jump::local(t, key))
    }

    fn outcome(&mut self, outcome: &Spanned<String>) -> Option<String> {
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
    fn template_at(&mut self, text: &str, at: SourcePos) -> Option<Template> {
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

    fn template(&mut self, text: &Spanned<String>) -> Option<Template> {
        self.template_at(&text.value, pos(text))
    }

    fn expr(&mut self, text: &Spanned<String>) -> Option<Expr> {
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

    /// Where `needle` first appears in the file at or after `from` (JSON bodies lose their
    /// positions in parsing; their strings are found again in the text for messages).
    fn find_in_source(&self, from: SourcePos, needle: &str) -> Option<SourcePos> {
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

    fn json(&mut self, value: &serde_json::Value, at: SourcePos) -> Option<JsonTemplate> {
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

    fn prompts(&mut self, list: &PromptList) -> Vec<PromptItem> {
        let mut out = Vec::with_capacity(list.value.len());
        for item in &list.value {
            let at = pos(item);
            let (kind, barge_in, when) = match &item.value {
                RawPromptItem::Name(name) => {
                    let spanned = Spanned::new(name.clone(), item.referenced, item.defined);
                    (self.recording(&spanned), None, None)
                }
                RawPromptItem::Map(map) => {
                    let when = map.when.as_ref().and_then(|w| self.expr(w));
                    (self.prompt_map(map, at), map.barge_in, when)
                }
            };
            if let Some(kind) = kind {
                out.push(PromptItem {
                    kind,
                    barge_in,
                    when,
                    pos: at,
                });
            }
        }
        out
    }

    fn prompt_map(&mut self, map: &RawPromptMap, at: SourcePos) -> Option<PromptKind> {
        let scalar = |s: &Spanned<Scalar>| Spanned::new(s.value.0.clone(), s.referenced, s.defined);
        let present: Vec<&str> = [
            ("prompt", map.prompt.is_some()),
            ("digits", map.digits.is_some()),
            ("number", map.number.is_some()),
            ("money", map.money.is_some()),
            ("date", map.date.is_some()),
            ("time", map.time.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.then_some(k))
        .collect();
        if present.len() != 1 {
            let msg = if present.is_empty() {
                "prompt item has none of `prompt`, `digits`, `number`, `money`, `date`, `time`"
                    .to_string()
            } else {
                format!(
                    "prompt item has {} kinds ({})",
                    present.len(),
                    present.join(", ")
                )
            };
            self.error(ErrorKind::InvalidValue, at, msg)
                .hint("one kind per item, e.g. `{ prompt: hello }`, `{ money: \"${total}\", currency: RUB }`");
            return None;
        }
        let kind = present[0];
        // Options that belong to other kinds.
        let misplaced: Vec<(&str, bool, &[&str])> = vec![
            ("currency", map.currency.is_some(), &["money"]),
            ("gender", map.gender.is_some(), &["number"]),
            ("plural", map.plural.is_some(), &["number"]),
            ("year", map.year.is_some(), &["date"]),
            ("weekday", map.weekday.is_some(), &["date"]),
        ];
        for (key, present, kinds) in misplaced {
            if present && !kinds.contains(&kind) {
                self.error(
                    ErrorKind::Misplaced,
                    at,
                    format!("`{key}` does not apply to a `{kind}` item"),
                )
                .hint(format!("`{key}` belongs to `{}` items", kinds.join("`, `")));
            }
        }
        match kind {
            "prompt" => self.recording(map.prompt.as_ref()?),
            "digits" => self.digits(&scalar(map.digits.as_ref()?)),
            "number" => {
                let v = scalar(map.number.as_ref()?);
                let value = self.say_value(&v, VarType::Integer)?;
                let gender = match map.gender.as_ref().map(|g| g.value) {
                    Some(RawGender::Feminine) => Gender::Feminine,
                    _ => Gender::Masculine,
                };
                let plural = match &map.plural {
                    None => None,
                    Some(p) => {
                        let mut names = PluralNames::default();
                        for (slot, raw) in [
                            (&mut names.one, &p.value.one),
                            (&mut names.few, &p.value.few),
                            (&mut names.many, &p.value.many),
                            (&mut names.other, &p.value.other),
                        ] {
                            if let Some(r) = raw
                                && let Some(PromptKind::Recording(t)) = self.recording(r)
                            {
                                *slot = Some(t);
                            }
                        }
                        if names.one.is_none() || (names.many.is_none() && names.other.is_none()) {
                            self.error(
                                ErrorKind::InvalidValue,
                                pos(p),
                                "`plural` needs at least `one` and `many` (or `other`)",
                            )
                            .hint("e.g. `plural: { one: item, few: items-few, many: items }`; English uses `one` and `other`");
                        }
                        Some(names)
                    }
                };
                Some(PromptKind::Number {
                    value,
                    gender,
                    plural,
                })
            }
            "money" => {
                let v = scalar(map.money.as_ref()?);
                let value = self.say_value(&v, VarType::Money)?;
                let Some(cur) = &map.currency else {
                    self.error(
                        ErrorKind::InvalidValue,
                        at,
                        "`money` item has no `currency`",
                    )
                    .hint(format!(
                        "add `currency: RUB` (one of {})",
                        crate::sayas::CURRENCIES.join(", ")
                    ));
                    return None;
                };
                let currency = self.template(cur)?;
                if let Some(lit) = currency.as_literal()
                    && !crate::sayas::CURRENCIES.contains(&lit.as_str())
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(cur),
                        format!("unknown currency `{lit}`"),
                    )
                    .hint(format!("known: {}", crate::sayas::CURRENCIES.join(", ")));
                    return None;
                }
                Some(PromptKind::Money { value, currency })
            }
            "date" => {
                let v = scalar(map.date.as_ref()?);
                Some(PromptKind::Date {
                    value: self.say_value(&v, VarType::Date)?,
                    year: map.year.unwrap_or(false),
                    weekday: map.weekday.unwrap_or(false),
                })
            }
            _ => {
                let v = scalar(map.time.as_ref()?);
                Some(PromptKind::Time(self.say_value(&v, VarType::Time)?))
            }
        }
    }

    /// The value of a say-as item: a template; a literal must be valid for `ty`.
    fn say_value(&mut self, v: &Spanned<String>, ty: VarType) -> Option<Template> {
        let t = self.template(v)?;
        if let Some(lit) = t.as_literal()
            && let Err(e) = ty.check(&lit)
        {
            self.error(ErrorKind::InvalidValue, pos(v), e)
                .hint("use `${variable}` for call data");
            return None;
        }
        Some(t)
    }

    fn recording(&mut self, name: &Spanned<String>) -> Option<PromptKind> {
        let template = self.template(name)?;
        if let Some(literal) = template.as_literal() {
            if let Err(e) = validate_prompt_name(&literal) {
                self.error(ErrorKind::InvalidName, pos(name), e)
                    .hint("a prompt is named by its path under audio/<lang>/ without `.wav`, e.g. `digits/1`");
                return None;
            }
            if literal.ends_with(".wav") {
                self.error(
                    ErrorKind::InvalidName,
                    pos(name),
                    format!("prompt name `{literal}` includes the file extension"),
                )
                .hint(format!(
                    "write `{}`; the runtime finds audio/<lang>/<name>.wav",
                    literal.trim_end_matches(".wav")
                ));
                return None;
            }
        }
        Some(PromptKind::Recording(template))
    }

    fn digits(&mut self, digits: &Spanned<String>) -> Option<PromptKind> {
        let template = self.template(digits)?;
        if let Some(literal) = template.as_literal()
            && (literal.is_empty() || !literal.chars().all(|c| c.is_ascii_digit()))
        {
            self.error(
                ErrorKind::InvalidDigits,
                pos(digits),
                format!("`{literal}` is not a string of digits"),
            )
            .hint("literal `digits` may contain only 0-9; use `${variable}` for call data");
            return None;
        }
        Some(PromptKind::Digits(template))
    }

    fn duration_or(
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

    fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
        key: &str,
    ) -> Duration {
        self.duration_or(value, default, key, false)
    }

    /// A variable that receives a value (`store`, `set`): it must be declared and visible.
    fn store_var(&mut self, var: &Spanned<String>, what: &str) -> Option<String> {
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
    fn check_keys(&mut self, node: &RawNode, kind: &str, allowed: &[&str]) {
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

    fn required_next(
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
    fn on_map(
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
    fn on_or_next(
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

    fn node(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let actions: Vec<&str> = [
            ("play", node.play.is_some()),
            ("ask", node.ask.is_some()),
            ("set", node.set.is_some()),
            ("goto", node.goto.is_some()),
            ("hangup", node.hangup.is_some()),
            ("branch", node.branch.is_some()),
            ("switch", node.switch.is_some()),
            ("record", node.record.is_some()),
            ("webhook", node.webhook.is_some()),
            ("transfer", node.transfer.is_some()),
            ("sms", node.sms.is_some()),
            ("notify", node.notify.is_some()),
            ("call", node.call.is_some()),
            ("return", node.ret.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, present)| present.then_some(k))
        .collect();
        match actions.len() {
            1 => {}
            0 => {
                self.error(
                    ErrorKind::NodeAction,
                    pos(name),
                    format!("node `{}` has no action", name.value),
                )
                .hint("give it one of `play`, `ask`, `set`, `goto`, `hangup`, `branch`, `switch`, `record`, `webhook`, `transfer`, `sms`, `notify`, `call`, `return` (e.g. `hangup: {}`)");
                return None;
            }
            _ => {
                self.error(
                    ErrorKind::NodeAction,
                    pos(name),
                    format!(
                        "node `{}` has {} actions ({}); a node does exactly one thing",
                        name.value,
                        actions.len(),
                        actions.join(", ")
                    ),
                )
                .hint("split it into several nodes chained with `next`");
                return None;
            }
        }
        let kind = actions[0];
        match kind {
            "play" => {
                self.check_keys(node, kind, &["next"]);
                let list = node.play.as_ref()?;
                let prompts = self.prompts(list);
                if list.value.is_empty() {
                    self.error(ErrorKind::InvalidValue, pos(list), "`play` list is empty");
                }
                let next = self.required_next(name, node, kind)?;
                Some(NodeKind::Play { prompts, next })
            }
            "set" => {
                self.check_keys(node, kind, &["next"]);
                let assign = self.set(node.set.as_ref()?);
                let next = self.required_next(name, node, kind);
                Some(NodeKind::Set {
                    assign: assign?,
                    next: next?,
                })
            }
            "goto" => {
                self.check_keys(node, kind, &[]);
                let target = self.jump(node.goto.as_ref()?, "goto", "goto target")?;
                Some(NodeKind::Goto { target })
            }
            "hangup" => {
                self.check_keys(node, kind, &[]);
                self.hangup(&node.hangup.as_ref()?.value)
            }
            "ask" => {
                self.check_keys(node, kind, &["next", "on"]);
                self.ask(name, node, node.ask.as_ref()?)
            }
            "branch" => {
                self.check_keys(node, kind, &["else"]);
                self.branch(name, node)
            }
            "switch" => {
                self.check_keys(node, kind, &[]);
                self.switch(node.switch.as_ref()?)
            }
            "record" => {
                self.check_keys(node, kind, &["next", "on"]);
                self.record(name, node)
            }
            "webhook" => {
                self.check_keys(node, kind, &["next", "on"]);
                self.webhook(name, node)
            }
            "transfer" => {
                self.check_keys(node, kind, &["next", "on"]);
                self.transfer(name, node)
            }
            "sms" | "notify" => {
                self.check_keys(node, kind, &["next"]);
                self.notify(name, node, kind)
            }
            "call" => {
                self.check_keys(node, kind, &["next", "on", "with"]);
                self.call(name, node)
            }
            _ => {
                self.check_keys(node, kind, &[]);
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
    }

    fn set(&mut self, assign: &Spanned<Named<RawSetValue>>) -> Option<Vec<(String, Assign)>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (var, value) in &assign.value.0 {
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

    fn hangup(&mut self, hangup: &RawHangup) -> Option<NodeKind> {
        let outcome = hangup.outcome.as_ref().and_then(|o| self.outcome(o));
        let prompts = hangup
            .play
            .as_ref()
            .map(|p| self.prompts(p))
            .unwrap_or_default();
        Some(NodeKind::Hangup { outcome, prompts })
    }

    fn branch(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
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

    fn switch(&mut self, sw: &Spanned<super::raw::RawSwitch>) -> Option<NodeKind> {
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

    fn record(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let raw = &node.record.as_ref()?.value;
        let prompt = raw
            .prompt
            .as_ref()
            .map(|p| self.prompts(p))
            .unwrap_or_default();
        let max_length = self.duration(
            raw.max_length.as_ref(),
            DEFAULT_RECORD_MAX_LENGTH,
            "max_length",
        );
        let final_silence = self.duration(
            raw.final_silence.as_ref(),
            DEFAULT_RECORD_FINAL_SILENCE,
            "final_silence",
        );
        let transcribe = raw.transcribe.unwrap_or(false);
        let store = match &raw.store {
            Some(var) => {
                if !transcribe {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(var),
                        "`store` keeps the transcript, but `transcribe` is not true",
                    )
                    .hint("add `transcribe: true`");
                }
                Some(self.store_var(var, "`store` names")?)
            }
            None => None,
        };
        let on = self.on_map(node, &["empty"], "record result (only `empty`)");
        let next = self.required_next(name, node, "record");
        let empty = match on.get("empty") {
            Some(Some(t)) => Some(Jump::local(*t, "empty")),
            Some(None) => return None,
            None => None,
        };
        Some(NodeKind::Record(Box::new(Record {
            prompt,
            max_length,
            final_silence,
            transcribe,
            store,
            next: next?,
            empty,
        })))
    }

    fn webhook(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let raw = &node.webhook.as_ref()?.value;
        let url = match &raw.url {
            Some(u) => {
                let t = self.template(u)?;
                if let Some(lit) = t.as_literal()
                    && !(lit.starts_with("http://") || lit.starts_with("https://"))
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(u),
                        format!("`{lit}` is not an http(s) URL"),
                    )
                    .hint("leave `url` out to use the configured CRM webhook");
                }
                Some(t)
            }
            None => None,
        };
        let method = match &raw.method {
            Some(m) => {
                let upper = m.value.to_ascii_uppercase();
                if upper != "GET" && upper != "POST" {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(m),
                        format!("method `{}` is not GET or POST", m.value),
                    );
                }
                upper
            }
            None => "POST".to_string(),
        };
        let body = match &raw.body {
            Some(b) => self.json(&b.value, pos(b))?,
            None => JsonTemplate::Literal(serde_json::Value::Object(Default::default())),
        };
        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_WEBHOOK_TIMEOUT, "timeout");
        let mut store = Vec::new();
        if let Some(s) = &raw.store {
            for (var, path) in &s.value.0 {
                let Some(var) = self.store_var(var, "`store` names") else {
                    continue;
                };
                if path.value.is_empty() || path.value.split('.').any(str::is_empty) {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(path),
                        format!("`{}` is not a response field path", path.value),
                    )
                    .hint("write a dotted path into the JSON response, e.g. `order.status` or `items.0.name`");
                    continue;
                }
                store.push((var, path.value.clone()));
            }
        }
        let on = self.on_map(node, &["error"], "webhook result (only `error`)");
        let next = self.required_next(name, node, "webhook");
        let error = match on.get("error") {
            Some(Some(t)) => Some(Jump::local(*t, "error")),
            Some(None) => None,
            None => {
                self.error(
                    ErrorKind::MissingHandler,
                    pos(name),
                    format!(
                        "`webhook` node `{}` does not handle `error`",
                        self.qualify(&name.value)
                    ),
                )
                .hint(
                    "add `on: { error: <node> }` — where to go when the request fails or times out",
                );
                None
            }
        };
        Some(NodeKind::Webhook(Box::new(Webhook {
            name: raw.webhook_name(),
            url,
            method,
            body,
            timeout,
            store,
            next: next?,
            error: error?,
        })))
    }

    fn transfer(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let raw = &node.transfer.as_ref()?.value;
        let target = self.template(&raw.target);
        if raw.target.value.trim().is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(&raw.target),
                "transfer `target` is empty",
            )
            .hint("e.g. `sip:sales@pbx.example.com` or a number the trunk can dial");
        }
        let announcement = raw
            .announcement
            .as_ref()
            .map(|p| self.prompts(p))
            .unwrap_or_default();
        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_TRANSFER_TIMEOUT, "timeout");
        let outcome = match &raw.outcome {
            Some(o) => self.outcome(o)?,
            None => "transferred".to_string(),
        };
        let on = self.on_map(
            node,
            &["busy", "noanswer", "failed"],
            "transfer result (`busy`, `noanswer`, `failed`)",
        );
        let next = node.next.as_ref().map(|n| self.target(n, "`next` target"));
        let mut jumps = Vec::new();
        let qualified = self.qualify(&name.value);
        for key in ["busy", "noanswer", "failed"] {
            jumps.push(self.on_or_next(&on, next, key, pos(name), || {
                (
                    format!("`transfer` node `{qualified}` does not handle `{key}`"),
                    format!("add `{key}: <node>` under `on:`, or a `next:` for every failure"),
                )
            }));
        }
        let [busy, noanswer, failed]: [Option<Jump>; 3] = jumps.try_into().ok()?;
        Some(NodeKind::Transfer(Box::new(Transfer {
            target: target?,
            mode: match raw.mode {
                Some(RawTransferMode::Blind) => TransferMode::Blind,
                _ => TransferMode::Bridged,
            },
            announcement,
            timeout,
            outcome,
            busy: busy?,
            noanswer: noanswer?,
            failed: failed?,
        })))
    }

    fn notify(&mut self, name: &Spanned<String>, node: &RawNode, kind: &str) -> Option<NodeKind> {
        let next = self.required_next(name, node, kind);
        if kind == "sms" {
            let raw = &node.sms.as_ref()?.value;
            if !is_identifier(&raw.template.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(&raw.template),
                    format!("SMS template `{}` is not a valid name", raw.template.value),
                )
                .hint("the name of a text template the CRM knows, e.g. `order-confirmed`");
            }
            let mut fields = vec![(
                "template".to_string(),
                JsonTemplate::Literal(serde_json::Value::String(raw.template.value.clone())),
            )];
            if let Some(to) = &raw.to {
                fields.push(("to".to_string(), JsonTemplate::String(self.template(to)?)));
            }
            let data = match &raw.data {
                Some(d) => self.json(&d.value, pos(d))?,
                None => JsonTemplate::Literal(serde_json::Value::Object(Default::default())),
            };
            fields.push(("data".to_string(), data));
            return Some(NodeKind::Notify {
                written_as: "sms",
                event: "sms.requested".to_string(),
                data: JsonTemplate::Object(fields),
                next: next?,
            });
        }
        let raw = &node.notify.as_ref()?.value;
        if !is_event_name(&raw.event.value) {
            self.error(
                ErrorKind::InvalidName,
                pos(&raw.event),
                format!("`{}` is not an event name", raw.event.value),
            )
            .hint(format!(
                "dotted lower-case words, e.g. {}",
                KNOWN_EVENTS.join(", ")
            ));
            return None;
        }
        let data = match &raw.data {
            Some(d) => self.json(&d.value, pos(d))?,
            None => JsonTemplate::Literal(serde_json::Value::Object(Default::default())),
        };
        Some(NodeKind::Notify {
            written_as: "notify",
            event: raw.event.value.clone(),
            data,
            next: next?,
        })
    }

    fn call(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
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

    fn escalation(
        &mut self,
        raw: Option<&Spanned<RawEscalation>>,
        target: Option<Jump>,
    ) -> Option<Escalation> {
        let max = raw.and_then(|r| r.value.max).unwrap_or(DEFAULT_MAX_RETRIES);
        let reprompts = raw
            .and_then(|r| r.value.reprompt.as_ref())
            .map(|lists| lists.iter().map(|l| self.prompts(l)).collect())
            .unwrap_or_default();
        let question = raw.and_then(|r| r.value.question).unwrap_or(true);
        Some(Escalation {
            max,
            reprompts,
            question,
            target: target?,
        })
    }

    /// DTMF keys and phrases of an intent (local or global). `None`: reported.
    #[allow(clippy::type_complexity)]
    fn intent_selectors(
        &mut self,
        name: &Spanned<String>,
        intent: &RawIntent,
        key_owner: &mut HashMap<String, String>,
    ) -> Option<(Vec<String>, BTreeMap<String, Vec<String>>)> {
        let mut ok = true;
        let mut dtmf = Vec::new();
        if let Some(keys) = &intent.dtmf {
            if keys.value.is_empty() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(keys),
                    format!("intent `{}` has an empty `dtmf` list", name.value),
                );
                ok = false;
            }
            for key in &keys.value {
                if key.value.is_empty() || !key.value.chars().all(is_dtmf_key) {
                    self.error(
                        ErrorKind::InvalidDigits,
                        pos(key),
                        format!("`{}` is not a DTMF key sequence", key.value),
                    )
                    .hint("keys are 0-9, *, # and A-D; quote them: `[\"1\"]`, `[\"*0\"]`");
                    ok = false;
                } else if let Some(owner) = key_owner.get(&key.value) {
                    let owner = owner.clone();
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(key),
                        format!("key `{}` is already used by intent `{owner}`", key.value),
                    );
                    ok = false;
                } else {
                    key_owner.insert(key.value.clone(), name.value.clone());
                    dtmf.push(key.value.clone());
                }
            }
        }
        let mut phrases = BTreeMap::new();
        if let Some(p) = &intent.phrases {
            for (lang, list) in &p.value.0 {
                if !self.languages.contains(&lang.value) {
                    let langs = self.languages.join(", ");
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(lang),
                        format!("phrases for `{}`, which is not in `languages`", lang.value),
                    )
                    .hint(format!("languages: [{}]", langs));
                    ok = false;
                    continue;
                }
                if list.value.iter().any(|s| s.trim().is_empty()) || list.value.is_empty() {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(list),
                        format!("empty phrase in intent `{}`", name.value),
                    );
                    ok = false;
                    continue;
                }
                phrases.insert(lang.value.clone(), list.value.clone());
            }
        }
        ok.then_some((dtmf, phrases))
    }

    fn global(&mut self, global: &'a Spanned<RawGlobal>) {
        let raw = &global.value;
        let mut allowed: Vec<String> = vec![NOINPUT.to_string(), NOMATCH.to_string()];
        if let Some(intents) = &raw.intents {
            allowed.extend(intents.value.0.iter().map(|(n, _)| n.value.clone()));
        }
        let mut on: HashMap<String, Option<NodeId>> = HashMap::new();
        if let Some(map) = &raw.on {
            for (key, target) in &map.value.0 {
                if !allowed.contains(&key.value) {
                    let hint = suggest(&key.value, allowed.iter().map(String::as_str), "`on` key");
                    self.error(
                        ErrorKind::Misplaced,
                        pos(key),
                        format!("`global.on.{}` names no global intent", key.value),
                    )
                    .hint(hint);
                    continue;
                }
                let id = self.target(target, &format!("`global.on.{}` target", key.value));
                on.insert(key.value.clone(), id);
            }
        }
        let mut key_owner = HashMap::new();
        if let Some(intents) = &raw.intents {
            for (name, intent) in &intents.value.0 {
                if !is_identifier(&name.value)
                    || [NOINPUT, NOMATCH, DIGITS].contains(&name.value.as_str())
                {
                    self.error(
                        ErrorKind::InvalidName,
                        pos(name),
                        format!("`{}` cannot be an intent name", name.value),
                    )
                    .hint("use letters, digits, `_` and `-`; `noinput`, `nomatch` and `digits` are reserved");
                    continue;
                }
                let Some((dtmf, phrases)) =
                    self.intent_selectors(name, &intent.value, &mut key_owner)
                else {
                    continue;
                };
                if dtmf.is_empty() && phrases.is_empty() {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(name),
                        format!(
                            "global intent `{}` has neither `dtmf` nor `phrases`",
                            name.value
                        ),
                    );
                    continue;
                }
                let say = intent
                    .value
                    .say
                    .as_ref()
                    .map(|p| self.prompts(p))
                    .unwrap_or_default();
                let repeat = intent.value.repeat.as_ref().is_some_and(|r| r.value);
                let action = if repeat {
                    if on.contains_key(&name.value) {
                        self.error(
                            ErrorKind::Misplaced,
                            pos(name),
                            format!("`{}` repeats the question; it has no target", name.value),
                        )
                        .hint(format!("remove `global.on.{}`", name.value));
                        continue;
                    }
                    IntentAction::Repeat
                } else {
                    match on.get(&name.value) {
                        Some(Some(t)) => IntentAction::Goto(Jump {
                            target: *t,
                            key: format!("global.{}", name.value),
                            global: true,
                        }),
                        Some(None) => continue,
                        None => {
                            self.error(
                                ErrorKind::MissingHandler,
                                pos(name),
                                format!("global intent `{}` has no target", name.value),
                            )
                            .hint(format!(
                                "add `{}: <node>` under `global.on:`, or `repeat: true`",
                                name.value
                            ));
                            continue;
                        }
                    }
                };
                self.globals.push(Intent {
                    name: name.value.clone(),
                    dtmf,
                    phrases,
                    say,
                    action,
                    global: true,
                    pos: pos(name),
                });
            }
        }
        for (key, block) in [
            (NOINPUT, raw.noinput.as_ref()),
            (NOMATCH, raw.nomatch.as_ref()),
        ] {
            let jump = match on.get(key) {
                Some(Some(t)) => Some(Jump {
                    target: *t,
                    key: format!("global.{key}"),
                    global: true,
                }),
                _ => None,
            };
            match (jump, block) {
                (Some(j), b) => {
                    if key == NOINPUT {
                        self.global_noinput = Some((j, b));
                    } else {
                        self.global_nomatch = Some((j, b));
                    }
                }
                (None, Some(b)) => {
                    self.error(
                        ErrorKind::MissingHandler,
                        pos(b),
                        format!("`global.{key}` has no target"),
                    )
                    .hint(format!("add `{key}: <node>` under `global.on:`"));
                }
                (None, None) => {}
            }
        }
    }

    fn ask(
        &mut self,
        name: &Spanned<String>,
        node: &RawNode,
        ask: &Spanned<RawAsk>,
    ) -> Option<NodeKind> {
        let raw: &RawAsk = &ask.value;
        let qualified = self.qualify(&name.value);
        let prompt = self.prompts(&raw.prompt);
        if raw.prompt.value.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(&raw.prompt),
                "`prompt` list is empty",
            )
            .hint("an `ask` must say what it asks");
        }

        let mut inputs = Vec::new();
        match &raw.input {
            None => inputs.push(InputMode::Dtmf),
            Some(list) => {
                if list.value.is_empty() {
                    self.error(ErrorKind::InvalidValue, pos(list), "`input` list is empty")
                        .hint("write `input: [dtmf]`, `[speech]` or `[dtmf, speech]`");
                }
                for mode in &list.value {
                    let m = match mode.value {
                        RawInputMode::Dtmf => InputMode::Dtmf,
                        RawInputMode::Speech => InputMode::Speech,
                    };
                    if !inputs.contains(&m) {
                        inputs.push(m);
                    }
                }
            }
        }
        let dtmf_in = inputs.contains(&InputMode::Dtmf);
        let speech_in = inputs.contains(&InputMode::Speech);

        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_TIMEOUT, "timeout");
        let interdigit_timeout = self.duration(
            raw.interdigit_timeout.as_ref(),
            DEFAULT_INTERDIGIT_TIMEOUT,
            "interdigit_timeout",
        );
        let term_timeout = self.duration_or(
            raw.term_timeout.as_ref(),
            Duration::ZERO,
            "term_timeout",
            true,
        );
        let complete_timeout = self.duration(
            raw.complete_timeout.as_ref(),
            DEFAULT_COMPLETE_TIMEOUT,
            "complete_timeout",
        );
        let incomplete_timeout = self.duration(
            raw.incomplete_timeout.as_ref(),
            DEFAULT_INCOMPLETE_TIMEOUT,
            "incomplete_timeout",
        );
        let max_speech_timeout = self.duration(
            raw.max_speech_timeout.as_ref(),
            DEFAULT_MAX_SPEECH_TIMEOUT,
            "max_speech_timeout",
        );
        let confidence = match &raw.confidence {
            Some(c) if !(0.0..=1.0).contains(&c.value) => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(c),
                    format!("confidence {} is not between 0 and 1", c.value),
                );
                DEFAULT_CONFIDENCE
            }
            Some(c) => c.value as f32,
            None => DEFAULT_CONFIDENCE,
        };

        let empty: Named<RawIntent> = OrderedMap(Vec::new());
        let raw_intents = raw.intents.as_ref().map_or(&empty, |i| &i.value);
        let intent_names: Vec<&str> = raw_intents
            .0
            .iter()
            .map(|(n, _)| n.value.as_str())
            .collect();
        let mut on_allowed: Vec<&str> = intent_names.clone();
        on_allowed.extend([NOINPUT, NOMATCH]);
        if raw.digits.is_some() {
            on_allowed.push(DIGITS);
        }
        let on = self.on_map(node, &on_allowed, "intent of this `ask`");
        let default_next = node.next.as_ref().map(|n| self.target(n, "`next` target"));

        if raw_intents.0.is_empty() && raw.digits.is_none() {
            match &raw.intents {
                Some(i) => {
                    self.error(ErrorKind::InvalidValue, pos(i), "`intents` is empty")
                        .hint("e.g. `intents: { confirm: { dtmf: [\"1\"] } }`");
                }
                None => {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(ask),
                        "an `ask` needs `intents` or `digits`",
                    )
                    .hint("e.g. `intents: { confirm: { dtmf: [\"1\"] } }`, or `digits: { min: 4, max: 8 }`");
                }
            }
        }

        let mut intents = Vec::new();
        let mut key_owner: HashMap<String, String> = HashMap::new();
        let mut complete = true;
        for (intent_name, intent) in &raw_intents.0 {
            if !is_identifier(&intent_name.value)
                || [NOINPUT, NOMATCH, DIGITS].contains(&intent_name.value.as_str())
            {
                self.error(
                    ErrorKind::InvalidName,
                    pos(intent_name),
                    format!("`{}` cannot be an intent name", intent_name.value),
                )
                .hint("use letters, digits, `_` and `-`; `noinput`, `nomatch` and `digits` are reserved");
                complete = false;
                continue;
            }
            let Some((dtmf, phrases)) =
                self.intent_selectors(intent_name, &intent.value, &mut key_owner)
            else {
                complete = false;
                continue;
            };
            if dtmf_in && !speech_in && intent.value.dtmf.is_none() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!("intent `{}` has no `dtmf` keys", intent_name.value),
                )
                .hint("e.g. `{ dtmf: [\"1\"] }`");
                complete = false;
                continue;
            }
            if speech_in && !dtmf_in && phrases.is_empty() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!("intent `{}` has no `phrases`", intent_name.value),
                )
                .hint("e.g. `{ phrases: { en: [yes], ru: [да] } }`");
                complete = false;
                continue;
            }
            if dtmf_in && speech_in && dtmf.is_empty() && phrases.is_empty() {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!(
                        "intent `{}` has neither `dtmf` nor `phrases`",
                        intent_name.value
                    ),
                );
                complete = false;
                continue;
            }
            if raw.digits.is_some()
                && let Some(k) = dtmf
                    .iter()
                    .find(|k| k.starts_with(|c: char| c.is_ascii_digit()))
            {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(intent_name),
                    format!(
                        "intent `{}` uses key `{k}`, but this `ask` collects digits",
                        intent_name.value
                    ),
                )
                .hint("next to `digits`, intent keys must start with `*` or `#`");
                complete = false;
                continue;
            }
            let say = intent
                .value
                .say
                .as_ref()
                .map(|p| self.prompts(p))
                .unwrap_or_default();
            let repeat = intent.value.repeat.as_ref().is_some_and(|r| r.value);
            let action = if repeat {
                if on.contains_key(&intent_name.value) {
                    self.error(
                        ErrorKind::Misplaced,
                        pos(intent_name),
                        format!(
                            "`{}` repeats the question; it has no target",
                            intent_name.value
                        ),
                    )
                    .hint(format!("remove `on.{}`", intent_name.value));
                    complete = false;
                    continue;
                }
                IntentAction::Repeat
            } else {
                let target = match on.get(intent_name.value.as_str()) {
                    Some(t) => t.map(|t| Jump::local(t, intent_name.value.clone())),
                    None => match default_next {
                        Some(t) => t.map(|t| Jump::local(t, "next")),
                        None => {
                            self.error(
                                ErrorKind::MissingHandler,
                                pos(intent_name),
                                format!("intent `{}` has no target", intent_name.value),
                            )
                            .hint(format!(
                                "add `{}: <node>` under the node's `on:` (or a `next:` for all intents)",
                                intent_name.value
                            ));
                            None
                        }
                    },
                };
                match target {
                    Some(j) => IntentAction::Goto(j),
                    None => {
                        complete = false;
                        continue;
                    }
                }
            };
            intents.push(Intent {
                name: intent_name.value.clone(),
                dtmf,
                phrases,
                say,
                action,
                global: false,
                pos: pos(intent_name),
            });
        }

        let store = match &raw.store {
            Some(var) => {
                let s = self.store_var(var, "`store` names");
                if s.as_deref() == Some("language") {
                    for intent in &intents {
                        if !self.languages.contains(&intent.name) {
                            let langs = self.languages.join(", ");
                            self.error(
                                ErrorKind::InvalidValue,
                                intent.pos,
                                format!(
                                    "intent `{}` would be stored as the language, but it is not in `languages`",
                                    intent.name
                                ),
                            )
                            .hint(format!("name the intents after the languages: {}", langs));
                            complete = false;
                        }
                    }
                }
                s
            }
            None => None,
        };

        // The digit string.
        let digits = match &raw.digits {
            None => None,
            Some(d) => {
                let min = d.value.min.as_ref().map_or(1, |m| m.value) as usize;
                let max = d.value.max.as_ref().map_or(20.max(min as u32), |m| m.value) as usize;
                if min == 0 {
                    self.error(
                        ErrorKind::InvalidValue,
                        d.value.min.as_ref().map_or(pos(d), pos),
                        "`min` must be at least 1",
                    );
                }
                if max < min || max > super::MAX_KEYS {
                    self.error(
                        ErrorKind::InvalidValue,
                        d.value.max.as_ref().map_or(pos(d), pos),
                        format!(
                            "`max` must be between `min` ({min}) and {}",
                            super::MAX_KEYS
                        ),
                    );
                }
                let terminator = match &d.value.terminator {
                    None => None,
                    Some(t) => {
                        let mut chars = t.value.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) if is_dtmf_key(c) && !c.is_ascii_digit() => Some(c),
                            _ => {
                                self.error(
                                    ErrorKind::InvalidDigits,
                                    pos(t),
                                    format!("`{}` is not a terminator key", t.value),
                                )
                                .hint("one of `#`, `*`, `A`-`D`, quoted: `terminator: \"#\"`");
                                None
                            }
                        }
                    }
                };
                if let Some(t) = terminator
                    && let Some(owner) = key_owner.get(&t.to_string())
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(d),
                        format!("terminator `{t}` is also the key of intent `{owner}`"),
                    );
                }
                let jump = self.on_or_next(&on, default_next, DIGITS, pos(name), || {
                    (
                        format!(
                            "the digit string of `ask` node `{}` has no target",
                            qualified
                        ),
                        "add `digits: <node>` under `on:` (or a `next:`)".to_string(),
                    )
                });
                match jump {
                    Some(jump) => Some(DigitString {
                        min,
                        max,
                        terminator,
                        jump,
                    }),
                    None => {
                        complete = false;
                        None
                    }
                }
            }
        };

        // Global intents that apply here.
        let selection: Option<Vec<String>> = match raw.globals.as_ref().map(|g| &g.value) {
            None | Some(RawGlobals::All(true)) => None,
            Some(RawGlobals::All(false)) => Some(Vec::new()),
            Some(RawGlobals::Only(names)) => {
                for n in names {
                    if !self.globals.iter().any(|g| &g.name == n) {
                        let at = raw.globals.as_ref().map_or(pos(ask), pos);
                        let known: Vec<String> =
                            self.globals.iter().map(|g| g.name.clone()).collect();
                        let hint = suggest(n, known.iter().map(String::as_str), "global intent");
                        self.error(
                            ErrorKind::UnknownTarget,
                            at,
                            format!("`{n}` is not a global intent"),
                        )
                        .hint(hint);
                    }
                }
                Some(names.clone())
            }
        };
        for g in self.globals.clone() {
            if selection.as_ref().is_some_and(|s| !s.contains(&g.name))
                || intents.iter().any(|i| !i.global && i.name == g.name)
            {
                continue;
            }
            let mut g = g;
            if digits.is_some() {
                g.dtmf
                    .retain(|k| !k.starts_with(|c: char| c.is_ascii_digit()));
            }
            if !dtmf_in {
                g.dtmf.clear();
            }
            if !speech_in {
                g.phrases.clear();
            }
            if g.dtmf.is_empty() && g.phrases.is_empty() {
                continue;
            }
            let mut clash = false;
            for k in &g.dtmf {
                if let Some(owner) = key_owner.get(k) {
                    let at = intents
                        .iter()
                        .find(|i| &i.name == owner)
                        .map_or(pos(name), |i| i.pos);
                    self.error(
                        ErrorKind::InvalidValue,
                        at,
                        format!(
                            "key `{k}` of intent `{owner}` is also the key of global intent `{}`",
                            g.name
                        ),
                    )
                    .hint(format!(
                        "name the local intent `{}` to override the global one, pick another key, or list the globals that apply with `globals: […]`",
                        g.name
                    ));
                    clash = true;
                }
            }
            if clash {
                complete = false;
                continue;
            }
            intents.push(g);
        }

        let confirm = match &raw.confirm {
            None => None,
            Some(cf) => {
                if !speech_in {
                    self.error(
                        ErrorKind::Misplaced,
                        pos(cf),
                        "`confirm` applies to speech, but this `ask` takes no speech",
                    )
                    .hint("add `input: [dtmf, speech]`");
                }
                let min = match &cf.value.min {
                    Some(m) if !(0.0..=1.0).contains(&m.value) => {
                        self.error(
                            ErrorKind::InvalidValue,
                            pos(m),
                            format!("`min` {} is not between 0 and 1", m.value),
                        );
                        0.2
                    }
                    Some(m) => m.value as f32,
                    None => 0.2,
                };
                Some(Confirm {
                    min,
                    prompt: self.prompts(&cf.value.prompt),
                    question: cf
                        .value
                        .question
                        .as_ref()
                        .map(|q| self.prompts(q))
                        .unwrap_or_default(),
                })
            }
        };

        let handler_pos = node.on.as_ref().map_or(pos(name), pos);
        let handler = |c: &mut Self,
                       key: &str|
         -> (Option<Jump>, Option<&'a Spanned<RawEscalation>>) {
            match on.get(key) {
                Some(t) => (t.map(|t| Jump::local(t, key)), None),
                None => {
                    let global = if key == NOINPUT {
                        c.global_noinput.clone()
                    } else {
                        c.global_nomatch.clone()
                    };
                    match global {
                        Some((j, block)) => (Some(j), block),
                        None => {
                            c.error(
                                ErrorKind::MissingHandler,
                                handler_pos,
                                format!("`ask` node `{}` does not handle `{key}`", qualified),
                            )
                            .hint(format!(
                                "add `{key}: <node>` under `on:` — where to go when the retries run out"
                            ));
                            (None, None)
                        }
                    }
                }
            }
        };
        let (noinput_target, noinput_global) = handler(self, NOINPUT);
        let (nomatch_target, nomatch_global) = handler(self, NOMATCH);
        let noinput = self.escalation(raw.noinput.as_ref().or(noinput_global), noinput_target);
        let nomatch = self.escalation(raw.nomatch.as_ref().or(nomatch_global), nomatch_target);

        if !complete {
            return None;
        }
        Some(NodeKind::Ask(Box::new(Ask {
            prompt,
            inputs,
            timeout,
            interdigit_timeout,
            term_timeout,
            complete_timeout,
            incomplete_timeout,
            max_speech_timeout,
            barge_in: raw.barge_in.unwrap_or(true),
            intents,
            digits,
            confidence,
            confirm,
            store,
            noinput: noinput?,
            nomatch: nomatch?,
        })))
    }

    /// Reports sub-dialogues that call each other in a cycle.
    fn recursion(&mut self) {
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
    fn zero_time_loops(&mut self, nodes: &[Node]) {
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

impl super::raw::RawWebhook {
    fn webhook_name(&self) -> Option<String> {
        self.name.as_ref().map(|n| n.value.clone())
    }
}
