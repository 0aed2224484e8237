//! `ivrflow validate [PATHS]`: load every scenario, lint it against the audio, print
//! `file:line:col` diagnostics, and fail when there is an error (or, with
//! `--deny-warnings`, a warning). Notes (acknowledged placeholders) never fail it.
//!
//! Not here: the checks themselves (`scenario::compile`, `scenario::lint`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, yaml_files};
use crate::media::prompts::PromptCache;
use crate::scenario::lint::{Audio, lint};
use crate::scenario::{LoadError, Severity, load_file};

/// Arguments of `ivrflow validate`.
#[derive(Debug, Clone, Default)]
pub struct ValidateArgs {
    /// Scenario files or directories (default: the bundled scenarios).
    pub paths: Vec<PathBuf>,
    /// Prompt directory (default: the bundled audio).
    pub audio: Option<PathBuf>,
    /// Skip the prompt and audio checks.
    pub no_audio: bool,
    /// Fail on warnings too.
    pub deny_warnings: bool,
    /// Print errors only.
    pub quiet: bool,
}

/// Counts of one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub errors: usize,
    pub warnings: usize,
}

/// Validates and prints; returns the summary (or `Err` when the audio cannot be loaded).
pub fn validate(args: &ValidateArgs, out: &mut dyn Write) -> Result<Summary, String> {
    let (files, _) = yaml_files(&args.paths, &super::default_scenarios());
    let audio_dir = args.audio.clone().unwrap_or_else(super::default_audio);
    let cache = if args.no_audio {
        None
    } else {
        Some(PromptCache::load_dir(&audio_dir).map_err(|e| {
            format!("error: cannot load the prompts for the checks: {e}\n  hint: pass --audio DIR, or --no-audio to skip prompt checks")
        })?)
    };
    let mut summary = Summary::default();
    for file in &files {
        summary.files += 1;
        let label = file.display().to_string();
        match load_file(file) {
            Err(LoadError::Io { source, .. }) => {
                summary.errors += 1;
                let _ = writeln!(out, "{label}: error: cannot read: {source}");
            }
            Err(e) => {
                // The file does not compile; still say which prompts it names do not exist.
                let mut diags = e.diagnostics().to_vec();
                if let Some(cache) = &cache
                    && !diags
                        .iter()
                        .any(|d| d.kind == crate::scenario::ErrorKind::Yaml)
                    && let Ok(text) = std::fs::read_to_string(file)
                {
                    diags.extend(crate::scenario::lint::missing_literal_prompts(&text, cache));
                }
                diags.sort_by_key(|d| (d.line, d.column));
                summary.errors += diags.len().max(1);
                for d in &diags {
                    let mut s = String::new();
                    let _ = d.render(&label, &mut s);
                    let _ = writeln!(out, "{s}");
                }
            }
            Ok(scenario) => {
                let audio = cache.as_ref().map(|c| Audio {
                    cache: c,
                    dir: Some(Path::new(&audio_dir)),
                });
                let diags = lint(&scenario, audio.as_ref());
                let count = |s: Severity| diags.iter().filter(|d| d.severity == s).count();
                let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
                summary.errors += errors;
                summary.warnings += warnings;
                for d in &diags {
                    if args.quiet && d.severity != Severity::Error {
                        continue;
                    }
                    let mut s = String::new();
                    let _ = d.render(&label, &mut s);
                    let _ = writeln!(out, "{s}");
                }
                if errors == 0 && !args.quiet {
                    let _ = writeln!(
                        out,
                        "{label}: ok{}",
                        if warnings > 0 {
                            format!(
                                " ({warnings} warning{})",
                                if warnings == 1 { "" } else { "s" }
                            )
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
    }
    Ok(summary)
}

/// The command: prints to `out` / `err`, returns the exit status.
pub fn run(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let summary = match validate(args, out) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_USAGE;
        }
    };
    if summary.files == 0 {
        let _ = writeln!(err, "error: no scenario files found");
        return EXIT_USAGE;
    }
    let _ = writeln!(
        out,
        "{} scenario file{}: {} error{}, {} warning{}",
        summary.files,
        if summary.files == 1 { "" } else { "s" },
        summary.errors,
        if summary.errors == 1 { "" } else { "s" },
        summary.warnings,
        if summary.warnings == 1 { "" } else { "s" },
    );
    if summary.errors > 0 || (args.deny_warnings && summary.warnings > 0) {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}

/// `ivrflow validate --format json`: the same checks as [`validate`], as one JSON document
/// for editors and CI — `{"files": [{"file", "ok", "diagnostics": [{"severity", "kind",
/// "line", "column", "message", "hint"}]}], "errors", "warnings"}`. Exit status as [`run`].
pub fn run_json(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let (files, _) = yaml_files(&args.paths, &super::default_scenarios());
    let audio_dir = args.audio.clone().unwrap_or_else(super::default_audio);
    let cache = match args.no_audio {
        true => None,
        false => match PromptCache::load_dir(&audio_dir) {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = writeln!(err, "error: cannot load the prompts for the checks: {e}");
                return EXIT_USAGE;
            }
        },
    };
    if files.is_empty() {
        let _ = writeln!(err, "error: no scenario files found");
        return EXIT_USAGE;
    }
    let diag = |d: &crate::scenario::Diagnostic| {
        serde_json::json!({
            "severity": d.severity.as_str(),
            "kind": snake_case(&format!("{:?}", d.kind)),
            "line": d.line,
            "column": d.column,
            "message": d.message,
            "hint": d.hint,
        })
    };
    let (mut errors, mut warnings) = (0usize, 0usize);
    let mut docs = Vec::new();
    for file in &files {
        let label = file.display().to_string();
        let diags: Vec<crate::scenario::Diagnostic> = match load_file(file) {
            Err(LoadError::Io { source, .. }) => {
                errors += 1;
                docs.push(
                    serde_json::json!({"file": label, "ok": false, "diagnostics": [
                    {"severity": "error", "kind": "io", "line": 0, "column": 0,
                     "message": format!("cannot read: {source}"), "hint": null}]}),
                );
                continue;
            }
            Err(e) => e.diagnostics().to_vec(),
            Ok(scenario) => {
                let audio = cache.as_ref().map(|c| Audio {
                    cache: c,
                    dir: Some(Path::new(&audio_dir)),
                });
                lint(&scenario, audio.as_ref())
            }
        };
        let e = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        errors += e;
        warnings += diags.len() - e;
        let shown: Vec<serde_json::Value> = diags
            .iter()
            .filter(|d| !(args.quiet && d.severity == Severity::Warning))
            .map(diag)
            .collect();
        docs.push(serde_json::json!({"file": label, "ok": e == 0, "diagnostics": shown}));
    }
    let doc = serde_json::json!({"files": docs, "errors": errors, "warnings": warnings});
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    );
    if errors > 0 || (args.deny_warnings && warnings > 0) {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}

/// `UnknownNode` → `unknown_node` (the JSON form of an [`crate::scenario::ErrorKind`]).
fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
