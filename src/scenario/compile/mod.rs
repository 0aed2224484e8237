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
//!
//! This file drives the compilation ([`compile`]: declarations, name spaces, every node,
//! then the whole-scenario checks) and dispatches each node to the file of its kind:
//! `play`, `ask/`, `set`, `branch` (with `goto` and `switch`), `hangup`, `record`,
//! `webhook`, `transfer`, `notify` (with `sms`), `call` (with `return`). What they share is
//! in `core.rs` (diagnostics, targets, variables, templates, expressions), `declare.rs`
//! (languages, variables, parameters), `prompts.rs` (prompt lists), `intent.rs` (one
//! intent, local or global), `global.rs`, `amd.rs`, and `checks.rs` (recursion, loops that
//! never wait, the transfer allow-list).
//!
//! Deliberately not here: warnings and checks that need more than the file (the linter),
//! or running anything.

mod amd;
mod ask;
mod branch;
mod call;
mod checks;
mod core;
mod declare;
mod global;
mod hangup;
mod intent;
mod notify;
mod play;
mod prompts;
mod record;
mod set;
mod transfer;
mod webhook;

use std::collections::{BTreeMap, HashMap};

use serde_saphyr::Spanned;

pub(crate) use self::core::closest;
use self::core::{is_identifier, pos};
pub(crate) use self::notify::KNOWN_EVENTS;
use crate::scenario::error::{Diagnostic, ErrorKind};
use crate::scenario::raw::{Named, OrderedMap, RawEscalation, RawNode, RawScenario};
use crate::scenario::{
    Intent, Jump, LANGUAGE_VERSION, Node, NodeId, NodeKind, Scenario, SourcePos, SubId, Subdialog,
    Variable,
};

/// `on:` keys of an `ask` that are not intent names.
const NOINPUT: &str = "noinput";
const NOMATCH: &str = "nomatch";
const DIGITS: &str = "digits";

/// One name space of nodes.
#[derive(Default)]
struct Space<'a> {
    ids: HashMap<&'a str, NodeId>,
    names: Vec<&'a str>,
}

/// One compilation: what has been declared so far, and what has been reported. Its methods
/// live in the file of what they compile.
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
    /// Intents declared under `global:`, compiled once; each `ask` copies those that apply.
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
    let events = c.declared_events(&raw);
    let acknowledged_synthetic = c.acknowledged(&raw);
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
            events,
            acknowledged_synthetic,
        }),
        _ => Err(c.diags),
    }
}

impl<'a> Compiler<'a> {
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
        // The node-level keys each kind accepts besides its action.
        let allowed: &[&str] = match kind {
            "play" | "set" | "sms" | "notify" => &["next"],
            "ask" | "record" | "webhook" | "transfer" => &["next", "on"],
            "branch" => &["else"],
            "call" => &["next", "on", "with"],
            _ => &[],
        };
        self.check_keys(node, kind, allowed);
        match kind {
            "play" => self.play(name, node),
            "set" => self.set(name, node),
            "goto" => self.goto(node),
            "hangup" => self.hangup(node),
            "ask" => self.ask(name, node),
            "branch" => self.branch(name, node),
            "switch" => self.switch(node),
            "record" => self.record(name, node),
            "webhook" => self.webhook(name, node),
            "transfer" => self.transfer(name, node),
            "sms" | "notify" => self.notify(name, node, kind),
            "call" => self.call(name, node),
            _ => self.ret(node),
        }
    }
}
