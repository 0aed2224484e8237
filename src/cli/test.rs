//! `ivrflow test [PATHS]`: run the caller scripts (`<scenario>.test.yaml`) of scenarios,
//! check every call's expectations, and report node and edge coverage per scenario.
//!
//! Deterministic: the calls run on the simulator's virtual clock. A failed call prints what
//! differed and its timeline. Exit status 1 when a call fails, a script does not load, or
//! coverage is below `--min-coverage`. `--junit FILE` also writes the results as JUnit XML
//! (one `testsuite` per scenario, one `testcase` per scripted call) for CI test reports.
//!
//! Not here: the simulation (`sim`), the script format (`sim::script`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Also write JUnit XML here.
    pub junit: Option<PathBuf>,
}

/// One scripted call's result.
#[derive(Debug, Clone, Default)]
pub struct CaseResult {
    pub name: String,
    /// `file:line:col` of the call in its script.
    pub location: String,
    /// What differed from the expectations (empty: passed).
    pub failures: Vec<String>,
    /// The call's timeline (for failed calls).
    pub timeline: String,
    /// Length of the call on the virtual clock.
    pub simulated: Duration,
    /// Wall time the simulation took.
    pub took: Duration,
}

/// What one scenario's scripts gave.
#[derive(Debug, Clone, Default)]
pub struct ScenarioResult {
    pub scenario: String,
    pub calls: usize,
    pub failed: usize,
    pub nodes: (usize, usize),
    pub edges: (usize, usize),
    pub cases: Vec<CaseResult>,
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
                let began = Instant::now();
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
                result.cases.push(CaseResult {
                    name: call.name.clone(),
                    location: format!("{}:{}:{}", script.file, call.pos.line, call.pos.column),
                    failures: failures.clone(),
                    timeline: if failures.is_empty() {
                        String::new()
                    } else {
                        format_timeline(&report.timeline)
                    },
                    simulated: report.duration,
                    took: began.elapsed(),
                });
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
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit_xml(&results, broken))
    {
        let _ = writeln!(err, "error: cannot write {}: {e}", path.display());
        return EXIT_USAGE;
    }
    if failed > 0 || broken || !low.is_empty() {
        EXIT_PROBLEMS
    } else {
        EXIT_OK
    }
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The results as JUnit XML: a `testsuite` per scenario (its name, the calls, how many
/// failed), a `testcase` per call (`classname` = scenario, `file`, simulated length in
/// `system-out`), with a `failure` listing what differed and the timeline. Scripts that did
/// not load make one `error` case, so CI does not report a green run that ran nothing.
pub fn junit_xml(results: &[ScenarioResult], broken: bool) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let calls: usize = results.iter().map(|r| r.calls).sum::<usize>() + usize::from(broken);
    let failed: usize = results.iter().map(|r| r.failed).sum();
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let total: Duration = results
        .iter()
        .flat_map(|r| r.cases.iter().map(|c| c.took))
        .sum();
    x.push_str(&format!(
        "<testsuites name=\"ivrflow test\" tests=\"{calls}\" failures=\"{failed}\" errors=\"{}\" time=\"{}\">\n",
        usize::from(broken),
        secs(total)
    ));
    for r in results {
        let took: Duration = r.cases.iter().map(|c| c.took).sum();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{}\">\n",
            xml_escape(&r.scenario),
            r.calls,
            r.failed,
            secs(took)
        ));
        x.push_str(&format!(
            "    <properties><property name=\"node_coverage\" value=\"{}/{}\"/><property name=\"edge_coverage\" value=\"{}/{}\"/></properties>\n",
            r.nodes.0, r.nodes.1, r.edges.0, r.edges.1
        ));
        for c in &r.cases {
            let file = c.location.split(':').next().unwrap_or("");
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" time=\"{}\">\n",
                xml_escape(&r.scenario),
                xml_escape(&c.name),
                xml_escape(file),
                secs(c.took)
            ));
            if !c.failures.is_empty() {
                x.push_str(&format!(
                    "      <failure message=\"{}\">{}\n{}\n\n{}</failure>\n",
                    xml_escape(&c.failures.join("; ")),
                    xml_escape(&c.location),
                    xml_escape(&c.failures.join("\n")),
                    xml_escape(&c.timeline)
                ));
            }
            x.push_str(&format!(
                "      <system-out>simulated call: {}s</system-out>\n    </testcase>\n",
                secs(c.simulated)
            ));
        }
        x.push_str("  </testsuite>\n");
    }
    if broken {
        x.push_str("  <testsuite name=\"scripts\" tests=\"1\" failures=\"0\" errors=\"1\">\n    <testcase classname=\"scripts\" name=\"load\"><error message=\"a caller script or scenario did not load (see the output)\"/></testcase>\n  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
