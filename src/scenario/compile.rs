//! Raw YAML model → validated [`Scenario`].
//!
//! Checks are collected, not short-circuited: a file with three dangling targets and an
//! undeclared variable reports all four. Each check points at the YAML node that has to
//! change.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_saphyr::Spanned;

use super::error::{Diagnostic, ErrorKind};
use super::raw::{
    Named, PromptList, RawAsk, RawEscalation, RawHangup, RawInputMode, RawNode, RawPromptItem,
    RawScenario, RawVarType,
};
use super::{
    Ask, DEFAULT_INTERDIGIT_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, Escalation,
    FALLBACK_LANGUAGE, InputMode, Intent, LANGUAGE_VERSION, Node, NodeId, NodeKind, PromptItem,
    PromptKind, Scenario, SourcePos, Template, VarType, Variable, parse_duration,
    validate_prompt_name,
};

/// `on:` keys that are not intent names.
const NOINPUT: &str = "noinput";
const NOMATCH: &str = "nomatch";

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
fn suggest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>, what: &str) -> String {
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

struct Compiler<'a> {
    diags: Vec<Diagnostic>,
    node_ids: HashMap<&'a str, NodeId>,
    node_names: Vec<&'a str>,
    variables: BTreeMap<String, Variable>,
}

pub(crate) fn compile(file: &str, raw: RawScenario) -> Result<Scenario, Vec<Diagnostic>> {
    let mut c = Compiler {
        diags: Vec::new(),
        node_ids: HashMap::new(),
        node_names: Vec::new(),
        variables: BTreeMap::new(),
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

    let languages = c.languages(&raw);
    c.declare_variables(&raw, &languages);

    // Node names first, so targets can be resolved in any order.
    for (i, (name, _)) in raw.nodes.value.0.iter().enumerate() {
        if !is_identifier(&name.value) {
            c.error(
                ErrorKind::InvalidName,
                pos(name),
                format!("node name `{}` is not a valid name", name.value),
            )
            .hint("use letters, digits, `_` and `-`");
        }
        let id = NodeId(u32::try_from(i).unwrap_or(u32::MAX));
        c.node_ids.insert(name.value.as_str(), id);
        c.node_names.push(name.value.as_str());
    }
    if raw.nodes.value.0.is_empty() {
        c.error(
            ErrorKind::InvalidValue,
            pos(&raw.nodes),
            "the scenario has no nodes",
        );
    }

    let start = c.target(&raw.start, "start node");

    let mut nodes = Vec::with_capacity(raw.nodes.value.0.len());
    for (name, node) in &raw.nodes.value.0 {
        if let Some(kind) = c.node(name, &node.value) {
            nodes.push(Node {
                name: name.value.clone(),
                pos: pos(name),
                outcome: node.value.outcome.as_ref().and_then(|o| c.outcome(o)),
                kind,
            });
        }
    }

    if c.diags.is_empty() {
        c.zero_time_loops(&nodes);
    }

    match (c.diags.is_empty(), start) {
        (true, Some(start)) => Ok(Scenario {
            name,
            description: raw.description,
            file: file.to_string(),
            languages,
            variables: c.variables,
            start,
            nodes,
        }),
        _ => Err(c.diags),
    }
}

impl<'a> Compiler<'a> {
    fn error(
        &mut self,
        kind: ErrorKind,
        at: SourcePos,
        message: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic::new(kind, at, message));
        self.diags.last_mut().expect("just pushed")
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

    fn declare_variables(&mut self, raw: &RawScenario, languages: &[String]) {
        if let Some(vars) = &raw.variables {
            for (name, decl) in &vars.0 {
                if !super::is_variable_name(&name.value) {
                    self.error(
                        ErrorKind::InvalidName,
                        pos(name),
                        format!("variable name `{}` is not a valid name", name.value),
                    )
                    .hint("use letters, digits and `_`, not starting with a digit");
                    continue;
                }
                let ty = match decl.value.ty {
                    None | Some(RawVarType::String) => VarType::String,
                    Some(RawVarType::Digits) => VarType::Digits,
                };
                let default = decl.value.default.as_ref();
                if let (VarType::Digits, Some(d)) = (ty, default)
                    && !d.value.chars().all(|c| c.is_ascii_digit())
                {
                    self.error(
                        ErrorKind::InvalidDigits,
                        pos(d),
                        format!(
                            "default of digits variable `{}` contains non-digits",
                            name.value
                        ),
                    )
                    .hint("a `digits` value may contain only 0-9");
                }
                if name.value == "language"
                    && let Some(d) = default
                    && !languages.contains(&d.value)
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(d),
                        format!("default language `{}` is not in `languages`", d.value),
                    )
                    .hint(format!("languages: [{}]", languages.join(", ")));
                }
                self.variables.insert(
                    name.value.clone(),
                    Variable {
                        name: name.value.clone(),
                        ty,
                        default: default.map(|d| d.value.clone()).unwrap_or_else(|| {
                            if name.value == "language" {
                                languages[0].clone()
                            } else {
                                String::new()
                            }
                        }),
                        description: decl.value.description.clone(),
                        pos: Some(pos(name)),
                    },
                );
            }
        }
        self.variables
            .entry("language".to_string())
            .or_insert_with(|| Variable {
                name: "language".to_string(),
                ty: VarType::String,
                default: languages[0].clone(),
                description: Some("prompt language (implicit)".to_string()),
                pos: None,
            });
    }

    fn target(&mut self, name: &Spanned<String>, what: &str) -> Option<NodeId> {
        if let Some(id) = self.node_ids.get(name.value.as_str()) {
            return Some(*id);
        }
        let hint = suggest(&name.value, self.node_names.clone(), "node");
        self.error(
            ErrorKind::UnknownTarget,
            pos(name),
            format!("{what} `{}` is not a node of this scenario", name.value),
        )
        .hint(hint);
        None
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

    /// A `${…}` template whose variables are all declared.
    fn template(&mut self, text: &Spanned<String>) -> Option<Template> {
        let template = match Template::parse(&text.value) {
            Ok(t) => t,
            Err(e) => {
                self.error(ErrorKind::Template, pos(text), e.message)
                    .hint("write `${name}` for a variable, `$$` for a literal `$`");
                return None;
            }
        };
        let mut ok = true;
        let undeclared: Vec<String> = template
            .variables()
            .filter(|v| !self.variables.contains_key(*v))
            .map(str::to_string)
            .collect();
        for var in undeclared {
            ok = false;
            let hint = suggest(&var, self.variables.keys().map(String::as_str), "variable");
            self.error(
                ErrorKind::UndeclaredVariable,
                pos(text),
                format!("`${{{var}}}` refers to an undeclared variable"),
            )
            .hint(format!("{hint}; declare variables under `variables:`"));
        }
        ok.then_some(template)
    }

    fn prompts(&mut self, list: &PromptList) -> Vec<PromptItem> {
        let mut out = Vec::with_capacity(list.value.len());
        for item in &list.value {
            let at = pos(item);
            let (kind, barge_in) = match &item.value {
                RawPromptItem::Name(name) => {
                    let spanned = Spanned::new(name.clone(), item.referenced, item.defined);
                    (self.recording(&spanned), None)
                }
                RawPromptItem::Map(map) => {
                    let kind = match (&map.prompt, &map.digits) {
                        (Some(name), None) => self.recording(name),
                        (None, Some(digits)) => self.digits(digits),
                        (None, None) => {
                            self.error(
                                ErrorKind::InvalidValue,
                                at,
                                "prompt item has neither `prompt` nor `digits`",
                            )
                            .hint("e.g. `{ prompt: hello, barge_in: false }` or `{ digits: \"${order_id}\" }`");
                            None
                        }
                        (Some(_), Some(digits)) => {
                            self.error(
                                ErrorKind::InvalidValue,
                                pos(digits),
                                "prompt item has both `prompt` and `digits`",
                            )
                            .hint("split it into two items");
                            None
                        }
                    };
                    (kind, map.barge_in)
                }
            };
            if let Some(kind) = kind {
                out.push(PromptItem {
                    kind,
                    barge_in,
                    pos: at,
                });
            }
        }
        out
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

    fn duration(
        &mut self,
        value: Option<&Spanned<String>>,
        default: Duration,
        key: &str,
    ) -> Duration {
        let Some(value) = value else {
            return default;
        };
        match parse_duration(&value.value) {
            Ok(d) if d.is_zero() => {
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

    /// Checks that `key` (if present) is not used on a node of `kind`.
    fn forbid<T>(&mut self, value: &Option<Spanned<T>>, key: &str, kind: &str, hint: &str) {
        if let Some(v) = value {
            self.error(
                ErrorKind::Misplaced,
                pos(v),
                format!("`{key}` is not allowed on a `{kind}` node"),
            )
            .hint(hint.to_string());
        }
    }

    fn node(&mut self, name: &Spanned<String>, node: &RawNode) -> Option<NodeKind> {
        let actions: Vec<&str> = [
            ("play", node.play.is_some()),
            ("ask", node.ask.is_some()),
            ("set", node.set.is_some()),
            ("goto", node.goto.is_some()),
            ("hangup", node.hangup.is_some()),
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
                .hint("give it one of `play`, `ask`, `set`, `goto`, `hangup` (e.g. `hangup: {}`)");
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

        if let Some(list) = &node.play {
            self.forbid(
                &node.on,
                "on",
                "play",
                "`on` belongs to `ask` nodes; use `next`",
            );
            let prompts = self.prompts(list);
            if list.value.is_empty() {
                self.error(ErrorKind::InvalidValue, pos(list), "`play` list is empty");
            }
            let next = self.required_next(name, node, "play");
            return Some(NodeKind::Play {
                prompts,
                next: next?,
            });
        }
        if let Some(assign) = &node.set {
            self.forbid(
                &node.on,
                "on",
                "set",
                "`on` belongs to `ask` nodes; use `next`",
            );
            let mut out = Vec::new();
            for (var, value) in &assign.value.0 {
                let Some(decl) = self.variables.get(&var.value) else {
                    let hint = suggest(
                        &var.value,
                        self.variables.keys().map(String::as_str),
                        "variable",
                    );
                    self.error(
                        ErrorKind::UndeclaredVariable,
                        pos(var),
                        format!("`set` assigns undeclared variable `{}`", var.value),
                    )
                    .hint(format!("{hint}; declare variables under `variables:`"));
                    continue;
                };
                let ty = decl.ty;
                if let Some(template) = self.template(value) {
                    if ty == VarType::Digits
                        && let Some(lit) = template.as_literal()
                        && !lit.chars().all(|c| c.is_ascii_digit())
                    {
                        self.error(
                            ErrorKind::InvalidDigits,
                            pos(value),
                            format!(
                                "`{lit}` is not digits, but `{}` is a digits variable",
                                var.value
                            ),
                        );
                    }
                    out.push((var.value.clone(), template));
                }
            }
            let next = self.required_next(name, node, "set");
            return Some(NodeKind::Set {
                assign: out,
                next: next?,
            });
        }
        if let Some(target) = &node.goto {
            self.forbid(
                &node.next,
                "next",
                "goto",
                "a `goto` node already names its target",
            );
            self.forbid(
                &node.on,
                "on",
                "goto",
                "a `goto` node already names its target",
            );
            let target = self.target(target, "goto target")?;
            return Some(NodeKind::Goto { target });
        }
        if let Some(hangup) = &node.hangup {
            self.forbid(
                &node.next,
                "next",
                "hangup",
                "a `hangup` node ends the call",
            );
            self.forbid(&node.on, "on", "hangup", "a `hangup` node ends the call");
            return self.hangup(&hangup.value);
        }
        if let Some(ask) = &node.ask {
            return self.ask(name, node, ask);
        }
        None
    }

    fn required_next(
        &mut self,
        name: &Spanned<String>,
        node: &RawNode,
        kind: &str,
    ) -> Option<NodeId> {
        match &node.next {
            Some(next) => self.target(next, "`next` target"),
            None => {
                self.error(
                    ErrorKind::MissingHandler,
                    pos(name),
                    format!("`{kind}` node `{}` has no `next`", name.value),
                )
                .hint("add `next: <node>`; to end the call go to a `hangup` node");
                None
            }
        }
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

    fn escalation(
        &mut self,
        raw: Option<&Spanned<RawEscalation>>,
        target: Option<NodeId>,
    ) -> Option<Escalation> {
        let max = raw.and_then(|r| r.value.max).unwrap_or(DEFAULT_MAX_RETRIES);
        let reprompts = raw
            .and_then(|r| r.value.reprompt.as_ref())
            .map(|lists| lists.iter().map(|l| self.prompts(l)).collect())
            .unwrap_or_default();
        Some(Escalation {
            max,
            reprompts,
            target: target?,
        })
    }

    fn ask(
        &mut self,
        name: &Spanned<String>,
        node: &RawNode,
        ask: &Spanned<RawAsk>,
    ) -> Option<NodeKind> {
        let raw: &RawAsk = &ask.value;
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
                        .hint("write `input: [dtmf]`");
                }
                for mode in &list.value {
                    match mode.value {
                        RawInputMode::Dtmf => {
                            if !inputs.contains(&InputMode::Dtmf) {
                                inputs.push(InputMode::Dtmf);
                            }
                        }
                        RawInputMode::Speech => {
                            self.error(
                                ErrorKind::Unsupported,
                                pos(mode),
                                "speech input is not supported by this version",
                            )
                            .hint("use `input: [dtmf]` for now");
                        }
                    }
                }
            }
        }

        let timeout = self.duration(raw.timeout.as_ref(), DEFAULT_TIMEOUT, "timeout");
        let interdigit_timeout = self.duration(
            raw.interdigit_timeout.as_ref(),
            DEFAULT_INTERDIGIT_TIMEOUT,
            "interdigit_timeout",
        );

        // `on:` entries by key; each must name an intent, `noinput` or `nomatch`.
        let empty: Named<String> = super::raw::OrderedMap(Vec::new());
        let on = node.on.as_ref().map_or(&empty, |o| &o.value);
        let intent_names: Vec<&str> = raw
            .intents
            .value
            .0
            .iter()
            .map(|(n, _)| n.value.as_str())
            .collect();
        let mut on_targets: HashMap<&str, Option<NodeId>> = HashMap::new();
        for (key, target) in &on.0 {
            let known = key.value == NOINPUT
                || key.value == NOMATCH
                || intent_names.contains(&key.value.as_str());
            if !known {
                let candidates = intent_names.iter().copied().chain([NOINPUT, NOMATCH]);
                let hint = suggest(&key.value, candidates, "`on` key");
                self.error(
                    ErrorKind::Misplaced,
                    pos(key),
                    format!("`on.{}` names no intent of this `ask`", key.value),
                )
                .hint(hint);
                continue;
            }
            let id = self.target(target, &format!("`on.{}` target", key.value));
            on_targets.insert(key.value.as_str(), id);
        }
        let default_next = node.next.as_ref().map(|n| self.target(n, "`next` target"));

        // Intents and their keys.
        if raw.intents.value.0.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(&raw.intents),
                "`intents` is empty",
            )
            .hint("e.g. `intents: { confirm: { dtmf: [\"1\"] } }`");
        }
        let mut intents = Vec::new();
        let mut key_owner: HashMap<String, String> = HashMap::new();
        let mut complete = true;
        for (intent_name, intent) in &raw.intents.value.0 {
            if !is_identifier(&intent_name.value)
                || intent_name.value == NOINPUT
                || intent_name.value == NOMATCH
            {
                self.error(
                    ErrorKind::InvalidName,
                    pos(intent_name),
                    format!("`{}` cannot be an intent name", intent_name.value),
                )
                .hint("use letters, digits, `_` and `-`; `noinput` and `nomatch` are reserved");
                complete = false;
                continue;
            }
            let mut dtmf = Vec::new();
            match &intent.value.dtmf {
                None => {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(intent_name),
                        format!("intent `{}` has no `dtmf` keys", intent_name.value),
                    )
                    .hint("e.g. `{ dtmf: [\"1\"] }`");
                    complete = false;
                }
                Some(keys) => {
                    if keys.value.is_empty() {
                        self.error(
                            ErrorKind::InvalidValue,
                            pos(keys),
                            format!("intent `{}` has an empty `dtmf` list", intent_name.value),
                        );
                        complete = false;
                    }
                    for key in &keys.value {
                        if key.value.is_empty() || !key.value.chars().all(is_dtmf_key) {
                            self.error(
                                ErrorKind::InvalidDigits,
                                pos(key),
                                format!("`{}` is not a DTMF key sequence", key.value),
                            )
                            .hint("keys are 0-9, *, # and A-D; quote them: `[\"1\"]`, `[\"*0\"]`");
                            complete = false;
                        } else if let Some(owner) = key_owner.get(&key.value) {
                            let owner = owner.clone();
                            self.error(
                                ErrorKind::InvalidValue,
                                pos(key),
                                format!("key `{}` is already used by intent `{owner}`", key.value),
                            );
                            complete = false;
                        } else {
                            key_owner.insert(key.value.clone(), intent_name.value.clone());
                            dtmf.push(key.value.clone());
                        }
                    }
                }
            }
            let target = match on_targets.get(intent_name.value.as_str()) {
                Some(t) => *t,
                None => match default_next {
                    Some(t) => t,
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
                Some(target) => intents.push(Intent {
                    name: intent_name.value.clone(),
                    dtmf,
                    target,
                }),
                None => complete = false,
            }
        }

        let handler_pos = node.on.as_ref().map_or(pos(name), pos);
        let handler = |c: &mut Self, key: &str| -> Option<NodeId> {
            match on_targets.get(key) {
                Some(t) => *t,
                None => {
                    c.error(
                        ErrorKind::MissingHandler,
                        handler_pos,
                        format!("`ask` node `{}` does not handle `{key}`", name.value),
                    )
                    .hint(format!(
                        "add `{key}: <node>` under `on:` — where to go when the retries run out"
                    ));
                    None
                }
            }
        };
        let noinput_target = handler(self, NOINPUT);
        let nomatch_target = handler(self, NOMATCH);
        let noinput = self.escalation(raw.noinput.as_ref(), noinput_target);
        let nomatch = self.escalation(raw.nomatch.as_ref(), nomatch_target);

        if !complete {
            return None;
        }
        Some(NodeKind::Ask(Box::new(Ask {
            prompt,
            inputs,
            timeout,
            interdigit_timeout,
            barge_in: raw.barge_in.unwrap_or(true),
            intents,
            noinput: noinput?,
            nomatch: nomatch?,
        })))
    }

    /// Reports cycles made only of `set` and `goto` nodes: entering one would spin forever
    /// without playing anything or waiting for the caller.
    fn zero_time_loops(&mut self, nodes: &[Node]) {
        let zero_time_next = |id: NodeId| -> Option<NodeId> {
            match &nodes.get(id.index())?.kind {
                NodeKind::Set { next, .. } => Some(*next),
                NodeKind::Goto { target } => Some(*target),
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
                            .map(|id: &NodeId| nodes[id.index()].name.as_str())
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
