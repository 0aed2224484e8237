//! `ivrflow test [PATHS]`: run the caller scripts (`<scenario>.test.yaml`) of scenarios,
//! check every call's expectations, and report node and edge coverage per scenario.
//!
//! Deterministic: the calls run on the simulator's virtual clock. A failed call prints what
//! differed and its timeline. Exit status 1 when a call fails, a script does not load, or
//! coverage is below `--min-coverage`.
//!
//! Not here: the simulation (`sim`), the script format (`sim::script`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::{EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, is_script, yaml_files};
use crate::media::prompts::PromptCache;
use crate::scenario::{Scenario, load_file};
use crate::sim::coverage::{Coverage, percent};
use crate::sim::script::{Script, check, load_script, script_path_for};
use crate::sim::{SimOptions, format_timeline, run_call};

/// Arguments of `ivrflow test`.
#[derive(Debug, Clone, Default)]
pub struct TestArgs {
    /// Scenario files, caller scripts or directories (default: the bundled scenarios).
    pub paths: Vec<PathBuf>,
    pub audio: Option<PathBuf>,
    /// Print every call's timeline, not only failed ones.
    pub verbose: bool,
    /// Fail when a scenario's edge coverage is below this percentage.
    pub min_coverage: Option<f64>,
}

/// What one scenario's scripts gave.
#[derive(Debug, Clone, Default)]
pub struct ScenarioResult {
    pub scenario: String,
    pub calls: usize,
    pub failed: usize,
    pub nodes: (usize, usize),
    pub edges: (usize, usize),
}

/// Runs the scripts and prints; returns per-scenario results and whether anything could
/// not be loaded.
pub fn test(args: &TestArgs, out: &mut dyn Write) -> Result<(Vec<ScenarioResult>, bool), String> {
    let (scenarios, mut scripts) = yaml_files(&args.paths, &super::default_scenarios());
    let audio = args.audio.clone().unwrap_or_else(super::default_audio);
    let prompts = Arc::new(PromptCache::load_dir(&audio).map_err(|e| format!("error: {e}"))?);
    let mut broken = false;
    for s in &scenarios {
        let script = script_path_for(s);
        if script.is_file() {
            if !scripts.contains(&script) {
                scripts.push(script);
            }
        } else {
            let _ = writeln!(
                out,
                "{}: warning: no caller script ({} does not exist)",
                s.display(),
                script.display()
            );
        }
    }
    scripts.sort();
    // Scripts grouped by the scenario they exercise.
    let mut by_scenario: BTreeMap<PathBuf, Vec<Script>> = BTreeMap::new();
    for path in &scripts {
        if !is_script(path) {
            continue;
        }
        match load_script(path) {
            Ok(script) => by_scenario
                .entry(script.scenario.clone())
                .or_default()
                .push(script),
            Err(e) => {
                broken = true;
                let _ = writeln!(out, "{e}");
            }
        }
    }
    let mut results = Vec::new();
    for (scenario_path, scripts) in by_scenario {
        let scenario: Arc<Scenario> = match load_file(&scenario_path) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                broken = true;
                let _ = writeln!(out, "{e}");
                continue;
            }
        };
        let _ = writeln!(out, "{} ({})", scenario.name, scenario_path.display());
        let mut coverage = Coverage::default();
        let mut result = ScenarioResult {
            scenario: scenario.name.clone(),
            ..ScenarioResult::default()
        };
        for script in &scripts {
            for call in &script.calls {
                let opts = SimOptions {
                    effects: call.effects.clone(),
                    ..SimOptions::default()
                };
                let report = run_call(
                    Arc::clone(&scenario),
                    call.variables.clone(),
                    Arc::clone(&prompts),
                    &call.steps,
                    &opts,
                );
                coverage.add(&report);
                let failures = check(&call.expect, &report);
                result.calls += 1;
                let summary = format!(
                    "{:.1}s, outcome {}",
                    report.duration.as_secs_f64(),
                    report.record.outcome.as_deref().unwrap_or("-")
                );
                if failures.is_empty() {
                    let _ = writeln!(out, "  ok    {} ({summary})", call.name);
                    if args.verbose {
                        let _ = write!(out, "{}", indent(&format_timeline(&report.timeline)));
                    }
                } else {
                    result.failed += 1;
                    let _ = writeln!(
                        out,
                        "  FAIL  {} ({summary})  {}:{}:{}",
                        call.name, script.file, call.pos.line, call.pos.column
                    );
                    for f in &failures {
                        let _ = writeln!(out, "          {f}");
                    }
                    let _ = write!(out, "{}", indent(&format_timeline(&report.timeline)));
                }
            }
        }
        result.nodes = coverage.nodes(&scenario);
        result.edges = coverage.edges(&scenario);
        let _ = writeln!(
            out,
            "  coverage: nodes {}/{} ({:.0}%), edges {}/{} ({:.0}%)",
            result.nodes.0,
            result.nodes.1,
            percent(result.nodes.0, result.nodes.1),
            result.edges.0,
            result.edges.1,
            percent(result.edges.0, result.edges.1)
        );
        for n in coverage.uncovered_nodes(&scenario) {
            let _ = writeln!(out, "    node not reached: {n}");
        }
        for e in coverage.uncovered_edges(&scenario) {
            let _ = writeln!(out, "    edge not taken: {e}");
        }
        results.push(result);
    }
    Ok((results, broken))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("        {l}\n")).collect()
}

pub fn run(args: &TestArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let (results, broken) = match test(args, out) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_USAGE;
        }
    };
    let calls: usize = results.iter().map(|r| r.calls).sum();
    let failed: usize = results.iter().map(|r| r.failed).sum();
    let _ = writeln!(
        out,
        "{} scenario(s), {calls} call(s): {} passed, {failed} failed",
        results.len(),
        calls - failed
    );
    let low: Vec<&ScenarioResult> = results
        .iter()
        .filter(|r| {
            args.min_coverage
                .is_some_and(|min| percent(r.edges.0, r.edges.1) < min)
        })
        .collect();
    for r in &low {
        let _ = writeln!(
            out,
            "{}: edge coverage {:.0}% is below the required {:.0}%",
            r.scenario,
            percent(r.edges.0, r.edges.1),
            args.min_coverage.unwrap_or(0.0)
        );
    }
    if results.is_empty() && !broken {
        let _ = writeln!(err, "error: no caller scripts found");
        return EXIT_USAGE;
    }
    if failed > 0 || broken || !low.is_empty() {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}
