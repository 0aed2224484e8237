//! The `ivrflow` command line: parse arguments, build the runtime, run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ivrflow::config::Config;
use ivrflow::media::prompts::PromptCache;
use ivrflow::sim::{CallerStep, SimOptions};

#[derive(Parser)]
#[command(name = "ivrflow", version, about = "Voice-robot dialogue runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SIP user agent (defaults: 127.0.0.1:5060, bundled scenarios and prompts).
    Serve(ServeArgs),
    /// Check scenario files; prints file:line:col for every problem.
    Validate {
        /// Scenario files or directories (default: the bundled scenarios).
        paths: Vec<PathBuf>,
    },
    /// Play a call through a scenario on a virtual clock and print what happened.
    Simulate(SimulateArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// YAML configuration file; flags override it.
    #[arg(long, env = "IVRFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// SIP UDP listen address.
    #[arg(long)]
    sip_listen: Option<SocketAddr>,
    /// Where call results are POSTed.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Directory of scenario YAML files.
    #[arg(long)]
    scenarios: Option<PathBuf>,
    /// Directory of prompt recordings (audio/<lang>/<name>.wav).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Directory for the database and recordings.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// RTP port range, e.g. 20000-29999.
    #[arg(long)]
    rtp_ports: Option<String>,
    /// Show phone numbers and names in logs.
    #[arg(long)]
    log_pii: bool,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Scenario file.
    scenario: PathBuf,
    /// Call variable, k=v (repeatable).
    #[arg(long = "var", value_parser = parse_kv)]
    vars: Vec<(String, String)>,
    /// Keys to press when the robot asks (repeatable; in order).
    #[arg(long)]
    dtmf: Vec<String>,
    /// Prompt directory.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Print the CRM payload as JSON only.
    #[arg(long)]
    json: bool,
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected k=v, got {s:?}"))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IVRFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Validate { paths } => validate(paths),
        Command::Simulate(args) => simulate(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logging();
    let mut cfg = match &args.config {
        Some(p) => match Config::load(p) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(a) = args.sip_listen {
        cfg.sip.listen = a;
    }
    if let Some(u) = args.webhook_url {
        cfg.webhook.url = Some(u);
    }
    if let Some(s) = args.scenarios {
        cfg.scenarios = s;
    }
    if let Some(a) = args.audio {
        cfg.audio = a;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    if let Some(r) = args.rtp_ports {
        cfg.media.rtp_ports = r;
    }
    if args.log_pii {
        cfg.log.pii = true;
    }
    if let Err(e) = cfg.validate("command line") {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(ivrflow::rt::serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn scenario_files(paths: Vec<PathBuf>) -> Vec<PathBuf> {
    let paths = if paths.is_empty() {
        vec![Config::default().scenarios]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                let mut v: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                    .collect();
                v.sort();
                files.extend(v);
            }
        } else {
            files.push(p);
        }
    }
    files
}

fn validate(paths: Vec<PathBuf>) -> ExitCode {
    let mut failed = 0;
    let files = scenario_files(paths);
    for f in &files {
        match ivrflow::scenario::load_file(f) {
            Ok(_) => println!("{}: ok", f.display()),
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} scenario file(s) have errors", files.len());
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn simulate(args: SimulateArgs) -> ExitCode {
    let scenario = match ivrflow::scenario::load_file(&args.scenario) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let audio = args.audio.unwrap_or_else(|| Config::default().audio);
    let prompts = match PromptCache::load_dir(&audio) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let vars: BTreeMap<String, String> = args.vars.into_iter().collect();
    let script: Vec<CallerStep> = args.dtmf.iter().map(|d| CallerStep::key(d)).collect();
    let report = ivrflow::sim::run_call(scenario, vars, prompts, &script, &SimOptions::default());
    if args.json {
        match serde_json::to_string_pretty(&report.record) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    for ev in &report.record.trace {
        println!("{}", describe(ev));
    }
    println!(
        "outcome: {}   path: {}   duration: {:.1}s   rtp packets: {}",
        report.record.outcome.as_deref().unwrap_or("-"),
        report.record.path.join(" → "),
        report.duration.as_secs_f64(),
        report.packets
    );
    match serde_json::to_string_pretty(&report.record.answers) {
        Ok(j) => println!("answers: {j}"),
        Err(e) => eprintln!("error: {e}"),
    }
    if report.timed_out {
        eprintln!(
            "warning: the call did not end within {:?}",
            Duration::from_secs(600)
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn describe(ev: &ivrflow::call::TraceEvent) -> String {
    use ivrflow::call::TraceEvent as T;
    let t = |ms: &u64| format!("{:>7.2}s", *ms as f64 / 1000.0);
    match ev {
        T::Play {
            at_ms,
            prompts,
            duration_ms,
            ..
        } => {
            format!(
                "{} ▶ play {} ({:.2}s)",
                t(at_ms),
                prompts.join(" + "),
                *duration_ms as f64 / 1000.0
            )
        }
        T::PlayFinished { at_ms, .. } => format!("{} ■ prompt finished", t(at_ms)),
        T::PlayStopped {
            at_ms, heard_ms, ..
        } => {
            format!(
                "{} ■ prompt cut after {:.2}s (barge-in)",
                t(at_ms),
                *heard_ms as f64 / 1000.0
            )
        }
        T::MissingPrompt { at_ms, prompt } => format!("{} ! missing prompt {prompt}", t(at_ms)),
        T::Dtmf { at_ms, digit } => format!("{} ☎ caller pressed {digit}", t(at_ms)),
        T::RobotHangup { at_ms } => format!("{} ✆ robot hangs up", t(at_ms)),
        T::CallerHangup { at_ms } => format!("{} ✆ caller hangs up", t(at_ms)),
    }
}
