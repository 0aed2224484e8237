//! Load errors: `file:line:col: error: message` plus an optional `  hint: …` line.
//!
//! One [`LoadError`] describes one file. A file that parses as YAML can have many semantic
//! problems at once (dangling targets, undeclared variables, …): they are all collected into
//! [`LoadError::Invalid`] so an author fixes them in one pass. A YAML syntax or schema error
//! (wrong type, bad indentation) stops the parse, so it comes alone — except misspelt keys,
//! which are all reported (the loader reads on past each with its likely fix), followed by
//! the first other error. The wording of YAML errors is in `yaml_errors.rs`.

use std::fmt;

/// What went wrong, for tests and tools that want to match on the class of a problem
/// rather than on its wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// YAML syntax, unknown key, wrong type, missing field, duplicate key.
    Yaml,
    /// `version` other than the supported one.
    UnsupportedVersion,
    /// A `next` / `on` / `goto` / `start` target that names no node.
    UnknownTarget,
    /// A node with no action key, or with more than one.
    NodeAction,
    /// A key that is valid YAML and known, but not allowed in this place
    /// (`next` on a `goto` node, `on` key naming no intent, …).
    Misplaced,
    /// A `${var}` that names no declared variable, or an assignment to one.
    UndeclaredVariable,
    /// A malformed `${…}` template.
    Template,
    /// An `ask` without `on.noinput` / `on.nomatch` or an intent without a target.
    MissingHandler,
    /// Literal digits that contain something other than 0-9, or a DTMF key sequence with
    /// characters that are not DTMF keys.
    InvalidDigits,
    /// A duration that does not parse or is out of range.
    InvalidDuration,
    /// A name (node, intent, variable, outcome, prompt, language) with characters that are not
    /// allowed, or a duplicate.
    InvalidName,
    /// A value that is well-typed but not acceptable (empty prompt list, empty intent, …).
    InvalidValue,
    /// Nodes that jump to each other forever without waiting for the caller.
    ZeroTimeLoop,
    /// A feature that the language reserves but this version does not implement yet.
    Unsupported,
    /// A `branch`/`switch`/`set`/`when` expression that does not parse or type-check.
    Expression,
    /// Sub-dialogues that call each other in a cycle.
    Recursion,
    /// Lint: a node no call can reach.
    Unreachable,
    /// Lint: nodes from which no path leads to the end of the call (a dead end, or a loop
    /// without exit).
    NoExit,
    /// Lint: a prompt with no recording for one of the scenario's languages.
    MissingPrompt,
    /// Lint: a recording in a format or at a level the runtime cannot play well.
    Audio,
    /// Lint: a prompt that is a synthetic placeholder still to be recorded by a human.
    Synthetic,
    /// Lint: speech input that some language can never match (an intent without phrases).
    MissingPhrases,
    /// Lint: something legal but probably unintended (an unused `next`, an unknown event).
    Suspicious,
    /// Lint: an `acknowledge:` entry that acknowledges nothing (any more).
    Stale,
}

/// How bad a diagnostic is: errors make `ivrflow validate` fail, warnings fail it only
/// with `--deny-warnings`, notes never (they say what was acknowledged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Severity {
    #[default]
    Error,
    Warning,
    Note,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

/// One problem at one place of a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    pub severity: Severity,
    /// 1-based line of the offending YAML node.
    pub line: u32,
    /// 1-based column (in characters) of the offending YAML node.
    pub column: u32,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub(crate) fn new(kind: ErrorKind, pos: super::SourcePos, message: impl Into<String>) -> Self {
        Diagnostic {
            kind,
            severity: Severity::Error,
            line: pos.line,
            column: pos.column,
            message: message.into(),
            hint: None,
        }
    }

    /// A warning instead of an error.
    pub(crate) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// A note: information that never fails a check.
    pub(crate) fn note(mut self) -> Self {
        self.severity = Severity::Note;
        self
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub(crate) fn hint(&mut self, hint: impl Into<String>) -> &mut Self {
        self.hint = Some(hint.into());
        self
    }

    /// Writes `file:line:col: error: message` (or `warning:`) and, if any, `\n  hint: …`.
    pub fn render(&self, file: &str, f: &mut impl fmt::Write) -> fmt::Result {
        write!(
            f,
            "{file}:{}:{}: {}: {}",
            self.line,
            self.column,
            self.severity.as_str(),
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Why a scenario file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file (or directory) could not be read.
    #[error("{file}: error: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid scenario. `diagnostics` is never empty and is
    /// sorted by position.
    #[error("{}", DisplayDiagnostics { file, diagnostics })]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl LoadError {
    /// The file label the error refers to.
    pub fn file(&self) -> &str {
        match self {
            LoadError::Io { file, .. } | LoadError::Invalid { file, .. } => file,
        }
    }

    /// The located problems (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Io { .. } => &[],
            LoadError::Invalid { diagnostics, .. } => diagnostics,
        }
    }

    pub(crate) fn invalid(file: &str, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| (d.line, d.column));
        diagnostics.dedup();
        LoadError::Invalid {
            file: file.to_string(),
            diagnostics,
        }
    }
}

struct DisplayDiagnostics<'a> {
    file: &'a str,
    diagnostics: &'a [Diagnostic],
}

impl fmt::Display for DisplayDiagnostics<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            d.render(self.file, f)?;
        }
        Ok(())
    }
}

/// A serde-saphyr error's message without the trailing "at line L, column C" the library
/// appends, and that location (1-based; 1:1 when it has none).
pub(crate) fn yaml_message(err: &serde_saphyr::Error) -> (String, u32, u32) {
    let (line, column) = err
        .location()
        .map(|l| {
            (
                u32::try_from(l.line()).unwrap_or(u32::MAX).max(1),
                u32::try_from(l.column()).unwrap_or(u32::MAX).max(1),
            )
        })
        .unwrap_or((1, 1));
    let mut message = err.without_snippet().to_string();
    let suffix = format!(" at line {line}, column {column}");
    if let Some(stripped) = message.strip_suffix(&suffix) {
        message.truncate(stripped.len());
    }
    (message, line, column)
}

/// Turns a serde-saphyr error into a diagnostic in plain words (`yaml_errors.rs`), located
/// where the library located it; `text` is the file it was reading.
pub(crate) fn from_yaml_error(err: &serde_saphyr::Error, text: &str) -> Diagnostic {
    let (message, line, column) = yaml_message(err);
    super::yaml_errors::explain(&message, line, column, text)
}
