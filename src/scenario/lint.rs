//! The linter behind `ivrflow validate`: checks a compiled scenario against the graph as a
//! whole and against the audio on disk.
//!
//! - **Graph**: nodes no call can reach (warning), and nodes from which no path leads to the
//!   end of the call — a dead end, or a loop without exit — (error). Sub-dialogue calls are
//!   followed: a `return` continues at every call site's target for that value.
//! - **Prompts**: every recording a prompt item names, in every language of the scenario,
//!   must exist in the prompt cache (error); say-as items need every fragment their
//!   grammar may use. `${language}` in a prompt name is expanded over the languages; other
//!   templated names depend on call data and are not checked. A missing name gets "did
//!   you mean" from that language's prompts, or is said to exist in the other languages.
//!   Prompts listed in `SYNTHETIC.txt` are reported as placeholders still to be recorded
//!   (one warning per language, naming them all), except those the file acknowledges
//!   (`acknowledge.synthetic_prompts`), which get one note per language; an
//!   acknowledgement that matches no placeholder the scenario plays is a warning, so the
//!   list shrinks as recordings arrive.
//! - **Audio**: recordings stored in a format the runtime converts at load (not 8 kHz mono
//!   16-bit PCM WAV), clipped (several samples in a row at full scale) or too quiet / too
//!   loud (RMS outside
//!   −35…−8 dBFS) — warnings.
//! - **Speech**: intents that cannot be chosen by voice in some language (no phrases).
//! - **Events**: `notify` events the CRM integration does not document and the file does
//!   not declare (`events:`), with "did you mean"; declared events never sent.
//!
//! Deliberately not here: anything [`super::compile`] already guarantees (targets exist,
//! variables are declared, every `ask` handles no-input and no-match), and running calls
//! (coverage is `ivrflow test`'s).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use super::error::{Diagnostic, ErrorKind};
use super::{
    InputMode, IntentAction, NodeId, NodeKind, PromptItem, PromptKind, Scenario, SourcePos, SubId,
};
use crate::media::prompts::{AUDIO_EXTENSIONS, PromptCache, full_scale_run, peak_dbfs, rms_dbfs};
use crate::sayas::{self, SayKind};

/// RMS below this (dBFS) is reported as too quiet.
pub const MIN_RMS_DBFS: f32 = -35.0;
/// RMS above this (dBFS) is reported as too loud.
pub const MAX_RMS_DBFS: f32 = -8.0;
/// This many consecutive samples at full scale (or more) are reported as clipping; fewer
/// are a limiter's peaks (the Ukrainian set is mastered to touch 0 dBFS, never for more
/// than 2 samples in a row).
pub const CLIP_RUN: usize = 3;

/// Where the audio lives, for the prompt and audio checks.
pub struct Audio<'a> {
    pub cache: &'a PromptCache,
    /// The directory the cache was loaded from (`audio/`), to inspect file formats.
    pub dir: Option<&'a Path>,
}

/// Runs every check; the result is sorted by position. Without `audio`, only the graph,
/// speech and event checks run.
pub fn lint(scenario: &Scenario, audio: Option<&Audio<'_>>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    graph(scenario, &mut out);
    speech(scenario, &mut out);
    events(scenario, &mut out);
    caller_steering(scenario, &mut out);
    if let Some(audio) = audio {
        prompts(scenario, audio, &mut out);
    }
    out.sort_by_key(|d| (d.line, d.column, d.severity));
    out
}

fn id(i: usize) -> NodeId {
    NodeId(u32::try_from(i).unwrap_or(u32::MAX))
}

/// Successors for the whole-graph checks: a node's own targets, the targets of the global
/// handlers that apply in an `ask`, a call's sub-dialogue start, and for a `return`, the
/// targets its value selects at every call site.
pub fn flow_successors(scenario: &Scenario) -> Vec<Vec<NodeId>> {
    let mut calls_of: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
    for (i, node) in scenario.nodes.iter().enumerate() {
        if let NodeKind::Call { sub, .. } = &node.kind {
            calls_of.entry(*sub).or_default().push(id(i));
        }
    }
    scenario
        .nodes
        .iter()
        .map(|node| {
            let mut out = node.successors();
            match &node.kind {
                NodeKind::Call { sub, .. } => {
                    if let Some(s) = scenario.subdialogs.get(*sub) {
                        out.push(s.start);
                    }
                }
                NodeKind::Return { value } => {
                    for call in node
                        .sub
                        .and_then(|s| calls_of.get(&s))
                        .into_iter()
                        .flatten()
                    {
                        if let Some(NodeKind::Call { returns, .. }) =
                            scenario.node(*call).map(|n| &n.kind)
                        {
                            out.extend(
                                returns
                                    .iter()
                                    .filter(|(v, _)| v == value)
                                    .map(|(_, j)| j.target),
                            );
                        }
                    }
                }
                _ => {}
            }
            out
        })
        .collect()
}

fn graph(scenario: &Scenario, out: &mut Vec<Diagnostic>) {
    let n = scenario.nodes.len();
    let succ = flow_successors(scenario);
    // Reachable from the start.
    let mut reached = vec![false; n];
    let mut stack = vec![scenario.start];
    if let Some(j) = scenario.amd.as_ref().and_then(|a| a.on_machine.as_ref()) {
        stack.push(j.target);
    }
    while let Some(cur) = stack.pop() {
        if cur.index() >= n || reached[cur.index()] {
            continue;
        }
        reached[cur.index()] = true;
        stack.extend(succ[cur.index()].iter().copied());
    }
    let mut uncalled = BTreeSet::new();
    for (i, node) in scenario.nodes.iter().enumerate() {
        if reached[i] {
            continue;
        }
        match node.sub {
            Some(s)
                if scenario
                    .subdialogs
                    .get(s)
                    .is_some_and(|d| !reached[d.start.index()]) =>
            {
                uncalled.insert(s);
            }
            _ => out.push(
                Diagnostic::new(
                    ErrorKind::Unreachable,
                    node.pos,
                    format!("node `{}` is never reached", node.qualified),
                )
                .with_hint("no transition leads here; remove it or point a `next`/`on` at it")
                .warning(),
            ),
        }
    }
    for s in uncalled {
        let d = &scenario.subdialogs[s];
        out.push(
            Diagnostic::new(
                ErrorKind::Unreachable,
                d.pos,
                format!("sub-dialogue `{}` is never called", d.name),
            )
            .with_hint("call it from a node with `call:`, or remove it")
            .warning(),
        );
    }
    // Can reach the end of the call (a hangup, or a transfer that connects).
    let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in succ.iter().enumerate() {
        for t in s {
            if t.index() < n {
                pred[t.index()].push(i);
            }
        }
    }
    let mut ends = vec![false; n];
    let mut stack: Vec<usize> = scenario
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, node)| matches!(node.kind, NodeKind::Hangup { .. } | NodeKind::Transfer(_)))
        .map(|(i, _)| i)
        .collect();
    while let Some(cur) = stack.pop() {
        if ends[cur] {
            continue;
        }
        ends[cur] = true;
        stack.extend(pred[cur].iter().copied());
    }
    // Report stuck nodes once per strongly connected group.
    let stuck: Vec<usize> = (0..n).filter(|&i| reached[i] && !ends[i]).collect();
    let mut done: HashSet<usize> = HashSet::new();
    for &i in &stuck {
        if done.contains(&i) {
            continue;
        }
        // Nodes mutually reachable with i among the stuck ones.
        let forward = reach_from(i, &succ, &stuck);
        let group: Vec<usize> = forward
            .iter()
            .copied()
            .filter(|&j| reach_from(j, &succ, &stuck).contains(&i))
            .collect();
        let cyclic = group.len() > 1 || succ[i].iter().any(|t| t.index() == i);
        for &j in &group {
            done.insert(j);
        }
        let node = &scenario.nodes[i];
        let d = if cyclic {
            let names: Vec<String> = group
                .iter()
                .map(|j| format!("`{}`", scenario.nodes[*j].qualified))
                .collect();
            Diagnostic::new(
                ErrorKind::NoExit,
                node.pos,
                format!(
                    "loop without exit: {} never lead to the end of the call",
                    names.join(", ")
                ),
            )
            .with_hint("give the loop a way out, e.g. a `noinput`/`nomatch` handler or a branch to a `hangup` node")
        } else {
            done.insert(i);
            Diagnostic::new(
                ErrorKind::NoExit,
                node.pos,
                format!(
                    "dead end: no path from node `{}` leads to the end of the call",
                    node.qualified
                ),
            )
            .with_hint("every path must reach a `hangup` (or a `transfer`)")
        };
        out.push(d);
    }
}

fn reach_from(start: usize, succ: &[Vec<NodeId>], within: &[usize]) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(cur) = stack.pop() {
        if !within.contains(&cur) || !seen.insert(cur) {
            continue;
        }
        stack.extend(succ[cur].iter().map(|t| t.index()));
    }
    seen
}

fn speech(scenario: &Scenario, out: &mut Vec<Diagnostic>) {
    for node in &scenario.nodes {
        let NodeKind::Ask(ask) = &node.kind else {
            continue;
        };
        if !ask.inputs.contains(&InputMode::Speech) {
            continue;
        }
        if let Some(ty) = ask.answer
            && ask.confirm.is_none()
        {
            out.push(
                Diagnostic::new(
                    ErrorKind::Suspicious,
                    node.pos,
                    format!(
                        "`{}` question `{}` has no `confirm:`: an unsure spoken {} is asked again instead of read back",
                        ty.name(),
                        node.qualified,
                        if ty == crate::scenario::AnswerType::Date { "date" } else { "day" }
                    ),
                )
                .with_hint("add `confirm: { prompt: [...], question: [...] }` (docs/speech.md: garbled ordinals can carry a stray digit)")
                .warning(),
            );
        }
        let keys_spoken = ask.spoken_keys && ask.inputs.contains(&InputMode::Dtmf);
        for intent in ask.intents.iter().filter(|i| !i.global) {
            if keys_spoken
                && intent
                    .dtmf
                    .iter()
                    .any(|k| k.chars().all(|c| c.is_ascii_digit()))
            {
                // Its key said aloud ("one", «один») selects it in every language.
                continue;
            }
            let missing: Vec<&str> = scenario
                .languages
                .iter()
                .filter(|l| !intent.phrases.contains_key(*l))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                out.push(
                    Diagnostic::new(
                        ErrorKind::MissingPhrases,
                        intent.pos,
                        format!(
                            "intent `{}` has no phrases in {}: callers speaking it can only press keys",
                            intent.name,
                            missing.join(", ")
                        ),
                    )
                    .with_hint("add `phrases: { <lang>: [...] }`")
                    .warning(),
                );
            }
        }
    }
}

/// Values a caller's INVITE can set (`from: sip_header …`), and every variable assigned from
/// one, must not choose where the robot posts (an error: a webhook URL), calls (a warning:
/// transfer targets are also checked against `allow.transfer` at run time) or texts (a
/// warning: use `${customer}` with `customer_verified`).
fn caller_steering(scenario: &Scenario, out: &mut Vec<Diagnostic>) {
    let mut tainted: BTreeMap<&str, &str> = scenario
        .variables
        .values()
        .filter_map(|v| Some((v.name.as_str(), v.sip_header.as_deref()?)))
        .collect();
    if tainted.is_empty() {
        return;
    }
    // `set` spreads the taint; repeat until nothing new (bounded by the variable count).
    loop {
        let before = tainted.len();
        for node in &scenario.nodes {
            let NodeKind::Set { assign, .. } = &node.kind else {
                continue;
            };
            for (var, value) in assign {
                let reads: Vec<&str> = match value {
                    super::Assign::Template(t) => t.variables().collect(),
                    super::Assign::Expr(e) => e.variables(),
                };
                if let Some(header) = reads.iter().find_map(|r| tainted.get(r).copied()) {
                    tainted.entry(var.as_str()).or_insert(header);
                }
            }
        }
        if tainted.len() == before {
            break;
        }
    }
    let first = |vars: Vec<&str>| {
        vars.into_iter()
            .find_map(|v| tainted.get(v).map(|h| (v.to_owned(), *h)))
    };
    for node in &scenario.nodes {
        let (what, found, error) = match &node.kind {
            NodeKind::Webhook(w) => (
                "chooses where this webhook posts",
                w.url.as_ref().and_then(|u| first(u.variables().collect())),
                true,
            ),
            NodeKind::Transfer(t) => (
                "chooses where this transfer calls (allow.transfer still applies at run time)",
                first(t.target.variables().collect()),
                false,
            ),
            NodeKind::Notify { event, data, .. } if event == "sms.requested" => {
                let to = match data {
                    super::JsonTemplate::Object(fields) => fields
                        .iter()
                        .find(|(k, _)| k == "to")
                        .map(|(_, v)| v.variables())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                ("chooses the number this text goes to", first(to), false)
            }
            _ => continue,
        };
        let Some((var, header)) = found else {
            continue;
        };
        let d = Diagnostic::new(
            ErrorKind::Suspicious,
            node.pos,
            format!("`{var}` can be set by the caller's SIP header {header}, and it {what}"),
        )
        .with_hint(
            "read caller-set values only for data (an order number); take targets from the file, the API or a CRM look-up, and text `${customer}` only when `customer_verified` is true",
        );
        out.push(if error { d } else { d.warning() });
    }
}

fn events(scenario: &Scenario, out: &mut Vec<Diagnostic>) {
    let known: Vec<&str> = super::compile::KNOWN_EVENTS
        .iter()
        .copied()
        .chain(scenario.events.iter().map(|(e, _)| e.as_str()))
        .collect();
    let mut sent: BTreeSet<&str> = BTreeSet::new();
    for node in &scenario.nodes {
        let NodeKind::Notify { event, .. } = &node.kind else {
            continue;
        };
        sent.insert(event);
        if known.contains(&event.as_str()) {
            continue;
        }
        let hint = match super::compile::closest(event, known.iter().copied()) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!(
                "if the CRM expects it, declare it at the top level: `events: [{event}]` (documented: {})",
                super::compile::KNOWN_EVENTS.join(", ")
            ),
        };
        out.push(
            Diagnostic::new(
                ErrorKind::Suspicious,
                node.pos,
                format!(
                    "event `{event}` is neither one the CRM integration documents nor declared in `events:`"
                ),
            )
            .with_hint(hint)
            .warning(),
        );
    }
    for (event, at) in &scenario.events {
        if !sent.contains(event.as_str()) {
            out.push(
                Diagnostic::new(
                    ErrorKind::Suspicious,
                    *at,
                    format!("event `{event}` is declared but no `notify` node sends it"),
                )
                .with_hint("remove it from `events:`, or send it")
                .warning(),
            );
        }
    }
}

/// Every prompt item of the scenario.
pub fn prompt_items(scenario: &Scenario) -> Vec<&PromptItem> {
    prompt_items_in(scenario)
        .into_iter()
        .map(|(_, i)| i)
        .collect()
}

/// Every prompt item with the sub-dialogue it belongs to.
fn prompt_items_in(scenario: &Scenario) -> Vec<(Option<SubId>, &PromptItem)> {
    let mut all: Vec<(Option<SubId>, &PromptItem)> = Vec::new();
    for node in &scenario.nodes {
        let mut out: Vec<&PromptItem> = Vec::new();
        match &node.kind {
            NodeKind::Play { prompts, .. } | NodeKind::Hangup { prompts, .. } => {
                out.extend(prompts)
            }
            NodeKind::Ask(ask) => {
                out.extend(&ask.prompt);
                for e in [&ask.noinput, &ask.nomatch] {
                    out.extend(e.reprompts.iter().flatten());
                }
                for i in &ask.intents {
                    if !i.global {
                        out.extend(&i.say);
                    }
                }
                if let Some(c) = &ask.confirm {
                    out.extend(&c.prompt);
                    out.extend(&c.question);
                }
            }
            NodeKind::Record(r) => out.extend(&r.prompt),
            NodeKind::Transfer(t) => out.extend(&t.announcement),
            _ => {}
        }
        all.extend(out.into_iter().map(|i| (node.sub, i)));
    }
    for g in &scenario.globals {
        all.extend(g.say.iter().map(|i| (None, i)));
    }
    all
}

/// For each sub-dialogue parameter, the literal values call sites pass (and its default
/// when a call site passes nothing), so prompts named after a parameter can be checked.
fn param_values(scenario: &Scenario) -> BTreeMap<(SubId, String), BTreeSet<String>> {
    let mut out: BTreeMap<(SubId, String), BTreeSet<String>> = BTreeMap::new();
    for node in &scenario.nodes {
        let NodeKind::Call { sub, args, .. } = &node.kind else {
            continue;
        };
        let Some(def) = scenario.subdialogs.get(*sub) else {
            continue;
        };
        for (name, param) in &def.params {
            let value = match args.iter().find(|(n, _)| n == name) {
                Some((_, t)) => t.as_literal(),
                None => Some(param.default.clone()),
            };
            if let Some(v) = value {
                out.entry((*sub, name.clone())).or_default().insert(v);
            }
        }
    }
    out
}

/// The recordings an item needs in `lang`. A templated recording name is expanded over
/// `${language}` (the language being checked) and over the literal values call sites pass
/// to a sub-dialogue parameter; other templates depend on call data and are not checkable.
fn needed(
    item: &PromptItem,
    lang: &str,
    sub: Option<SubId>,
    params: &BTreeMap<(SubId, String), BTreeSet<String>>,
) -> Vec<String> {
    let expand = |t: &super::Template| -> Vec<String> {
        if let Some(lit) = t.as_literal() {
            return vec![lit];
        }
        let vars: BTreeSet<&str> = t.variables().collect();
        let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        for v in vars {
            let values: Vec<String> = if v == "language" {
                vec![lang.to_string()]
            } else if let Some(vals) = sub.and_then(|s| params.get(&(s, v.to_string()))) {
                vals.iter().cloned().collect()
            } else {
                return Vec::new();
            };
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |val| {
                        let mut c = c.clone();
                        c.insert(v.to_string(), val.clone());
                        c
                    })
                })
                .collect();
        }
        combos.iter().map(|c| t.render(c)).collect()
    };
    match &item.kind {
        PromptKind::Recording(t) => expand(t),
        PromptKind::Digits(_) => sayas::fragments(SayKind::Digits, lang, None),
        PromptKind::Number { plural, .. } => {
            let mut v = sayas::fragments(SayKind::Number, lang, None);
            if let Some(p) = plural {
                for t in p.all() {
                    v.extend(expand(t));
                }
            }
            v
        }
        PromptKind::Money { currency, .. } => {
            let cur = currency.as_literal();
            sayas::fragments(SayKind::Money, lang, cur.as_deref())
        }
        PromptKind::Date { year, weekday, .. } => sayas::fragments(
            SayKind::Date {
                year: *year,
                weekday: *weekday,
            },
            lang,
            None,
        ),
        PromptKind::Time(_) => sayas::fragments(SayKind::Time, lang, None),
        PromptKind::Ordinal(_) => sayas::fragments(SayKind::Ordinal, lang, None),
    }
}

fn prompts(scenario: &Scenario, audio: &Audio<'_>, out: &mut Vec<Diagnostic>) {
    let items = prompt_items_in(scenario);
    let params = param_values(scenario);
    // (lang, name) → first position that uses it.
    let mut used: BTreeMap<(String, String), SourcePos> = BTreeMap::new();
    for lang in &scenario.languages {
        let lang_known = audio.cache.languages().any(|l| l == lang);
        for &(sub, item) in &items {
            let is_say_as = !matches!(item.kind, PromptKind::Recording(_));
            if is_say_as && !sayas::LANGUAGES.contains(&lang.as_str()) {
                out.push(
                    Diagnostic::new(
                        ErrorKind::MissingPrompt,
                        item.pos,
                        format!(
                            "no say-as grammar for `{lang}`: this `{}` item is read digit by digit",
                            item.kind.key()
                        ),
                    )
                    .with_hint(format!(
                        "say-as grammars exist for {}",
                        sayas::LANGUAGES.join(", ")
                    ))
                    .warning(),
                );
            }
            let names = needed(item, lang, sub, &params);
            let missing: Vec<&String> = names
                .iter()
                .filter(|n| audio.cache.get(lang, n).is_none())
                .collect();
            for n in &names {
                if audio.cache.get(lang, n).is_some() {
                    used.entry((lang.clone(), n.clone())).or_insert(item.pos);
                }
            }
            if missing.is_empty() {
                continue;
            }
            let d = if !lang_known {
                Diagnostic::new(
                    ErrorKind::MissingPrompt,
                    item.pos,
                    format!("there are no prompts for language `{lang}` (no audio/{lang}/)"),
                )
            } else if is_say_as {
                let list: Vec<&str> = missing.iter().take(6).map(|s| s.as_str()).collect();
                Diagnostic::new(
                    ErrorKind::MissingPrompt,
                    item.pos,
                    format!(
                        "`{}` item needs {} fragment(s) missing in `{lang}`: {}{}",
                        item.kind.key(),
                        missing.len(),
                        list.join(", "),
                        if missing.len() > 6 { ", …" } else { "" }
                    ),
                )
                .with_hint("scripts/fetch-audio.sh regenerates the fragment sets")
            } else {
                Diagnostic::new(
                    ErrorKind::MissingPrompt,
                    item.pos,
                    format!(
                        "prompt `{}` has no recording for `{lang}` (audio/{lang}/{}.wav)",
                        missing[0], missing[0]
                    ),
                )
                .with_hint(missing_prompt_hint(audio.cache, lang, missing[0]))
            };
            out.push(d);
        }
    }
    synthetic(scenario, audio, &used, out);
    // Levels and formats of what the scenario plays.
    for ((lang, name), at) in &used {
        if let Some(p) = audio.cache.get(lang, name) {
            if p.pcm.is_empty() {
                continue;
            }
            let (peak, rms) = (peak_dbfs(&p.pcm), rms_dbfs(&p.pcm));
            let run = full_scale_run(&p.pcm);
            let problem = if run >= CLIP_RUN {
                Some(format!(
                    "is clipped ({run} samples in a row at full scale, peak {peak:.1} dBFS)"
                ))
            } else if rms < MIN_RMS_DBFS {
                Some(format!("is too quiet (RMS {rms:.1} dBFS)"))
            } else if rms > MAX_RMS_DBFS {
                Some(format!("is too loud (RMS {rms:.1} dBFS)"))
            } else {
                None
            };
            if let Some(problem) = problem {
                out.push(
                    Diagnostic::new(ErrorKind::Audio, *at, format!("`{lang}/{name}` {problem}"))
                        .with_hint(
                            "re-record or normalise it to about −20 dBFS RMS, peaks below −1 dBFS",
                        )
                        .warning(),
                );
            }
        }
        if let Some(dir) = audio.dir
            && let Some(problem) = format_problem(&dir.join(lang), name)
        {
            out.push(
                Diagnostic::new(ErrorKind::Audio, *at, format!("`{lang}/{name}` {problem}"))
                    .with_hint("store prompts as 8 kHz mono 16-bit PCM WAV (`sox in.wav -r 8000 -c 1 -b 16 out.wav`)")
                    .warning(),
            );
        }
    }
}

/// "did you mean" from the language's own prompts; or, when the name is recorded in other
/// languages, which ones (the recording is missing, not the name misspelt).
fn missing_prompt_hint(cache: &PromptCache, lang: &str, name: &str) -> String {
    let elsewhere: Vec<&str> = cache
        .languages()
        .filter(|l| *l != lang && cache.get(l, name).is_some())
        .collect();
    if !elsewhere.is_empty() {
        return format!(
            "it exists in {}: record audio/{lang}/{name}.wav (or add a placeholder and list it in audio/{lang}/SYNTHETIC.txt)",
            elsewhere.join(", ")
        );
    }
    match super::compile::closest(name, cache.names(lang)) {
        Some(c) => format!("did you mean `{c}`?"),
        None => "record it, or use a prompt that exists".to_string(),
    }
}

/// Synthetic placeholders the scenario plays: per language, one warning naming those not
/// acknowledged, one note for the acknowledged ones; and a warning for each
/// acknowledgement that matches none.
fn synthetic(
    scenario: &Scenario,
    audio: &Audio<'_>,
    used: &BTreeMap<(String, String), SourcePos>,
    out: &mut Vec<Diagnostic>,
) {
    let acks = &scenario.acknowledged_synthetic;
    let mut ack_used = vec![false; acks.len()];
    // lang → (first position of one not acknowledged, not acknowledged, acknowledged)
    type Split<'a> = (Option<SourcePos>, Vec<&'a str>, Vec<&'a str>);
    let mut by_lang: BTreeMap<&str, Split<'_>> = BTreeMap::new();
    for ((lang, name), at) in used {
        if !audio.cache.is_synthetic(lang, name) {
            continue;
        }
        let full = format!("{lang}/{name}");
        let mut acknowledged = false;
        for (i, (pattern, _)) in acks.iter().enumerate() {
            if super::glob_match(pattern, &full) {
                ack_used[i] = true;
                acknowledged = true;
            }
        }
        let e = by_lang.entry(lang).or_default();
        if acknowledged {
            e.2.push(name);
        } else {
            e.0 = Some(e.0.map_or(*at, |p| p.min(*at)));
            e.1.push(name);
        }
    }
    let ack_at = acks.first().map(|(_, at)| *at);
    for (lang, (at, open, known)) in by_lang {
        if let Some(at) = at {
            out.push(
                Diagnostic::new(
                    ErrorKind::Synthetic,
                    at,
                    format!(
                        "{} prompt(s) in `{lang}` are synthetic placeholders still to be recorded: {}",
                        open.len(),
                        open.join(", ")
                    ),
                )
                .with_hint(format!(
                    "record them (listed in audio/{lang}/SYNTHETIC.txt), or acknowledge them: `acknowledge: {{ synthetic_prompts: [\"{lang}/{}\"] }}`",
                    open[0]
                ))
                .warning(),
            );
        }
        if !known.is_empty() {
            out.push(
                Diagnostic::new(
                    ErrorKind::Synthetic,
                    ack_at.or(at).unwrap_or_default(),
                    format!(
                        "{} acknowledged placeholder(s) in `{lang}` still to be recorded: {}",
                        known.len(),
                        known.join(", ")
                    ),
                )
                .note(),
            );
        }
    }
    for ((pattern, at), hit) in acks.iter().zip(ack_used) {
        if !hit {
            out.push(
                Diagnostic::new(
                    ErrorKind::Stale,
                    *at,
                    format!("`{pattern}` acknowledges no placeholder this scenario plays"),
                )
                .with_hint(
                    "it has been recorded (or is not used any more): remove it from `acknowledge.synthetic_prompts`",
                )
                .warning(),
            );
        }
    }
}

/// Why a stored recording is converted at load, if it is.
fn format_problem(lang_dir: &Path, name: &str) -> Option<String> {
    let path = AUDIO_EXTENSIONS
        .iter()
        .map(|ext| lang_dir.join(format!("{name}.{ext}")))
        .find(|p| p.is_file())?;
    let is_wav = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("wav") || e.eq_ignore_ascii_case("wave"));
    if !is_wav {
        return Some("is compressed audio, decoded when the runtime starts".to_string());
    }
    match hound::WavReader::open(&path) {
        Ok(r) => {
            let s = r.spec();
            let ok = s.sample_rate == 8000
                && s.channels == 1
                && s.bits_per_sample == 16
                && s.sample_format == hound::SampleFormat::Int;
            (!ok).then(|| {
                format!(
                    "is stored as {} Hz, {} channel(s), {}-bit: converted when the runtime starts",
                    s.sample_rate, s.channels, s.bits_per_sample
                )
            })
        }
        Err(_) => Some("is not 16-bit PCM WAV (decoded when the runtime starts)".to_string()),
    }
}

/// Whether a node can end the call.
pub fn is_terminal(kind: &NodeKind) -> bool {
    matches!(kind, NodeKind::Hangup { .. } | NodeKind::Transfer(_))
}

/// Global intents that are not used by any `ask` (for the coverage report's denominator).
pub fn unused_globals(scenario: &Scenario) -> Vec<&str> {
    scenario
        .globals
        .iter()
        .filter(|g| {
            !scenario.nodes.iter().any(|n| match &n.kind {
                NodeKind::Ask(a) => a.intents.iter().any(|i| {
                    i.global && i.name == g.name && matches!(i.action, IntentAction::Goto(_))
                }),
                _ => false,
            })
        })
        .map(|g| g.name.as_str())
        .collect()
}

/// Literal recording names a scenario file uses, with where, read from the YAML alone —
/// for files that do not compile, so `ivrflow validate` can still report missing prompts
/// next to the compile errors. Empty when the file is not valid YAML for the schema.
pub fn literal_prompts(text: &str) -> (Vec<String>, Vec<(String, SourcePos)>) {
    use super::raw::{PromptList, RawNode, RawPromptItem, RawScenario};
    let Ok(raw) = serde_saphyr::from_str::<RawScenario>(text) else {
        return (Vec::new(), Vec::new());
    };
    let languages: Vec<String> = raw.languages.as_ref().map_or_else(
        || vec![super::FALLBACK_LANGUAGE.to_string()],
        |l| l.value.iter().map(|s| s.value.clone()).collect(),
    );
    let mut out = Vec::new();
    let list = |l: &PromptList, out: &mut Vec<(String, SourcePos)>| {
        for item in &l.value {
            let name = match &item.value {
                RawPromptItem::Name(n) => Some(n.clone()),
                RawPromptItem::Map(m) => m.prompt.as_ref().map(|p| p.value.clone()),
            };
            if let Some(n) = name
                && !n.contains('$')
                && super::validate_prompt_name(&n).is_ok()
            {
                out.push((n, SourcePos::of(&item.referenced)));
            }
        }
    };
    let node = |n: &RawNode, out: &mut Vec<(String, SourcePos)>| {
        if let Some(p) = &n.play {
            list(p, out);
        }
        if let Some(h) = &n.hangup
            && let Some(p) = &h.value.play
        {
            list(p, out);
        }
        if let Some(a) = &n.ask {
            list(&a.value.prompt, out);
            for e in [&a.value.noinput, &a.value.nomatch].into_iter().flatten() {
                for r in e.value.reprompt.iter().flatten() {
                    list(r, out);
                }
            }
            if let Some(c) = &a.value.confirm {
                list(&c.value.prompt, out);
                if let Some(q) = &c.value.question {
                    list(q, out);
                }
            }
            for (_, i) in a.value.intents.iter().flat_map(|i| i.value.0.iter()) {
                if let Some(s) = &i.value.say {
                    list(s, out);
                }
            }
        }
        if let Some(r) = &n.record
            && let Some(p) = &r.value.prompt
        {
            list(p, out);
        }
        if let Some(t) = &n.transfer
            && let Some(p) = &t.value.announcement
        {
            list(p, out);
        }
    };
    for (_, n) in &raw.nodes.value.0 {
        node(&n.value, &mut out);
    }
    for (_, s) in raw.subdialogs.iter().flat_map(|s| s.0.iter()) {
        for (_, n) in &s.value.nodes.value.0 {
            node(&n.value, &mut out);
        }
    }
    (languages, out)
}

/// Missing-prompt diagnostics for a file that does not compile (see [`literal_prompts`]).
pub fn missing_literal_prompts(text: &str, cache: &PromptCache) -> Vec<Diagnostic> {
    let (languages, uses) = literal_prompts(text);
    let mut out = Vec::new();
    for (name, at) in uses {
        for lang in &languages {
            if cache.languages().any(|l| l == lang) && cache.get(lang, &name).is_none() {
                out.push(
                    Diagnostic::new(
                        ErrorKind::MissingPrompt,
                        at,
                        format!("prompt `{name}` has no recording for `{lang}` (audio/{lang}/{name}.wav)"),
                    )
                    .with_hint(missing_prompt_hint(cache, lang, &name)),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod steering_tests {
    use super::*;
    use crate::scenario::Severity;

    /// Issue 14.1: `validate` says when a value the caller's INVITE sets (directly, or
    /// through `set`) would choose a webhook URL (error), a transfer target or an SMS
    /// recipient (warnings).
    #[test]
    fn caller_set_values_cannot_choose_where_the_robot_posts_calls_or_texts() {
        let yaml = r#"version: 1
name: steer
languages: [en]
variables:
  order_id: { type: string, from: sip_header X-Order-Id }
  hook: { type: string, from: sip_header X-Hook }
  agent: { type: string, default: "100" }
  target: { type: string, default: "" }
start: a
nodes:
  a:
    set: { target: "sip:${agent}@pbx.example", agent: "${hook}" }
    next: b
  b:
    webhook: { url: "http://crm.example/${hook}/x", body: { order: "${order_id}" } }
    next: c
    on: { error: c }
  c:
    sms: { template: t, to: "${order_id}" }
    next: d
  d:
    transfer: { target: "${agent}" }
    on: { busy: e, noanswer: e, failed: e }
  e:
    hangup: { outcome: done }
"#;
        let s = crate::scenario::load_str("steer.yaml", yaml).expect("loads");
        let found: Vec<(Severity, String)> = lint(&s, None)
            .into_iter()
            .filter(|d| d.message.contains("can be set by the caller"))
            .map(|d| (d.severity, d.message))
            .collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found.iter().any(|(sev, m)| *sev == Severity::Error
            && m.contains("`hook`")
            && m.contains("webhook posts")));
        assert!(found.iter().any(|(sev, m)| *sev == Severity::Warning
            && m.contains("`order_id`")
            && m.contains("text goes to")));
        // Through `set`: agent ← hook.
        assert!(found.iter().any(|(sev, m)| *sev == Severity::Warning
            && m.contains("`agent`")
            && m.contains("transfer calls")));
    }
}
