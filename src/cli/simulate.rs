//! `ivrflow simulate SCENARIO [--var k=v] [--dtmf 1] [--say "yes"] [--wav reply.wav]
//! [--noise] [--silence 5s] [--hangup-after 12s] [--webhook JSON] [--transfer busy] …`:
//! one call on a virtual clock, printed as a timeline plus the CRM payload.
//!
//! The caller's actions are taken in the order they appear on the command line (clap
//! groups repeated flags by name, so [`steps_from_argv`] re-reads the raw arguments).
//! The call's direction and parties are variables like any other: `--var
//! direction=outbound --var customer=+79161234567` (see `sim::call_variables`).
//!
//! Not here: the simulation itself (`sim::run_call`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE};
use crate::dialogue::TransferOutcome;
use crate::media::prompts::PromptCache;
use crate::scenario::{load_file, parse_duration};
use crate::sim::{
    CallerStep, DEFAULT_REACTION, DEFAULT_TRANSFER_TIME, DEFAULT_WEBHOOK_LATENCY, EffectScript,
    RecordingReply, SimOptions, TransferReply, WebhookReply, format_timeline, run_call,
};

/// Arguments of `ivrflow simulate`.
#[derive(Debug, Clone, Default)]
pub struct SimulateArgs {
    pub scenario: PathBuf,
    pub vars: Vec<(String, String)>,
    /// The caller's actions, in order.
    pub steps: Vec<CallerStep>,
    pub effects: EffectScript,
    pub hangup_after: Option<Duration>,
    pub audio: Option<PathBuf>,
    /// Print the `call.completed` payload as JSON only.
    pub json: bool,
}

fn flag_value<'a>(
    argv: &'a [String],
    i: &mut usize,
    name: &str,
) -> Option<Result<&'a str, String>> {
    let arg = argv.get(*i)?;
    if let Some(v) = arg.strip_prefix(&format!("{name}=")) {
        return Some(Ok(v));
    }
    if arg == name {
        *i += 1;
        return Some(
            argv.get(*i)
                .map(String::as_str)
                .ok_or_else(|| format!("{name} needs a value")),
        );
    }
    None
}

/// The caller's actions in command-line order: `--dtmf KEYS`, `--say TEXT`, `--wav FILE`,
/// `--noise`, `--silence DURATION`.
pub fn steps_from_argv(argv: &[String]) -> Result<Vec<CallerStep>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--noise" {
            out.push(CallerStep::Noise {
                after_silence: DEFAULT_REACTION,
            });
        } else if let Some(v) = flag_value(argv, &mut i, "--dtmf") {
            out.push(CallerStep::key(v?));
        } else if let Some(v) = flag_value(argv, &mut i, "--say") {
            out.push(CallerStep::say(v?));
        } else if let Some(v) = flag_value(argv, &mut i, "--wav") {
            out.push(CallerStep::SayWav {
                path: PathBuf::from(v?),
                after_silence: DEFAULT_REACTION,
            });
        } else if let Some(v) = flag_value(argv, &mut i, "--silence") {
            let v = v?;
            out.push(CallerStep::Silence(
                parse_duration(v).map_err(|e| format!("--silence {v}: {e}"))?,
            ));
        }
        i += 1;
    }
    Ok(out)
}

/// Effect results in command-line order: `--webhook JSON`, `--webhook-error MESSAGE`,
/// `--webhook-timeout`, `--transfer connected|busy|no_answer|failed`, `--record TEXT`.
pub fn effects_from_argv(argv: &[String]) -> Result<EffectScript, String> {
    let mut fx = EffectScript::default();
    let mut i = 0;
    while i < argv.len() {
        if argv[i] == "--webhook-timeout" {
            fx.webhooks.push(WebhookReply::NoReply);
        } else if let Some(v) = flag_value(argv, &mut i, "--webhook-error") {
            fx.webhooks.push(WebhookReply::Fail {
                error: v?.to_string(),
                after: DEFAULT_WEBHOOK_LATENCY,
            });
        } else if let Some(v) = flag_value(argv, &mut i, "--webhook") {
            let v = v?;
            let body: serde_json::Value =
                serde_json::from_str(v).map_err(|e| format!("--webhook {v}: not JSON: {e}"))?;
            fx.webhooks.push(WebhookReply::Respond {
                body,
                after: DEFAULT_WEBHOOK_LATENCY,
            });
        } else if let Some(v) = flag_value(argv, &mut i, "--transfer") {
            let outcome = match v? {
                "connected" => TransferOutcome::Connected,
                "busy" => TransferOutcome::Busy,
                "no_answer" | "noanswer" => TransferOutcome::NoAnswer,
                "failed" => TransferOutcome::Failed("failed".to_string()),
                other => {
                    return Err(format!(
                        "--transfer {other}: expected connected, busy, no_answer or failed"
                    ));
                }
            };
            fx.transfers.push(TransferReply {
                outcome,
                after: DEFAULT_TRANSFER_TIME,
            });
        } else if let Some(v) = flag_value(argv, &mut i, "--record") {
            let text = v?.to_string();
            fx.recordings.push(RecordingReply {
                duration: crate::sim::speaking_time(&text),
                transcript: Some(text),
            });
        }
        i += 1;
    }
    Ok(fx)
}

pub fn run(args: &SimulateArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let scenario = match load_file(&args.scenario) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_PROBLEMS;
        }
    };
    let audio = args.audio.clone().unwrap_or_else(super::default_audio);
    let prompts = match PromptCache::load_dir(&audio) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return EXIT_USAGE;
        }
    };
    let vars: BTreeMap<String, String> = args.vars.iter().cloned().collect();
    for k in vars.keys() {
        if !scenario.variables.contains_key(k) {
            let _ = writeln!(
                err,
                "warning: `{k}` is not a variable of {}; it is passed to the CRM but the scenario cannot use it",
                scenario.name
            );
        }
    }
    let opts = SimOptions {
        effects: args.effects.clone(),
        hangup_at: args.hangup_after,
        ..SimOptions::default()
    };
    let report = run_call(Arc::clone(&scenario), vars, prompts, &args.steps, &opts);
    if args.json {
        return match serde_json::to_string_pretty(&report.record) {
            Ok(j) => {
                let _ = writeln!(out, "{j}");
                if report.timed_out {
                    EXIT_PROBLEMS
                } else {
                    EXIT_OK
                }
            }
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                EXIT_PROBLEMS
            }
        };
    }
    let r = &report.record;
    let _ = writeln!(
        out,
        "call: {} ({}), {} caller action(s)",
        scenario.name,
        args.scenario.display(),
        args.steps.len()
    );
    let _ = write!(out, "{}", format_timeline(&report.timeline));
    let _ = writeln!(
        out,
        "outcome: {}   path: {}   duration: {:.1}s   hung up by: {}   rtp packets: {}",
        r.outcome.as_deref().unwrap_or("-"),
        r.path.join(" → "),
        report.duration.as_secs_f64(),
        match r.hangup_by {
            crate::dialogue::HangupBy::Robot => "robot",
            crate::dialogue::HangupBy::Caller => "caller",
        },
        report.packets
    );
    if !report.effects.is_empty() {
        let _ = writeln!(out, "effects:");
        for e in &report.effects {
            if let Ok(j) = serde_json::to_string(e) {
                let _ = writeln!(out, "  {j}");
            }
        }
    }
    match serde_json::to_string_pretty(r) {
        Ok(j) => {
            let _ = writeln!(out, "CRM payload (call.completed):\n{j}");
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
        }
    }
    if report.timed_out {
        let _ = writeln!(
            err,
            "warning: the call did not end within {:.0}s",
            report.duration.as_secs_f64()
        );
        return EXIT_PROBLEMS;
    }
    EXIT_OK
}
