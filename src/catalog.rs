//! What a node serves: its scenarios, their prompts and the inbound routes — loaded and
//! checked as one set at start, and again on reload (SIGHUP, `POST /v1/scenarios/reload`).
//!
//! Each scenario file is checked on its own: compiled, linted against the prompts (a
//! missing recording is an error), and refused when it takes speech and the node has no
//! speech model. A file that fails keeps the version loaded before it (if any) and its
//! problems are reported; the others are replaced. Calls in flight hold their own
//! `Arc<Scenario>` and `Arc<PromptCache>`, so they finish on the graph they started on;
//! the next call gets the new set.
//!
//! Which scenarios an inbound call can reach: the route table (dialled number → scenario),
//! and — only when `by_name` — any scenario by its file name as the Request-URI user
//! (the loopback demo does that; a node facing a trunk should route explicitly, so an
//! outbound-only scenario cannot be called in). The dialer may use every loaded scenario.
//!
//! Reads files (scenarios, WAVs); no clock, no sockets.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::media::prompts::PromptCache;
use crate::scenario::lint::{Audio, lint};
use crate::scenario::{InputMode, NodeKind, Scenario, Severity, load_str};

/// The set a node serves.
#[derive(Clone)]
pub struct Catalog {
    pub scenarios: BTreeMap<String, Arc<Scenario>>,
    pub prompts: Arc<PromptCache>,
    pub inbound: Inbound,
    /// A digest of each scenario's file text, to tell what a reload changed.
    digests: BTreeMap<String, u64>,
}

impl Catalog {
    /// A set built in code (tests, the simulator): no files behind it.
    pub fn new(
        scenarios: BTreeMap<String, Arc<Scenario>>,
        prompts: Arc<PromptCache>,
        inbound: Inbound,
    ) -> Catalog {
        Catalog {
            scenarios,
            prompts,
            inbound,
            digests: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("scenarios", &self.scenarios.keys().collect::<Vec<_>>())
            .field("prompts", &self.prompts.len())
            .field("inbound", &self.inbound)
            .finish()
    }
}

/// Which scenarios inbound calls reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    /// Dialled number (Request-URI user) → scenario name.
    pub routes: BTreeMap<String, String>,
    /// Any scenario by its name as the Request-URI user, too.
    pub by_name: bool,
}

impl Inbound {
    /// The scenario an inbound call to `dialled` runs, if any may.
    pub fn route<'a>(&'a self, dialled: &'a str) -> Option<&'a str> {
        match self.routes.get(dialled) {
            Some(s) => Some(s),
            None if self.by_name => Some(dialled),
            None => None,
        }
    }
}

/// One scenario file that could not be (re)loaded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    pub scenario: String,
    pub file: String,
    /// `file:line:col: error: …` lines.
    pub errors: Vec<String>,
    /// An earlier version stays in service.
    pub kept_previous: bool,
}

/// What a load did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    /// Scenarios in service after the load.
    pub loaded: Vec<String>,
    /// New or changed this time (all of them at start).
    pub updated: Vec<String>,
    /// Files gone since the last load; no new call reaches them.
    pub removed: Vec<String>,
    pub problems: Vec<Problem>,
    /// Routes naming a scenario that is not in service.
    pub route_errors: Vec<String>,
    /// The prompts could not be re-read (the previous set stays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts_error: Option<String>,
    pub prompts: usize,
}

impl Report {
    /// Problems that concern a scenario inbound calls can reach, or a broken route: what
    /// `serve` refuses to start with.
    pub fn blocking(&self, inbound: &Inbound) -> Vec<String> {
        let reachable = |name: &str| inbound.by_name || inbound.routes.values().any(|s| s == name);
        let mut out: Vec<String> = self
            .problems
            .iter()
            .filter(|p| reachable(&p.scenario))
            .flat_map(|p| p.errors.iter().cloned())
            .collect();
        out.extend(self.route_errors.iter().cloned());
        out
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.route_errors.is_empty() && self.prompts_error.is_none()
    }
}

/// Whether a scenario needs the speech model.
pub fn accepts_speech(s: &Scenario) -> bool {
    s.nodes.iter().any(|n| match &n.kind {
        NodeKind::Ask(ask) => ask.inputs.contains(&InputMode::Speech),
        NodeKind::Record(r) => r.transcribe,
        _ => false,
    })
}

/// Where the files are and what the node can do.
pub struct Sources<'a> {
    pub scenarios: &'a Path,
    pub audio: &'a Path,
    pub inbound: Inbound,
    /// The speech model is loaded (scenarios that take speech can run).
    pub speech: bool,
}

/// Loads the set; `previous` is what is in service now (a reload). `Err` only when there
/// is nothing at all to serve (no prompts readable and no previous set).
pub fn load(src: &Sources<'_>, previous: Option<&Catalog>) -> Result<(Catalog, Report), String> {
    let mut report = Report::default();
    let prompts = match PromptCache::load_dir(src.audio) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            let why = format!("{}: cannot load the prompts: {e}", src.audio.display());
            match previous {
                Some(prev) => {
                    report.prompts_error = Some(why);
                    prev.prompts.clone()
                }
                None => return Err(why),
            }
        }
    };
    report.prompts = prompts.len();
    let mut scenarios = BTreeMap::new();
    let mut digests = BTreeMap::new();
    let files = match scenario_files(src.scenarios) {
        Ok(f) => f,
        Err(e) => {
            // The directory is unreadable: nothing changes.
            report.problems.push(Problem {
                scenario: String::new(),
                file: src.scenarios.display().to_string(),
                errors: vec![e],
                kept_previous: previous.is_some(),
            });
            if let Some(prev) = previous {
                scenarios = prev.scenarios.clone();
                digests = prev.digests.clone();
            }
            Vec::new()
        }
    };
    let audio = Audio {
        cache: &prompts,
        dir: Some(src.audio),
    };
    for file in files {
        let label = file.path.display().to_string();
        let errors = match file.duplicate_of {
            Some(first) => vec![format!(
                "{label}:1:1: error: scenario `{}` is also defined by {first} (keep one of the .yaml / .yml files)",
                file.stem
            )],
            None => match std::fs::read_to_string(&file.path)
                .map_err(|e| vec![format!("{label}: error: cannot read: {e}")])
                .and_then(|text| {
                    load_str(&label, &text)
                        .map(|s| (s, digest(&text)))
                        .map_err(|e| render(&label, e.diagnostics()))
                }) {
                Err(errors) => errors,
                Ok((scenario, digest)) => {
                    let mut errs: Vec<_> = lint(&scenario, Some(&audio))
                        .into_iter()
                        .filter(|d| d.severity == Severity::Error)
                        .collect();
                    errs.sort_by_key(|d| (d.line, d.column));
                    let mut errors = render(&label, &errs);
                    if !src.speech && accepts_speech(&scenario) {
                        errors.push(format!(
                            "{label}:1:1: error: the scenario takes speech, but no speech model is loaded"
                        ));
                    }
                    if errors.is_empty() {
                        let changed = previous
                            .and_then(|p| p.digests.get(&file.stem))
                            .is_none_or(|old| *old != digest);
                        let same = previous
                            .filter(|_| !changed)
                            .and_then(|p| p.scenarios.get(&file.stem).cloned());
                        if changed {
                            report.updated.push(file.stem.clone());
                        }
                        digests.insert(file.stem.clone(), digest);
                        // Unchanged: the graph in service stays (calls compare by identity).
                        scenarios.insert(
                            file.stem.clone(),
                            same.unwrap_or_else(|| Arc::new(scenario)),
                        );
                        continue;
                    }
                    errors
                }
            },
        };
        let old = previous.and_then(|p| p.scenarios.get(&file.stem));
        if let Some(old) = old {
            scenarios.insert(file.stem.clone(), old.clone());
            if let Some(d) = previous.and_then(|p| p.digests.get(&file.stem)) {
                digests.insert(file.stem.clone(), *d);
            }
        }
        report.problems.push(Problem {
            scenario: file.stem,
            file: label,
            errors,
            kept_previous: old.is_some(),
        });
    }
    if let Some(prev) = previous {
        report.removed = prev
            .scenarios
            .keys()
            .filter(|k| !scenarios.contains_key(*k))
            .cloned()
            .collect();
    }
    for (number, scenario) in &src.inbound.routes {
        if !scenarios.contains_key(scenario) {
            report.route_errors.push(format!(
                "route `{number}` names scenario `{scenario}`, which is not loaded"
            ));
        }
    }
    report.loaded = scenarios.keys().cloned().collect();
    Ok((
        Catalog {
            scenarios,
            prompts,
            inbound: src.inbound.clone(),
            digests,
        },
        report,
    ))
}

fn digest(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn render(label: &str, diags: &[crate::scenario::Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| {
            let mut s = String::new();
            let _ = d.render(label, &mut s);
            s
        })
        .collect()
}

struct ScenarioFile {
    stem: String,
    path: std::path::PathBuf,
    /// Another file already defines this name.
    duplicate_of: Option<String>,
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted, each with the name it defines.
fn scenario_files(dir: &Path) -> Result<Vec<ScenarioFile>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: error: cannot read: {e}", dir.display()))?;
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
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for path in paths {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let duplicate_of = seen.get(&stem).cloned();
        if duplicate_of.is_none() {
            seen.insert(stem.clone(), path.display().to_string());
        }
        out.push(ScenarioFile {
            stem,
            path,
            duplicate_of,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
