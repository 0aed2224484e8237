//! Scenario language v1: the YAML model and its compilation to a validated graph.
//!
//! A scenario file (see `docs/scenario-language.md`) is parsed with serde-saphyr into the
//! `raw` structs, which mirror the YAML and keep source positions. [`compile`] then checks
//! everything that can be checked without running a call — targets exist, each node does
//! exactly one thing, `${var}` names are declared, every `ask` handles no-input and
//! no-match, literal digits are digits, durations parse, no `goto`/`set` cycle spins
//! without waiting — and produces a [`Scenario`]: nodes in a `Vec` addressed by
//! [`NodeId`], names kept only for traces and results. Errors carry `file:line:col`.
//!
//! What this module deliberately does not do: run anything (that is `dialogue`), look at
//! the file system beyond reading the scenario itself (whether `audio/<lang>/<name>.wav`
//! exists is a lint for `ivrflow validate`, which knows where the audio lives), or know
//! about SIP. The compiled model is plain data so the linter, the graph renderer and the
//! simulator can all walk it.

mod compile;
mod duration;
mod error;
mod raw;
mod template;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use duration::{MAX_DURATION, parse_duration};
pub use error::{Diagnostic, ErrorKind, LoadError};
pub use template::{Template, TemplateError, is_variable_name};

/// The scenario language version this build reads.
pub const LANGUAGE_VERSION: u32 = 1;

/// Default no-input timeout of an `ask`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default inter-digit timeout of an `ask`.
pub const DEFAULT_INTERDIGIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default `max` of `noinput` / `nomatch` when the block or the key is absent.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Language used when the scenario declares none.
pub const FALLBACK_LANGUAGE: &str = "en";

/// Index of a node in [`Scenario::nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// 1-based line and column of a YAML node in its file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourcePos {
    pub line: u32,
    pub column: u32,
}

impl SourcePos {
    pub(crate) fn of(location: &serde_saphyr::Location) -> SourcePos {
        SourcePos {
            line: u32::try_from(location.line()).unwrap_or(u32::MAX),
            column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        }
    }
}

/// A compiled, validated scenario. Immutable; share it between calls with `Arc`.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// `name:` from the file, or the file stem.
    pub name: String,
    pub description: Option<String>,
    /// The label the scenario was loaded from (a path), for messages.
    pub file: String,
    /// Prompt languages the scenario supports; never empty. The first is the default unless
    /// the `language` variable declares another default.
    pub languages: Vec<String>,
    /// Declared variables by name; always contains `language`.
    pub variables: BTreeMap<String, Variable>,
    pub start: NodeId,
    /// All nodes, in file order; `NodeId(i)` is `nodes[i]`.
    pub nodes: Vec<Node>,
}

impl Scenario {
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index())
    }

    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(NodeId)
    }

    /// Name of a node, or `"?"` for an id that is not in this scenario.
    pub fn node_name(&self, id: NodeId) -> &str {
        self.node(id).map_or("?", |n| n.name.as_str())
    }

    /// The language prompts use when the call does not choose a supported one.
    pub fn default_language(&self) -> &str {
        self.variables
            .get("language")
            .map(|v| v.default.as_str())
            .filter(|l| !l.is_empty())
            .or(self.languages.first().map(String::as_str))
            .unwrap_or(FALLBACK_LANGUAGE)
    }

    /// Declared defaults of all variables.
    pub fn default_variables(&self) -> BTreeMap<String, String> {
        self.variables
            .iter()
            .map(|(name, v)| (name.clone(), v.default.clone()))
            .collect()
    }
}

/// The type of a declared variable. Types constrain literal values at load time and tell
/// say-as items how to speak a value; call-time values are strings and are checked where
/// they are used (a `digits` item skips non-digits with a warning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VarType {
    String,
    Digits,
}

#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    pub ty: VarType,
    pub default: String,
    pub description: Option<String>,
    /// Where it is declared; `None` for the implicit `language`.
    pub pos: Option<SourcePos>,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    /// Position of the node's name in the file.
    pub pos: SourcePos,
    /// `outcome:` recorded when the node is entered.
    pub outcome: Option<String>,
    pub kind: NodeKind,
}

/// What a node does. Every kind names its successors by [`NodeId`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum NodeKind {
    /// Play prompts; keys are ignored; when playback ends go to `next`.
    Play {
        prompts: Vec<PromptItem>,
        next: NodeId,
    },
    /// Ask a question and branch on the answer.
    Ask(Box<Ask>),
    /// Assign variables (templates rendered in order), then go to `next` at once.
    Set {
        assign: Vec<(String, Template)>,
        next: NodeId,
    },
    /// Go to another node at once.
    Goto { target: NodeId },
    /// Set the outcome, play the prompts (if any), hang up.
    Hangup {
        outcome: Option<String>,
        prompts: Vec<PromptItem>,
    },
}

impl Node {
    /// The nodes this node can go to, in a stable order, with repeats removed.
    pub fn successors(&self) -> Vec<NodeId> {
        let mut out = Vec::new();
        match &self.kind {
            NodeKind::Play { next, .. } | NodeKind::Set { next, .. } => out.push(*next),
            NodeKind::Goto { target } => out.push(*target),
            NodeKind::Ask(ask) => {
                out.extend(ask.intents.iter().map(|i| i.target));
                out.push(ask.noinput.target);
                out.push(ask.nomatch.target);
            }
            NodeKind::Hangup { .. } => {}
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|id| seen.insert(*id));
        out
    }

    /// Short name of the kind, as written in YAML.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Play { .. } => "play",
            NodeKind::Ask(_) => "ask",
            NodeKind::Set { .. } => "set",
            NodeKind::Goto { .. } => "goto",
            NodeKind::Hangup { .. } => "hangup",
        }
    }
}

/// Input modes of an `ask`. Only DTMF in v1; speech is parsed but rejected at load time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputMode {
    Dtmf,
}

#[derive(Clone, Debug)]
pub struct Ask {
    pub prompt: Vec<PromptItem>,
    pub inputs: Vec<InputMode>,
    /// No-input timeout, counted from the end of the prompt on the wire.
    pub timeout: Duration,
    /// Time allowed between keys while a longer intent key could still match.
    pub interdigit_timeout: Duration,
    /// Barge-in default for the prompt and reprompt items (an item may override it).
    pub barge_in: bool,
    pub intents: Vec<Intent>,
    pub noinput: Escalation,
    pub nomatch: Escalation,
}

#[derive(Clone, Debug)]
pub struct Intent {
    pub name: String,
    /// Key sequences that select this intent, e.g. `["1"]`, `["*0"]`.
    pub dtmf: Vec<String>,
    pub target: NodeId,
}

/// Count-based handling of no-input or no-match: events 1..=max reprompt with
/// `reprompts[min(k, len) - 1]` followed by the question; event max+1 goes to `target`.
#[derive(Clone, Debug)]
pub struct Escalation {
    pub max: u32,
    pub reprompts: Vec<Vec<PromptItem>>,
    pub target: NodeId,
}

impl Escalation {
    /// The extra prompts for event number `k` (1-based): the k-th reprompt, the last one
    /// when there are fewer, none when there are none.
    pub fn reprompt(&self, k: u32) -> &[PromptItem] {
        if self.reprompts.is_empty() || k == 0 {
            return &[];
        }
        let i = (k as usize).min(self.reprompts.len()) - 1;
        &self.reprompts[i]
    }
}

/// One item of a prompt list.
#[derive(Clone, Debug)]
pub struct PromptItem {
    pub kind: PromptKind,
    /// `barge_in:` of the item; `None` inherits the ask's setting.
    pub barge_in: Option<bool>,
    pub pos: SourcePos,
}

/// What an item speaks. Say-as kinds (`Number`, `Money`, `Date`, `Time`) join `Digits`
/// here; each renders to a list of recorded fragments in the call's language.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PromptKind {
    /// A recording `audio/<lang>/<name>.wav`; the name may contain `/` and `${var}`.
    Recording(Template),
    /// Each character 0-9 of the rendered value as `digits/<d>`.
    Digits(Template),
}

/// Checks a prompt name (after interpolation): `/`-separated segments of ASCII letters,
/// digits, `_`, `-`, `.`, `+`; no empty, `.` or `..` segment; no file extension needed.
pub fn validate_prompt_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty prompt name".to_string());
    }
    for segment in name.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(format!(
                "prompt name `{name}` has an empty, `.` or `..` part"
            ));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')))
        {
            return Err(format!("prompt name `{name}` contains `{c}`"));
        }
    }
    Ok(())
}

/// Loads and compiles one scenario file. The file label in errors is `path` as given.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        file: label.clone(),
        source,
    })?;
    load_str(&label, &text)
}

/// Compiles scenario text; `file_label` names it in errors and gives the default `name`
/// (its file stem).
pub fn load_str(file_label: &str, text: &str) -> Result<Scenario, LoadError> {
    let raw: raw::RawScenario = serde_saphyr::from_str(text)
        .map_err(|e| LoadError::invalid(file_label, vec![error::from_yaml_error(&e)]))?;
    compile::compile(file_label, raw).map_err(|diags| LoadError::invalid(file_label, diags))
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (not recursively) whose stem contains no
/// `.`, keyed by file stem. Files such as `order-confirmation.test.yaml` are left alone:
/// that pattern is reserved for caller scripts next to their scenario. Returns the
/// scenarios that loaded and the errors of those that did not; one bad file never hides
/// the others.
pub fn load_dir(dir: &Path) -> (BTreeMap<String, Arc<Scenario>>, Vec<LoadError>) {
    let mut scenarios = BTreeMap::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            errors.push(LoadError::Io {
                file: dir.display().to_string(),
                source,
            });
            return (scenarios, errors);
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                && p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| !s.is_empty() && !s.contains('.'))
                && p.is_file()
        })
        .collect();
    paths.sort();
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let Some(stem) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let label = path.display().to_string();
        if let Some(first) = origin.get(&stem) {
            errors.push(LoadError::invalid(
                &label,
                vec![
                    Diagnostic::new(
                        ErrorKind::InvalidName,
                        SourcePos { line: 1, column: 1 },
                        format!("scenario `{stem}` is also defined by {first}"),
                    )
                    .with_hint("keep one of the .yaml / .yml files"),
                ],
            ));
            continue;
        }
        origin.insert(stem.clone(), label);
        match load_file(&path) {
            Ok(scenario) => {
                scenarios.insert(stem, Arc::new(scenario));
            }
            Err(e) => errors.push(e),
        }
    }
    (scenarios, errors)
}
