//! Pictures of a scenario: Graphviz DOT and Mermaid flowcharts of the compiled graph.
//!
//! Nodes are labelled with their name and kind (and an `ask`'s or `webhook`'s essentials);
//! edges with the key that declares them (`confirm`, `noinput`, `if 'total > 1000'`, …;
//! plain `next` edges are unlabelled). Sub-dialogues are drawn as clusters (DOT) or
//! subgraphs (Mermaid); global handlers hang off one "any question" node. Terminal nodes
//! (`hangup`, `transfer`) have their own shape. Every way a call can end is drawn: a
//! transfer's `connected` edge leads to an end marker with the outcome it records, and with
//! `amd:` the start marker has a `human` edge to `start` and a `machine` edge to
//! `on_machine` (or to an "answering machine: hang up" end).
//!
//! Deliberately not here: layout (Graphviz or the Mermaid renderer do that) and running
//! `dot` to make SVG/PNG (the CLI does, if Graphviz is installed).

use std::fmt::Write;

use super::{IntentAction, Jump, Node, NodeKind, Scenario};

/// The outcome of a call hung up on an answering machine (`amd: { on_machine: hangup }`).
const AMD_OUTCOME: &str = "answering_machine";

/// How an edge is labelled in a picture.
fn edge_label(node: &Node, jump: &Jump) -> String {
    if let NodeKind::Branch { arms, .. } = &node.kind
        && let Some(i) = jump
            .key
            .strip_prefix("if.")
            .and_then(|n| n.parse::<usize>().ok())
        && let Some((cond, _)) = arms.get(i.wrapping_sub(1))
    {
        return format!("if {}", cond.source());
    }
    match jump.key.as_str() {
        "next" | "goto" => String::new(),
        k => k
            .strip_prefix("case.")
            .map_or_else(|| k.to_string(), |v| format!("= {v}")),
    }
}

fn detail(scenario: &Scenario, node: &Node) -> String {
    match &node.kind {
        NodeKind::Ask(ask) => {
            let mut parts = Vec::new();
            let locals: Vec<&str> = ask
                .intents
                .iter()
                .filter(|i| !i.global)
                .map(|i| i.name.as_str())
                .collect();
            if !locals.is_empty() {
                parts.push(locals.join(" | "));
            }
            if let Some(d) = &ask.digits {
                parts.push(format!("{}-{} digits", d.min, d.max));
            }
            parts.join(", ")
        }
        NodeKind::Webhook(w) => w.name.clone().unwrap_or_default(),
        NodeKind::Transfer(t) => t.target.source().to_string(),
        NodeKind::Notify { event, .. } => event.clone(),
        NodeKind::Hangup { outcome, .. } => outcome.clone().unwrap_or_default(),
        NodeKind::Call { sub, .. } => scenario
            .subdialogs
            .get(*sub)
            .map_or_else(String::new, |s| s.name.clone()),
        NodeKind::Return { value } => value.clone(),
        NodeKind::Switch { value, .. } => value.source().to_string(),
        _ => String::new(),
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn dot_shape(node: &Node) -> &'static str {
    match node.kind {
        NodeKind::Ask(_) => "box, style=\"rounded,bold\"",
        NodeKind::Hangup { .. } => "doubleoctagon",
        NodeKind::Transfer(_) => "house",
        NodeKind::Branch { .. } | NodeKind::Switch { .. } => "diamond",
        NodeKind::Webhook(_) | NodeKind::Notify { .. } => "parallelogram",
        NodeKind::Record(_) => "cylinder",
        NodeKind::Call { .. } => "box, peripheries=2",
        NodeKind::Return { .. } => "invhouse",
        _ => "box",
    }
}

/// The scenario as a Graphviz digraph.
pub fn to_dot(scenario: &Scenario) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&scenario.name));
    let _ = writeln!(out, "  rankdir=TB;");
    let _ = writeln!(out, "  node [fontname=\"Helvetica\", fontsize=11];");
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=9];");
    let _ = writeln!(
        out,
        "  start [shape=circle, label=\"\", width=0.2, style=filled, fillcolor=black];"
    );
    let node_line = |out: &mut String, i: usize, node: &Node, indent: &str| {
        let d = detail(scenario, node);
        let label = if d.is_empty() {
            format!("{}\\n({})", dot_escape(&node.name), node.kind_name())
        } else {
            format!(
                "{}\\n({}: {})",
                dot_escape(&node.name),
                node.kind_name(),
                dot_escape(&d)
            )
        };
        let _ = writeln!(
            out,
            "{indent}n{i} [shape={}, label=\"{label}\"];",
            dot_shape(node)
        );
    };
    for (i, node) in scenario.nodes.iter().enumerate() {
        if node.sub.is_none() {
            node_line(&mut out, i, node, "  ");
        }
    }
    for (s, sub) in scenario.subdialogs.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{s} {{");
        let _ = writeln!(
            out,
            "    label=\"sub-dialogue {}\"; style=dashed;",
            dot_escape(&sub.name)
        );
        for (i, node) in scenario.nodes.iter().enumerate() {
            if node.sub == Some(s) {
                node_line(&mut out, i, node, "    ");
            }
        }
        let _ = writeln!(out, "  }}");
    }
    match &scenario.amd {
        None => {
            let _ = writeln!(out, "  start -> n{};", scenario.start.0);
        }
        Some(amd) => {
            let _ = writeln!(out, "  start -> n{} [label=\"human\"];", scenario.start.0);
            let machine = match &amd.on_machine {
                Some(j) => format!("n{}", j.target.0),
                None => {
                    let _ = writeln!(
                        out,
                        "  amd_end [shape=doubleoctagon, label=\"hang up\\n({})\"];",
                        AMD_OUTCOME
                    );
                    "amd_end".to_string()
                }
            };
            let _ = writeln!(
                out,
                "  start -> {machine} [style=dashed, label=\"machine\"];"
            );
        }
    }
    for (i, node) in scenario.nodes.iter().enumerate() {
        if let NodeKind::Transfer(t) = &node.kind {
            let _ = writeln!(
                out,
                "  c{i} [shape=doubleoctagon, style=dashed, label=\"agent connected\\n({})\"];",
                dot_escape(&t.outcome)
            );
            let _ = writeln!(out, "  n{i} -> c{i} [label=\"connected\"];");
        }
    }
    for (i, node) in scenario.nodes.iter().enumerate() {
        if let NodeKind::Call { sub, .. } = &node.kind
            && let Some(s) = scenario.subdialogs.get(*sub)
        {
            let _ = writeln!(
                out,
                "  n{i} -> n{} [style=dashed, label=\"call\"];",
                s.start.0
            );
        }
        for jump in node.edges() {
            let label = edge_label(node, jump);
            let failure = matches!(
                jump.key.as_str(),
                "noinput" | "nomatch" | "error" | "empty" | "busy" | "noanswer" | "failed"
            );
            let mut attrs = Vec::new();
            if !label.is_empty() {
                attrs.push(format!("label=\"{}\"", dot_escape(&label)));
            }
            if failure {
                attrs.push("color=gray40, fontcolor=gray40".to_string());
            }
            if attrs.is_empty() {
                let _ = writeln!(out, "  n{i} -> n{};", jump.target.0);
            } else {
                let _ = writeln!(out, "  n{i} -> n{} [{}];", jump.target.0, attrs.join(", "));
            }
        }
    }
    let globals: Vec<(String, &Jump)> = scenario
        .globals
        .iter()
        .filter_map(|g| match &g.action {
            IntentAction::Goto(j) => Some((g.name.clone(), j)),
            IntentAction::Repeat => None,
        })
        .chain(
            scenario
                .global_noinput
                .iter()
                .map(|j| ("noinput".to_string(), j)),
        )
        .chain(
            scenario
                .global_nomatch
                .iter()
                .map(|j| ("nomatch".to_string(), j)),
        )
        .collect();
    if !globals.is_empty() {
        let _ = writeln!(
            out,
            "  global [shape=note, label=\"any question\\n(global)\"];"
        );
        for (name, j) in globals {
            let _ = writeln!(
                out,
                "  global -> n{} [style=dotted, label=\"{}\"];",
                j.target.0,
                dot_escape(&name)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('|', "#124;")
}

fn mermaid_node(scenario: &Scenario, i: usize, node: &Node) -> String {
    let d = detail(scenario, node);
    let text = if d.is_empty() {
        format!("{}<br/>{}", mermaid_text(&node.name), node.kind_name())
    } else {
        format!(
            "{}<br/>{}: {}",
            mermaid_text(&node.name),
            node.kind_name(),
            mermaid_text(&d)
        )
    };
    match node.kind {
        NodeKind::Ask(_) => format!("n{i}([\"{text}\"])"),
        NodeKind::Hangup { .. } => format!("n{i}[[\"{text}\"]]"),
        NodeKind::Transfer(_) => format!("n{i}>\"{text}\"]"),
        NodeKind::Branch { .. } | NodeKind::Switch { .. } => format!("n{i}{{\"{text}\"}}"),
        NodeKind::Webhook(_) | NodeKind::Notify { .. } => format!("n{i}[/\"{text}\"/]"),
        NodeKind::Record(_) => format!("n{i}[(\"{text}\")]"),
        _ => format!("n{i}[\"{text}\"]"),
    }
}

/// The scenario as a Mermaid flowchart.
pub fn to_mermaid(scenario: &Scenario) -> String {
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(out, "  start((start))");
    for (i, node) in scenario.nodes.iter().enumerate() {
        if node.sub.is_none() {
            let _ = writeln!(out, "  {}", mermaid_node(scenario, i, node));
        }
    }
    for (s, sub) in scenario.subdialogs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph sub{s}[\"sub-dialogue {}\"]",
            mermaid_text(&sub.name)
        );
        for (i, node) in scenario.nodes.iter().enumerate() {
            if node.sub == Some(s) {
                let _ = writeln!(out, "    {}", mermaid_node(scenario, i, node));
            }
        }
        let _ = writeln!(out, "  end");
    }
    match &scenario.amd {
        None => {
            let _ = writeln!(out, "  start --> n{}", scenario.start.0);
        }
        Some(amd) => {
            let _ = writeln!(out, "  start -->|human| n{}", scenario.start.0);
            let machine = match &amd.on_machine {
                Some(j) => format!("n{}", j.target.0),
                None => {
                    let _ = writeln!(out, "  amd_end[[\"hang up ({AMD_OUTCOME})\"]]");
                    "amd_end".to_string()
                }
            };
            let _ = writeln!(out, "  start -.->|machine| {machine}");
        }
    }
    for (i, node) in scenario.nodes.iter().enumerate() {
        if let NodeKind::Transfer(t) = &node.kind {
            let _ = writeln!(
                out,
                "  c{i}[[\"agent connected<br/>{}\"]]",
                mermaid_text(&t.outcome)
            );
            let _ = writeln!(out, "  n{i} -->|connected| c{i}");
        }
    }
    for (i, node) in scenario.nodes.iter().enumerate() {
        if let NodeKind::Call { sub, .. } = &node.kind
            && let Some(s) = scenario.subdialogs.get(*sub)
        {
            let _ = writeln!(out, "  n{i} -.->|call| n{}", s.start.0);
        }
        for jump in node.edges() {
            let label = edge_label(node, jump);
            if label.is_empty() {
                let _ = writeln!(out, "  n{i} --> n{}", jump.target.0);
            } else {
                let _ = writeln!(
                    out,
                    "  n{i} -->|\"{}\"| n{}",
                    mermaid_text(&label),
                    jump.target.0
                );
            }
        }
    }
    let globals: Vec<(String, &Jump)> = scenario
        .globals
        .iter()
        .filter_map(|g| match &g.action {
            IntentAction::Goto(j) => Some((g.name.clone(), j)),
            IntentAction::Repeat => None,
        })
        .chain(
            scenario
                .global_noinput
                .iter()
                .map(|j| ("noinput".to_string(), j)),
        )
        .chain(
            scenario
                .global_nomatch
                .iter()
                .map(|j| ("nomatch".to_string(), j)),
        )
        .collect();
    if !globals.is_empty() {
        let _ = writeln!(out, "  global>\"any question (global)\"]");
        for (name, j) in globals {
            let _ = writeln!(
                out,
                "  global -.->|\"{}\"| n{}",
                mermaid_text(&name),
                j.target.0
            );
        }
    }
    out
}
