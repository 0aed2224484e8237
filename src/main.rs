//! The `ivrflow` command line: parse arguments, build the runtime, run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use ivrflow::config::{Config, LogFormat};

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
    /// Check scenario files and lint them against the audio; prints file:line:col for
    /// every problem, exits 1 on errors.
    Validate(ValidateArgs),
    /// Play a call through a scenario on a virtual clock and print what happened.
    Simulate(SimulateArgs),
    /// Run the caller scripts (<scenario>.test.yaml) and report node and edge coverage.
    Test(TestArgs),
    /// Draw a scenario as a graph.
    Graph(GraphArgs),
    /// List and replay webhook outbox events (also while a server runs on the data dir).
    Events(EventsArgs),
    /// Show how a spoken answer is understood, step by step (docs/speech.md).
    Explain(ivrflow::cli::explain::ExplainArgs),
    /// Write a commented configuration file to start from (every key, with its default).
    Init(InitArgs),
}

#[derive(clap::Args)]
struct InitArgs {
    /// Where to write it.
    #[arg(long, short, default_value = "ivrflow.yaml")]
    output: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args)]
struct EventsArgs {
    #[command(subcommand)]
    command: EventsCommand,
    /// YAML configuration file (for its data_dir).
    #[arg(long, env = "IVRFLOW_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory holding ivrflow.sqlite3 (default: the config's, else ./data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// List events, oldest first.
    List {
        /// Only events in this state: pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        /// Only the events of this call (its call_ref).
        #[arg(long)]
        call: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a dead or delivered event pending again (same webhook-id, fresh attempts).
    Replay {
        /// The event id (msg_…).
        id: String,
    },
}

#[derive(clap::Args)]
#[command(after_help = "\
Secrets are read from the environment (flags and their values show in `ps`):
  IVRFLOW_API_TOKEN       bearer token of the control API and the web console (at least 16
                          characters); without it the API is off (or api.token in the config)
  IVRFLOW_WEBHOOK_SECRET  Standard Webhooks signing secret, whsec_<base64> (or webhook.secret)
  IVRFLOW_TRUNK_PASSWORD  digest password of trunks that have a username but no password

Other environment variables:
  IVRFLOW_CONFIG          configuration file (as --config)
  IVRFLOW_MODEL           Whisper model (as --model)
  IVRFLOW_LOG             log filter, e.g. debug or info,ivrflow::sip=debug (tracing EnvFilter)
  NO_COLOR                no colours in text logs (also off when stderr is not a terminal)

Without --config: ./ivrflow.yaml, else /etc/ivrflow/ivrflow.yaml, else built-in defaults.
`ivrflow init` writes a commented configuration file.")]
struct ServeArgs {
    /// YAML configuration file; flags override it (default: ./ivrflow.yaml, else
    /// /etc/ivrflow/ivrflow.yaml, else built-in defaults).
    #[arg(long, env = "IVRFLOW_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object per line); default: log.format, else text.
    #[arg(long, value_name = "text|json")]
    log_format: Option<LogFormat>,
    /// SIP listen address: `udp:IP:PORT`, `tcp:IP:PORT`, `tls:IP:PORT`, or a bare
    /// `IP:PORT` for UDP; repeatable (one of each transport). IPv6 as `[::1]:5060`.
    #[arg(long, value_name = "[udp:|tcp:|tls:]IP:PORT")]
    sip_listen: Vec<String>,
    /// PEM certificate chain for the `tls:` listener (sip.tls_cert).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for the `tls:` listener (sip.tls_key).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
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
    /// Control API listen address (default 127.0.0.1:8080); the API needs a token,
    /// IVRFLOW_API_TOKEN or api.token.
    #[arg(long)]
    api_listen: Option<SocketAddr>,
    /// ggml Whisper model for scenarios that accept speech (default: $IVRFLOW_MODEL, else
    /// models/ggml-base-q8_0.bin, made by ./scripts/setup.sh).
    #[arg(long)]
    model: Option<PathBuf>,
    /// One SIP trunk for outbound calls, `sip:USER:PASSWORD@HOST:PORT`: registers there
    /// and sends `POST /v1/calls {"to":"100",…}` as `sip:100@HOST:PORT` through it.
    #[arg(long)]
    trunk: Option<String>,
    /// The store: `postgres://USER:PASS@HOST:PORT/DB` shared by several nodes (default:
    /// SQLite in the data directory); also IVRFLOW_STORE_URL.
    #[arg(long, env = "IVRFLOW_STORE_URL", hide_env_values = true)]
    store: Option<String>,
    /// This node's name (unique among the nodes sharing a store).
    #[arg(long)]
    node: Option<String>,
    /// Inbound calls may reach any scenario by its file name as the dialled number
    /// (default: only when SIP listens on loopback; otherwise `routes:` only).
    #[arg(long, value_name = "true|false")]
    inbound_by_name: Option<bool>,
    /// Start even when a scenario inbound calls can reach does not load (it is left out).
    #[arg(long)]
    allow_broken_scenarios: bool,
}

#[derive(clap::Args)]
struct ValidateArgs {
    /// Scenario files or directories (default: the bundled scenarios).
    paths: Vec<PathBuf>,
    /// Prompt directory to check prompts against (default: the bundled audio).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Skip the prompt and audio checks.
    #[arg(long)]
    no_audio: bool,
    /// Exit 1 on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Print errors only.
    #[arg(long, short)]
    quiet: bool,
    /// `text` (file:line:col lines) or `json` (one document: files, diagnostics, counts).
    #[arg(long, default_value = "text", value_name = "text|json")]
    format: ValidateFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ValidateFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Scenario file.
    scenario: PathBuf,
    /// Call variable, k=v (repeatable).
    #[arg(long = "var", value_parser = parse_kv)]
    vars: Vec<(String, String)>,
    /// Keys to press when the robot asks (repeatable; caller actions run in command-line order).
    #[arg(long)]
    dtmf: Vec<String>,
    /// Words to say when the robot listens (repeatable).
    #[arg(long)]
    say: Vec<String>,
    /// A recording of the caller's answer, transcribed with the speech recogniser (repeatable).
    #[arg(long)]
    wav: Vec<PathBuf>,
    /// Say something the recogniser cannot use (repeatable).
    #[arg(long, action = ArgAction::Count)]
    noise: u8,
    /// Stay silent this long, e.g. 5s (repeatable).
    #[arg(long)]
    silence: Vec<String>,
    /// Hang up this long after the call started, e.g. 12s.
    #[arg(long, value_parser = parse_dur)]
    hangup_after: Option<Duration>,
    /// Reply to the next webhook with this JSON body (repeatable, in order).
    #[arg(long)]
    webhook: Vec<String>,
    /// Fail the next webhook with this message (repeatable).
    #[arg(long)]
    webhook_error: Vec<String>,
    /// Never reply to the next webhook (repeatable).
    #[arg(long, action = ArgAction::Count)]
    webhook_timeout: u8,
    /// Outcome of the next transfer: connected, busy, no_answer, failed (repeatable).
    #[arg(long)]
    transfer: Vec<String>,
    /// What the caller says into the next recording (repeatable).
    #[arg(long)]
    record: Vec<String>,
    /// Prompt directory.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Print the CRM payload as JSON only.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct TestArgs {
    /// Scenario files, caller scripts or directories (default: the bundled scenarios).
    paths: Vec<PathBuf>,
    /// Prompt directory.
    #[arg(long)]
    audio: Option<PathBuf>,
    /// Print every call's timeline.
    #[arg(long, short)]
    verbose: bool,
    /// Fail when a scenario's edge coverage is below this percentage.
    #[arg(long)]
    min_coverage: Option<f64>,
    /// Also write the results as JUnit XML to this file (for CI test reports).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(clap::Args)]
struct GraphArgs {
    /// Scenario file.
    scenario: PathBuf,
    /// dot, mermaid, svg or png (svg and png need Graphviz).
    #[arg(long, default_value = "dot")]
    format: ivrflow::cli::graph::Format,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

fn parse_dur(s: &str) -> Result<Duration, String> {
    ivrflow::scenario::parse_duration(s)
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected k=v, got {s:?}"))
}

/// Logs go to stderr (journald takes them from there under systemd): `text`, coloured only
/// when stderr is a terminal and `NO_COLOR` is unset, or `json`, one object per line with
/// the event's fields at the top level and the current span's fields (the call) under
/// `span`.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("IVRFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => fmt.init(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Validate(args) => validate(args),
        Command::Simulate(args) => simulate(args),
        Command::Test(args) => test(args),
        Command::Graph(args) => graph(args),
        Command::Events(args) => events(args),
        Command::Explain(args) => ExitCode::from(ivrflow::cli::explain::run(
            &args,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
        Command::Init(args) => ExitCode::from(ivrflow::cli::init(
            &args.output,
            args.force,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )),
    }
}

/// `--sip-listen` values over the configuration: one address per transport.
fn apply_sip_listen(cfg: &mut Config, specs: &[String]) -> Result<(), String> {
    use ivrflow::sip::transport::{Listen, Transport};
    let mut seen = Vec::new();
    for spec in specs {
        let l = Listen::parse(spec).map_err(|e| format!("--sip-listen {e}"))?;
        if seen.contains(&l.transport) {
            return Err(format!(
                "--sip-listen: {} given twice (one listener per transport)",
                l.transport
            ));
        }
        seen.push(l.transport);
        match l.transport {
            Transport::Udp => cfg.sip.listen = l.addr,
            Transport::Tcp => cfg.sip.tcp = Some(l.addr),
            Transport::Tls => cfg.sip.tls = Some(l.addr),
        }
    }
    Ok(())
}

fn serve(args: ServeArgs) -> ExitCode {
    let config_path = args
        .config
        .clone()
        .or_else(ivrflow::config::default_config_path);
    let mut cfg = match &config_path {
        Some(p) => match Config::load(p) {
            Ok(mut c) => {
                c.source = Some(p.clone());
                c
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    init_logging(args.log_format.unwrap_or(cfg.log.format));
    match &config_path {
        Some(p) => tracing::info!(config = %p.display(), "configuration read"),
        None => tracing::info!(
            "no configuration file (./ivrflow.yaml, {}): built-in defaults",
            ivrflow::config::SYSTEM_CONFIG
        ),
    }
    if let Err(e) = apply_sip_listen(&mut cfg, &args.sip_listen) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(f) = args.tls_cert {
        cfg.sip.tls_cert = Some(f);
    }
    if let Some(f) = args.tls_key {
        cfg.sip.tls_key = Some(f);
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
    if let Some(m) = args.model {
        cfg.asr.model = Some(m);
    }
    if args.log_pii {
        cfg.log.pii = true;
    }
    if let Some(u) = args.store.filter(|u| !u.trim().is_empty()) {
        cfg.store.url = Some(u);
    }
    if let Some(n) = args.node {
        cfg.store.node = n;
    }
    if let Some(b) = args.inbound_by_name {
        cfg.inbound_by_name = Some(b);
    }
    if args.allow_broken_scenarios {
        cfg.allow_broken_scenarios = true;
    }
    if let Some(t) = &args.trunk {
        match ivrflow::config::TrunkConfig::from_uri("default", t) {
            Ok(t) => {
                cfg.trunks.retain(|x| x.name != "default");
                cfg.trunks.insert(0, t);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Ok(p) = std::env::var("IVRFLOW_TRUNK_PASSWORD")
        && !p.is_empty()
    {
        for t in &mut cfg.trunks {
            if t.username.is_some() && t.password.is_none() {
                t.password = Some(p.clone());
            }
        }
    }
    if let Some(a) = args.api_listen {
        cfg.api.listen = a;
    }
    if let Ok(t) = std::env::var("IVRFLOW_API_TOKEN")
        && !t.is_empty()
    {
        cfg.api.token = Some(t);
    }
    if let Ok(s) = std::env::var("IVRFLOW_WEBHOOK_SECRET")
        && !s.is_empty()
    {
        cfg.webhook.secret = Some(s);
    }
    if args.api_listen.is_some() && cfg.api.token.is_none() {
        eprintln!(
            "error: --api-listen given but the API has no token: set IVRFLOW_API_TOKEN (or api.token in the config)"
        );
        return ExitCode::from(2);
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

fn events(args: EventsArgs) -> ExitCode {
    let config = args
        .config
        .clone()
        .or_else(ivrflow::config::default_config_path);
    let data_dir = match (args.data_dir, &config) {
        (Some(d), _) => d,
        (None, Some(p)) => match Config::load(p) {
            Ok(c) => c.data_dir,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => Config::default().data_dir,
    };
    let mut out = std::io::stdout().lock();
    let r = match args.command {
        EventsCommand::List {
            status,
            call,
            limit,
            json,
        } => ivrflow::store::admin::list(&data_dir, status.as_deref(), call, limit, json, &mut out),
        EventsCommand::Replay { id } => ivrflow::store::admin::replay(&data_dir, &id, &mut out),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn validate(args: ValidateArgs) -> ExitCode {
    let format = args.format;
    let args = ivrflow::cli::validate::ValidateArgs {
        paths: args.paths,
        audio: args.audio,
        no_audio: args.no_audio,
        deny_warnings: args.deny_warnings,
        quiet: args.quiet,
    };
    let (out, err) = (&mut std::io::stdout(), &mut std::io::stderr());
    let code = match format {
        ValidateFormat::Text => ivrflow::cli::validate::run(&args, out, err),
        ValidateFormat::Json => ivrflow::cli::validate::run_json(&args, out, err),
    };
    ExitCode::from(code)
}

fn simulate(args: SimulateArgs) -> ExitCode {
    // Caller actions and effect results keep their command-line order.
    let argv: Vec<String> = std::env::args().collect();
    let steps = match ivrflow::cli::simulate::steps_from_argv(&argv) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let effects = match ivrflow::cli::simulate::effects_from_argv(&argv) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let args = ivrflow::cli::simulate::SimulateArgs {
        scenario: args.scenario,
        vars: args.vars,
        steps,
        effects,
        hangup_after: args.hangup_after,
        audio: args.audio,
        json: args.json,
    };
    let code = ivrflow::cli::simulate::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}

fn test(args: TestArgs) -> ExitCode {
    let args = ivrflow::cli::test::TestArgs {
        paths: args.paths,
        audio: args.audio,
        verbose: args.verbose,
        min_coverage: args.min_coverage,
        junit: args.junit,
    };
    let code = ivrflow::cli::test::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}

fn graph(args: GraphArgs) -> ExitCode {
    let args = ivrflow::cli::graph::GraphArgs {
        scenario: args.scenario,
        format: args.format,
        output: args.output,
    };
    let code = ivrflow::cli::graph::run(&args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}
