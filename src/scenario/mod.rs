//! The scenario language: the YAML model and its compilation to a validated graph.
//!
//! A scenario file (see `docs/scenario-language.md`) is parsed with serde-saphyr into the
//! `raw` structs, which mirror the YAML and keep source positions. [`compile`] then checks
//! everything that can be checked without running a call — targets exist, each node does
//! exactly one thing, variables are declared and literals fit their types, expressions
//! parse and type-check, every `ask` handles no-input and no-match (itself or through
//! `global:`), sub-dialogue calls pass their parameters and handle every return value and
//! do not recurse, no `goto`/`set` cycle spins without waiting — and produces a
//! [`Scenario`]: nodes in a `Vec` addressed by [`NodeId`], names kept only for traces,
//! results and coverage. Errors carry `file:line:col`.
//!
//! [`lint`] adds the checks that need more than the file (missing prompt recordings per
//! language, audio format and level, synthetic placeholders) or are about the graph as a
//! whole (unreachable nodes, dead ends, loops without exit); [`graph`] draws it.
//!
//! What this module deliberately does not do: run anything (that is `dialogue`, which
//! depends on this module and never the other way round), or know about SIP. The compiled
//! model is plain data so the linter, the graph renderer, the simulator and the coverage
//! report can all walk it.

pub mod allow;
pub mod builtins;
mod compile;
mod duration;
mod error;
pub mod expr;
pub mod graph;
pub mod lint;
mod raw;
mod template;
mod yaml_errors;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use duration::{MAX_DURATION, parse_duration};
pub use error::{Diagnostic, ErrorKind, LoadError, Severity};
pub use expr::Expr;
pub use template::{Template, TemplateError, is_variable_name};

/// The scenario language version this build reads.
pub const LANGUAGE_VERSION: u32 = 1;

/// Default no-input timeout of an `ask`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default inter-digit timeout of an `ask`.
pub const DEFAULT_INTERDIGIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default `webhook` timeout.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `transfer` timeout (no result by then counts as `failed`).
pub const DEFAULT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `record` limits.
pub const DEFAULT_RECORD_MAX_LENGTH: Duration = Duration::from_secs(60);
pub const DEFAULT_RECORD_FINAL_SILENCE: Duration = Duration::from_secs(3);
/// Deepest nesting of sub-dialogue calls at run time.
pub const MAX_CALL_DEPTH: usize = 16;
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
    /// All nodes: the main dialogue's in file order, then each sub-dialogue's;
    /// `NodeId(i)` is `nodes[i]`.
    pub nodes: Vec<Node>,
    /// Intents declared under `global:` (their jumps are `global`), for graphs and docs;
    /// each `ask` carries the ones that apply to it.
    pub globals: Vec<Intent>,
    /// `global.on.noinput` / `global.on.nomatch`, when declared.
    pub global_noinput: Option<Jump>,
    pub global_nomatch: Option<Jump>,
    pub subdialogs: Vec<Subdialog>,
    /// `amd:`, when the scenario asks for answering-machine detection.
    pub amd: Option<Amd>,
    /// Where its `transfer` nodes may send the call (targets in the file, `allow:`).
    pub transfer_allow: allow::TransferAllow,
    /// `events:` — the scenario's own CRM event names, where each is declared.
    pub events: Vec<(String, SourcePos)>,
    /// `acknowledge.synthetic_prompts:` — `lang/name` patterns of placeholder prompts the
    /// scenario knowingly plays, where each is written.
    pub acknowledged_synthetic: Vec<(String, SourcePos)>,
}

/// Whether `pattern` (`*` matches any run of characters, `/` included) matches `text`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == t[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Name of the variable that holds the answering-machine verdict.
pub const ANSWERED_BY: &str = "answered_by";
/// Edge key of the jump taken when the machine's greeting has ended.
pub const AMD_MACHINE_KEY: &str = "machine";
/// Default `amd.max_wait`.
pub const DEFAULT_AMD_MAX_WAIT: Duration = Duration::from_secs(4);
/// Longest `amd.max_wait` (the caller hears nothing meanwhile).
pub const MAX_AMD_WAIT: Duration = Duration::from_secs(10);

/// Answering-machine detection (`amd:`): the call starts by listening; a person (or no
/// decision) starts the dialogue at `start`, a machine is waited out until its beep (or
/// the end of its greeting) and then goes to `on_machine`, or is hung up on.
#[derive(Clone, Debug, PartialEq)]
pub struct Amd {
    /// `None`: hang up (outcome `answering_machine`).
    pub on_machine: Option<Jump>,
    pub max_wait: Duration,
    /// A greeting this long is a machine's.
    pub greeting: Duration,
    /// Silence after a shorter greeting that makes it a person's.
    pub silence: Duration,
    /// How long to wait for a machine's greeting to end.
    pub max_greeting: Duration,
    pub pos: SourcePos,
}

impl Amd {
    /// The detector settings this block asks for.
    pub fn config(&self) -> crate::media::amd::AmdConfig {
        crate::media::amd::AmdConfig {
            max_wait: self.max_wait,
            human_silence: self.silence,
            machine_speech: self.greeting,
            max_greeting: self.max_greeting,
            ..crate::media::amd::AmdConfig::default()
        }
    }
}

impl Scenario {
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.index())
    }

    /// The node with this qualified name (`confirm`, or `yes_no.ask` inside a sub-dialogue).
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.qualified == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(NodeId)
    }

    /// Qualified name of a node, or `"?"` for an id that is not in this scenario.
    pub fn node_name(&self, id: NodeId) -> &str {
        self.node(id).map_or("?", |n| n.qualified.as_str())
    }

    /// Every transition the dialogue can take, as (source, jump): `None` for global ones
    /// (declared once under `global:`), plus the `call` edge of each `call` node into its
    /// sub-dialogue. Each (source, key) pair appears once: this is what edge coverage
    /// counts.
    pub fn all_edges(&self) -> Vec<(Option<NodeId>, Jump)> {
        let mut out = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let id = NodeId(u32::try_from(i).unwrap_or(u32::MAX));
            if let NodeKind::Call { sub, .. } = &node.kind
                && let Some(s) = self.subdialogs.get(*sub)
            {
                out.push((Some(id), Jump::local(s.start, "call")));
            }
            for j in node.edges() {
                out.push((Some(id), j.clone()));
            }
        }
        for intent in &self.globals {
            if let IntentAction::Goto(j) = &intent.action {
                out.push((None, j.clone()));
            }
        }
        for j in [&self.global_noinput, &self.global_nomatch]
            .into_iter()
            .flatten()
        {
            out.push((None, j.clone()));
        }
        if let Some(j) = self.amd.as_ref().and_then(|a| a.on_machine.as_ref()) {
            out.push((None, j.clone()));
        }
        out
    }

    /// The type of a variable visible in `sub` (its parameters, then the scenario's
    /// variables).
    pub fn var_type(&self, sub: Option<SubId>, name: &str) -> Option<VarType> {
        sub.and_then(|s| self.subdialogs.get(s))
            .and_then(|s| s.params.get(name))
            .or_else(|| self.variables.get(name))
            .map(|v| v.ty)
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

/// The type of a declared variable. Types constrain literal values (defaults, `set`
/// literals) at load time, tell expressions how to compare values, and tell say-as items
/// how to speak them. Call-time values are strings, checked where they are used: a say-as
/// item that cannot speak a value falls back to reading its digits, with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VarType {
    String,
    /// Only 0-9 (order numbers, codes: spoken digit by digit).
    Digits,
    /// A whole number, optionally signed.
    Integer,
    /// A decimal number (`.` as the decimal point).
    Number,
    /// An amount with at most two decimals: `1500`, `1500.5`, `1500.50`.
    Money,
    /// `YYYY-MM-DD`.
    Date,
    /// `HH:MM` (24-hour) or `HH:MM:SS`.
    Time,
    /// `true`/`false` (also `yes`/`no`, `1`/`0`).
    Boolean,
}

impl VarType {
    /// The name as written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            VarType::String => "string",
            VarType::Digits => "digits",
            VarType::Integer => "integer",
            VarType::Number => "number",
            VarType::Money => "money",
            VarType::Date => "date",
            VarType::Time => "time",
            VarType::Boolean => "boolean",
        }
    }

    /// Checks a value against the type. The empty string ("not provided") is always valid.
    pub fn check(self, value: &str) -> Result<(), String> {
        use crate::sayas;
        if value.is_empty() {
            return Ok(());
        }
        let ok = match self {
            VarType::String => true,
            VarType::Digits => value.chars().all(|c| c.is_ascii_digit()),
            VarType::Integer => sayas::parse_integer(value).is_ok(),
            VarType::Number => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
            VarType::Money => sayas::parse_money(value).is_ok(),
            VarType::Date => sayas::parse_date(value).is_ok(),
            VarType::Time => sayas::parse_time(value).is_ok(),
            VarType::Boolean => expr::parse_bool(value).is_some(),
        };
        if ok {
            Ok(())
        } else {
            Err(match self {
                VarType::Digits => format!("`{value}` is not digits (0-9 only)"),
                VarType::Integer => format!("`{value}` is not an integer"),
                VarType::Number => format!("`{value}` is not a number"),
                VarType::Money => {
                    format!("`{value}` is not an amount (write `1500` or `1500.50`)")
                }
                VarType::Date => format!("`{value}` is not a date (write `YYYY-MM-DD`)"),
                VarType::Time => format!("`{value}` is not a time (write `HH:MM`)"),
                VarType::Boolean => format!("`{value}` is not `true` or `false`"),
                VarType::String => String::new(),
            })
        }
    }
}

#[derive(Clone, Debug)]
pub struct Variable {
    pub name: String,
    pub ty: VarType,
    pub default: String,
    pub description: Option<String>,
    /// Where it is declared; `None` for the implicit `language`.
    pub pos: Option<SourcePos>,
    /// The SIP header of an inbound INVITE that sets it (`from: sip_header X-Order-Id`);
    /// `None`: no caller can set it.
    pub sip_header: Option<String>,
    /// Longest value accepted from a SIP header.
    pub max_length: usize,
}

/// Default [`Variable::max_length`].
pub const DEFAULT_SIP_VALUE_MAX: usize = 64;
/// Largest `max_length` a variable may declare.
pub const MAX_SIP_VALUE_MAX: usize = 1024;

/// Index of a sub-dialogue in [`Scenario::subdialogs`].
pub type SubId = usize;

/// A transition: where to go, and the key that declares it (`next`, `on.<key>`, `if.1`,
/// `else`, `case.<v>`, `default`, `call`, …). `global` transitions are declared once under
/// `global:` and apply in every `ask`; coverage counts them once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jump {
    pub target: NodeId,
    pub key: String,
    pub global: bool,
}

impl Jump {
    pub fn local(target: NodeId, key: impl Into<String>) -> Jump {
        Jump {
            target,
            key: key.into(),
            global: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    /// The name as written (local to its sub-dialogue).
    pub name: String,
    /// `name`, or `<subdialog>.<name>` for nodes of a sub-dialogue.
    pub qualified: String,
    /// The sub-dialogue the node belongs to (`None`: the main dialogue).
    pub sub: Option<SubId>,
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
        next: Jump,
    },
    /// Ask a question and branch on the answer.
    Ask(Box<Ask>),
    /// Assign variables in order, then go to `next` at once.
    Set {
        assign: Vec<(String, Assign)>,
        next: Jump,
    },
    /// Go to another node at once.
    Goto { target: Jump },
    /// Set the outcome, play the prompts (if any), hang up.
    Hangup {
        outcome: Option<String>,
        prompts: Vec<PromptItem>,
    },
    /// The first arm whose condition holds, else `otherwise`; at once.
    Branch {
        arms: Vec<(Expr, Jump)>,
        otherwise: Jump,
    },
    /// The case equal to the value (as text), else `default`; at once.
    Switch {
        value: Expr,
        cases: Vec<(String, Jump)>,
        default: Jump,
    },
    /// Record the caller (after an optional prompt).
    Record(Box<Record>),
    /// An HTTP request mid-call, with a timeout and an error path.
    Webhook(Box<Webhook>),
    /// Hand the caller to an agent.
    Transfer(Box<Transfer>),
    /// A fire-and-forget CRM event (`sms` nodes are `sms.requested`), then `next` at once.
    Notify {
        /// `sms` or `notify`, as written.
        written_as: &'static str,
        event: String,
        data: JsonTemplate,
        next: Jump,
    },
    /// Run a sub-dialogue with arguments; continue at the jump its `return` value selects.
    Call {
        sub: SubId,
        args: Vec<(String, Template)>,
        returns: Vec<(String, Jump)>,
    },
    /// End the sub-dialogue with a value.
    Return { value: String },
}

/// The value of one `set` assignment.
#[derive(Clone, Debug)]
pub enum Assign {
    /// A string with `${…}` references.
    Template(Template),
    /// `{ expr: "count + 1" }`.
    Expr(Expr),
}

impl Node {
    /// The transitions declared on this node (global ones excluded), unique by key, in a
    /// stable order.
    pub fn edges(&self) -> Vec<&Jump> {
        let mut out: Vec<&Jump> = Vec::new();
        match &self.kind {
            NodeKind::Play { next, .. }
            | NodeKind::Set { next, .. }
            | NodeKind::Notify { next, .. } => out.push(next),
            NodeKind::Goto { target } => out.push(target),
            NodeKind::Ask(ask) => {
                for intent in &ask.intents {
                    if let IntentAction::Goto(j) = &intent.action {
                        out.push(j);
                    }
                }
                if let Some(digits) = &ask.digits {
                    out.push(&digits.jump);
                }
                out.push(&ask.noinput.target);
                out.push(&ask.nomatch.target);
            }
            NodeKind::Branch { arms, otherwise } => {
                out.extend(arms.iter().map(|(_, j)| j));
                out.push(otherwise);
            }
            NodeKind::Switch { cases, default, .. } => {
                out.extend(cases.iter().map(|(_, j)| j));
                out.push(default);
            }
            NodeKind::Record(r) => {
                out.push(&r.next);
                out.extend(r.empty.as_ref());
            }
            NodeKind::Webhook(w) => {
                out.push(&w.next);
                out.push(&w.error);
            }
            NodeKind::Transfer(t) => {
                out.extend([&t.busy, &t.noanswer, &t.failed]);
            }
            NodeKind::Call { returns, .. } => out.extend(returns.iter().map(|(_, j)| j)),
            NodeKind::Hangup { .. } | NodeKind::Return { .. } => {}
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|j| !j.global && seen.insert(j.key.as_str()));
        out
    }

    /// The nodes this node can go to directly (a `call` node's sub-dialogue start is in
    /// [`Scenario::successors`]), in a stable order, with repeats removed.
    pub fn successors(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self.edges().iter().map(|j| j.target).collect();
        if let NodeKind::Ask(ask) = &self.kind {
            for intent in &ask.intents {
                if let IntentAction::Goto(j) = &intent.action
                    && j.global
                {
                    out.push(j.target);
                }
            }
            for j in [&ask.noinput.target, &ask.nomatch.target] {
                if j.global {
                    out.push(j.target);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|id| seen.insert(*id));
        out
    }

    /// Short name of the kind, as written in YAML.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Play { .. } => "play",
            NodeKind::Ask(_) => "ask",
            NodeKind::Set { .. } => "set",
            NodeKind::Goto { .. } => "goto",
            NodeKind::Hangup { .. } => "hangup",
            NodeKind::Branch { .. } => "branch",
            NodeKind::Switch { .. } => "switch",
            NodeKind::Record(_) => "record",
            NodeKind::Webhook(_) => "webhook",
            NodeKind::Transfer(_) => "transfer",
            NodeKind::Notify { written_as, .. } => written_as,
            NodeKind::Call { .. } => "call",
            NodeKind::Return { .. } => "return",
        }
    }

    /// Whether entering the node takes no time (it goes on at once).
    pub fn is_zero_time(&self) -> bool {
        matches!(
            self.kind,
            NodeKind::Set { .. }
                | NodeKind::Goto { .. }
                | NodeKind::Branch { .. }
                | NodeKind::Switch { .. }
                | NodeKind::Notify { .. }
                | NodeKind::Call { .. }
                | NodeKind::Return { .. }
        )
    }
}

/// Input modes of an `ask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputMode {
    Dtmf,
    Speech,
}

#[derive(Clone, Debug)]
pub struct Ask {
    pub prompt: Vec<PromptItem>,
    pub inputs: Vec<InputMode>,
    /// No-input timeout, counted from the end of the prompt on the wire (VoiceXML `timeout`).
    pub timeout: Duration,
    /// Time allowed between keys while the keys so far are incomplete, or complete but could
    /// go on (VoiceXML `interdigittimeout`).
    pub interdigit_timeout: Duration,
    /// Time to wait for the terminator once a digit string is at its maximum length
    /// (VoiceXML `termtimeout`; 0 = accept at once).
    pub term_timeout: Duration,
    /// Speech endpointing, passed to the recogniser (VoiceXML `completetimeout`,
    /// `incompletetimeout`, `maxspeechtimeout`).
    pub complete_timeout: Duration,
    pub incomplete_timeout: Duration,
    pub max_speech_timeout: Duration,
    /// Barge-in default for the prompt and reprompt items (an item may override it).
    pub barge_in: bool,
    /// Local intents first, then the global intents that apply here (`global: true`).
    pub intents: Vec<Intent>,
    /// Collect a digit string instead of (or besides) choosing an intent.
    pub digits: Option<DigitString>,
    /// Speech below this (min of ASR confidence and match score) is not accepted as is.
    pub confidence: f32,
    /// Ask "did you say …?" for speech below `confidence` (and at least `confirm.min`).
    pub confirm: Option<Confirm>,
    /// Variable that receives the answer: the intent name, or the digit string.
    pub store: Option<String>,
    pub noinput: Escalation,
    pub nomatch: Escalation,
    /// Saying the digit of a key choice selects it ("one", «один», «перший», "number
    /// one" for an intent whose key is `1`), when the question takes keys and speech
    /// (`spoken_keys: false` turns it off).
    pub spoken_keys: bool,
    /// Keys pressed during the prompts that lead into this question (a `play` just before
    /// it, barge-in allowed) answer it (VoiceXML type-ahead); `typeahead: false` discards
    /// them when the question starts.
    pub typeahead: bool,
    /// A typed value instead of intents (`answer: day_of_month`).
    pub answer: Option<AnswerType>,
}

/// Built-in answer types of an `ask` (`answer:`): a value, not an intent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerType {
    /// A day of the month, 1-31: "the fifteenth", «двадцать первого», keys `15` (then `#`
    /// or the inter-digit timeout). The value is the number.
    DayOfMonth,
    /// A calendar date: "tomorrow", «в пятницу», "March 15th", «15 марта», keys `DDMM`.
    /// Relative dates count from the call variable `today` (YYYY-MM-DD) when it is set,
    /// else from the date the call started. The value is `YYYY-MM-DD`.
    Date,
}

impl AnswerType {
    /// The name as written (`answer: day_of_month`), also the `on:` key of its target.
    pub fn name(self) -> &'static str {
        match self {
            AnswerType::DayOfMonth => "day_of_month",
            AnswerType::Date => "date",
        }
    }

    pub fn parse(text: &str) -> Option<AnswerType> {
        match text {
            "day_of_month" => Some(AnswerType::DayOfMonth),
            "date" => Some(AnswerType::Date),
            _ => None,
        }
    }
}

/// Default speech confidence threshold of an `ask`: min(recogniser confidence, match score)
/// must reach it for a spoken answer to be taken without a read-back. 0.6 means the
/// answer is at least 2.5 times as likely as any other (docs/speech.md); it is the
/// threshold the held-out accuracy gate (`tests/asr_heldout.rs`) measures.
pub const DEFAULT_CONFIDENCE: f32 = crate::nlu::DEFAULT_THRESHOLD;
/// Default `completetimeout`: silence after speech that already matches. Short, because it
/// only ends utterances the recogniser has already matched to an expected answer (closed
/// questions: "yes", «да», "one"); speech that does not match yet waits
/// `incompletetimeout`. Recognition starts speculatively after half of it, so the answer is
/// usually ready when it expires (issue 4: end of speech → next prompt p50 ≤ 500 ms).
pub const DEFAULT_COMPLETE_TIMEOUT: Duration = Duration::from_millis(400);
/// Default `incompletetimeout`.
pub const DEFAULT_INCOMPLETE_TIMEOUT: Duration = Duration::from_millis(1500);
/// Default `maxspeechtimeout`.
pub const DEFAULT_MAX_SPEECH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a caller may ask to hear a question again before it counts as a no-match.
pub const MAX_REPEATS: u32 = 3;
/// Longest key buffer an `ask` keeps (a longer one is a no-match whatever the intents say),
/// and so the largest `max` of a digit string.
pub const MAX_KEYS: usize = 64;

#[derive(Clone, Debug)]
pub struct Intent {
    pub name: String,
    /// Key sequences that select this intent, e.g. `["1"]`, `["*0"]`.
    pub dtmf: Vec<String>,
    /// Phrases by language that select it when spoken.
    pub phrases: BTreeMap<String, Vec<String>>,
    /// How the robot names this choice in "did you say …?".
    pub say: Vec<PromptItem>,
    pub action: IntentAction,
    /// Declared under `global:`.
    pub global: bool,
    pub pos: SourcePos,
}

#[derive(Clone, Debug)]
pub enum IntentAction {
    Goto(Jump),
    /// Play the question again (not counted as no-match, up to [`MAX_REPEATS`] times).
    Repeat,
}

/// A digit string to collect (VoiceXML `builtin:dtmf/digits?minlength=…;maxlength=…`).
#[derive(Clone, Debug)]
pub struct DigitString {
    pub min: usize,
    pub max: usize,
    /// The key that ends the string early (VoiceXML `termchar`), e.g. `#`.
    pub terminator: Option<char>,
    pub jump: Jump,
}

/// Confirmation of low-confidence speech: `prompt` + the intent's `say` + `question`,
/// answered yes (key 1 or a yes phrase) or no (key 2 or a no phrase).
#[derive(Clone, Debug)]
pub struct Confirm {
    pub min: f32,
    pub prompt: Vec<PromptItem>,
    pub question: Vec<PromptItem>,
}

/// Count-based handling of no-input or no-match: events 1..=max reprompt with
/// `reprompts[min(k, len) - 1]` followed by the question (unless `question` is false);
/// event max+1 goes to `target`.
#[derive(Clone, Debug)]
pub struct Escalation {
    pub max: u32,
    pub reprompts: Vec<Vec<PromptItem>>,
    /// Replay the question after the reprompt.
    pub question: bool,
    pub target: Jump,
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

/// A `record` node.
#[derive(Clone, Debug)]
pub struct Record {
    pub prompt: Vec<PromptItem>,
    pub max_length: Duration,
    pub final_silence: Duration,
    pub transcribe: bool,
    /// Variable that receives the transcript.
    pub store: Option<String>,
    pub next: Jump,
    /// Where to go when nothing was recorded (`on.empty`; default `next`).
    pub empty: Option<Jump>,
}

/// A `webhook` node.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub name: Option<String>,
    /// `None`: the configured CRM webhook URL.
    pub url: Option<Template>,
    pub method: String,
    pub body: JsonTemplate,
    pub timeout: Duration,
    /// (variable, dotted path into the response JSON).
    pub store: Vec<(String, String)>,
    pub next: Jump,
    pub error: Jump,
}

/// How a `transfer` node hands the caller over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// SIP REFER: the trunk connects the caller; the robot leaves at once.
    Blind,
    /// The robot calls the agent, plays the announcement, then bridges the caller.
    #[default]
    Bridged,
}

/// A `transfer` node.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub target: Template,
    pub mode: TransferMode,
    /// Played to the agent before connecting.
    pub announcement: Vec<PromptItem>,
    /// Give up (as `failed`) when no result came after this long.
    pub timeout: Duration,
    /// Outcome recorded when the caller is connected.
    pub outcome: String,
    pub busy: Jump,
    pub noanswer: Jump,
    pub failed: Jump,
}

/// A sub-dialogue: its own nodes, parameters and return values.
#[derive(Clone, Debug)]
pub struct Subdialog {
    pub name: String,
    pub description: Option<String>,
    /// Parameters, visible only inside the sub-dialogue.
    pub params: BTreeMap<String, Variable>,
    pub start: NodeId,
    /// The values its `return` nodes give, in file order.
    pub returns: Vec<String>,
    pub pos: SourcePos,
}

/// JSON with `${…}` templates in its strings (webhook bodies, notify data).
#[derive(Clone, Debug, PartialEq)]
pub enum JsonTemplate {
    Literal(serde_json::Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    pub fn render(&self, vars: &BTreeMap<String, String>) -> serde_json::Value {
        match self {
            JsonTemplate::Literal(v) => v.clone(),
            JsonTemplate::String(t) => serde_json::Value::String(t.render(vars)),
            JsonTemplate::Array(items) => {
                serde_json::Value::Array(items.iter().map(|i| i.render(vars)).collect())
            }
            JsonTemplate::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.render(vars)))
                    .collect(),
            ),
        }
    }

    /// Variables referenced anywhere inside.
    pub fn variables(&self) -> Vec<&str> {
        match self {
            JsonTemplate::Literal(_) => Vec::new(),
            JsonTemplate::String(t) => t.variables().collect(),
            JsonTemplate::Array(items) => items.iter().flat_map(|i| i.variables()).collect(),
            JsonTemplate::Object(fields) => {
                fields.iter().flat_map(|(_, v)| v.variables()).collect()
            }
        }
    }
}

/// One item of a prompt list.
#[derive(Clone, Debug)]
pub struct PromptItem {
    pub kind: PromptKind,
    /// `barge_in:` of the item; `None` inherits the ask's setting.
    pub barge_in: Option<bool>,
    /// `when:` — the item is played only if the condition holds.
    pub when: Option<Expr>,
    pub pos: SourcePos,
}

pub use crate::sayas::Gender;

/// Prompt names for each plural category of a counted noun (`{ number: …, plural: … }`).
#[derive(Clone, Debug, Default)]
pub struct PluralNames {
    pub one: Option<Template>,
    pub few: Option<Template>,
    pub many: Option<Template>,
    pub other: Option<Template>,
}

impl PluralNames {
    /// The name for a category, falling back few → many → other → one.
    pub fn pick(&self, category: crate::sayas::Plural) -> Option<&Template> {
        use crate::sayas::Plural;
        let order: [&Option<Template>; 4] = match category {
            Plural::One => [&self.one, &self.other, &self.many, &self.few],
            Plural::Few => [&self.few, &self.many, &self.other, &self.one],
            Plural::Many => [&self.many, &self.other, &self.few, &self.one],
            Plural::Other => [&self.other, &self.many, &self.few, &self.one],
        };
        order.into_iter().flatten().next()
    }

    pub fn all(&self) -> impl Iterator<Item = &Template> {
        [&self.one, &self.few, &self.many, &self.other]
            .into_iter()
            .flatten()
    }
}

/// What an item speaks. Say-as kinds render to recorded fragments in the call's language
/// (see `crate::sayas`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PromptKind {
    /// A recording `audio/<lang>/<name>.wav`; the name may contain `/` and `${var}`.
    Recording(Template),
    /// Each character 0-9 of the rendered value as `digits/<d>`.
    Digits(Template),
    /// A cardinal number, agreeing with `gender` (ru, uk), optionally followed by a noun in
    /// the plural form the number needs.
    Number {
        value: Template,
        gender: Gender,
        plural: Option<PluralNames>,
    },
    /// An amount in a currency (ISO code, e.g. `RUB`).
    Money { value: Template, currency: Template },
    /// A `YYYY-MM-DD` date.
    Date {
        value: Template,
        year: bool,
        weekday: bool,
    },
    /// An `HH:MM` time.
    Time(Template),
    /// An ordinal 1-99: "fifteenth"; ru/uk genitive «пятнадцатого» (see
    /// [`crate::sayas::ordinal`]).
    Ordinal(Template),
}

impl PromptKind {
    /// The item key as written (`prompt`, `digits`, `number`, …).
    pub fn key(&self) -> &'static str {
        match self {
            PromptKind::Recording(_) => "prompt",
            PromptKind::Digits(_) => "digits",
            PromptKind::Number { .. } => "number",
            PromptKind::Money { .. } => "money",
            PromptKind::Date { .. } => "date",
            PromptKind::Time(_) => "time",
            PromptKind::Ordinal(_) => "ordinal",
        }
    }
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

/// YAML helpers shared with the other YAML formats of the crate (caller scripts).
pub(crate) mod raw_support {
    pub(crate) use super::raw::{OrderedMap, Scalar};
}

/// A YAML syntax or schema error as a located diagnostic; `text` is the file's text.
pub(crate) fn yaml_diagnostic(e: &serde_saphyr::Error, text: &str) -> Diagnostic {
    error::from_yaml_error(e, text)
}

/// How many misspelt keys one load reports before giving up.
const MAX_TYPOS: usize = 20;

/// The diagnostics of a file that does not parse: every misspelt key (each with "did you
/// mean"), found by reading on with the likely fix in place, then the first other error.
/// Positions are in `text`, whatever the fixes did to the columns after them.
fn yaml_diagnostics<T: serde::de::DeserializeOwned>(
    text: &str,
    first: serde_saphyr::Error,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut current = text.to_string();
    // (line, column in `text`, added characters) of each fix made so far.
    let mut edits: Vec<(u32, u32, i64)> = Vec::new();
    let mut err = first;
    for _ in 0..=MAX_TYPOS {
        let (message, line, column) = error::yaml_message(&err);
        let shift: i64 = edits
            .iter()
            .filter(|(l, c, _)| *l == line && *c < column)
            .map(|(_, _, d)| *d)
            .sum();
        let original_column = u32::try_from(i64::from(column) - shift)
            .unwrap_or(column)
            .max(1);
        // Worded from the text as fixed so far (the key a typo was taken for), placed in the
        // text as written.
        let mut d = yaml_errors::explain(&message, line, column, &current);
        d.column = original_column;
        out.push(d);
        let Some((bad, fix)) = yaml_errors::typo_fix(&message) else {
            break;
        };
        let Some(next) = replace_at(&current, line, column, &bad, &fix) else {
            break;
        };
        current = next;
        let added = fix.chars().count() as i64 - bad.chars().count() as i64;
        edits.push((line, original_column, added));
        match serde_saphyr::from_str::<T>(&current) {
            Ok(_) => break,
            Err(e) => {
                // The likely fix made a key the mapping already has: that is the typo's
                // doing, not a second problem of the file.
                let (next_message, next_line, _) = error::yaml_message(&e);
                if next_message.starts_with("duplicate mapping key")
                    && edits.iter().any(|(l, _, _)| *l == next_line)
                {
                    break;
                }
                err = e;
            }
        }
    }
    out
}

/// `text` with `bad` replaced by `fix` where it starts at `line:column` (1-based, in
/// characters); `None` when it does not start there.
fn replace_at(text: &str, line: u32, column: u32, bad: &str, fix: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + fix.len());
    let mut found = false;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line as usize {
            let start: usize = l
                .char_indices()
                .nth(column.saturating_sub(1) as usize)
                .map(|(b, _)| b)?;
            if !l[start..].starts_with(bad) {
                return None;
            }
            out.push_str(&l[..start]);
            out.push_str(fix);
            out.push_str(&l[start + bad.len()..]);
            found = true;
        } else {
            out.push_str(l);
        }
    }
    found.then_some(out)
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
    let raw: raw::RawScenario = serde_saphyr::from_str(text).map_err(|e| {
        LoadError::invalid(file_label, yaml_diagnostics::<raw::RawScenario>(text, e))
    })?;
    compile::compile(file_label, text, raw).map_err(|diags| LoadError::invalid(file_label, diags))
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
