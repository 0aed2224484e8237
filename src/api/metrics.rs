//! The Prometheus metrics ivrflow exposes on `GET /metrics` (OpenMetrics text).
//!
//! One [`Metrics`] per process, shared as `Arc`. Counters and histograms are updated where
//! things happen (the drive loop, the store thread, the delivery worker, the recognition
//! threads); gauges that describe the store (calls by state, outbox depth, the dialer's
//! queue) and the process (memory, CPU, file descriptors, from `/proc`) are refreshed when
//! `/metrics` is scraped. Every update is an atomic operation (a label lookup at most),
//! cheap enough for the pacing task.
//!
//! Label values an operator alerts on exist from the start (at 0) — [`Metrics::init`] is
//! given the scenarios, campaigns and trunks — so `rate()` and `absent()` work before the
//! first event. Label values come from fixed tables or the configuration (SIP methods and
//! response codes outside the tables are folded into `other` and `4xx`-style classes), so a
//! hostile peer cannot grow the series.
//!
//! Not here: labels with personal data (numbers, names) — never; per-call labels — never
//! (unbounded cardinality). What each metric means and what to alert on: docs/operations.md.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// A SIP request: which way and its method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SipRequestLabels {
    pub direction: &'static str,
    pub method: &'static str,
}

/// A SIP response: which way, the method it answers (from CSeq) and its code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SipResponseLabels {
    pub direction: &'static str,
    pub method: &'static str,
    pub code: &'static str,
}

/// How an INVITE ended, by scenario.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InviteLabels {
    pub direction: String,
    pub scenario: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrunkLabel {
    pub trunk: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrunkStateLabels {
    pub trunk: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub campaign: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub commit: String,
}

/// SIP methods counted by name; any other is `other`.
pub const SIP_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "PRACK",
    "UPDATE",
    "PUBLISH",
];

/// Response codes counted by value; any other is counted by class (`4xx`).
pub const SIP_CODES: [&str; 27] = [
    "100", "180", "181", "182", "183", "200", "202", "401", "403", "404", "405", "407", "408",
    "480", "481", "482", "483", "486", "487", "488", "489", "491", "500", "501", "503", "600",
    "603",
];

const SIP_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// How an INVITE transaction ended: answered, or the call's failure reason before an
/// answer.
pub const INVITE_RESULTS: [&str; 6] = [
    "answered",
    "busy",
    "no_answer",
    "rejected",
    "error",
    "shutdown",
];

/// Where an outbound call is in the dialer's queue (see `store::QueueCount`).
pub const QUEUE_STATES: [&str; 4] = ["waiting", "due", "started", "answered"];

/// Registration states of a trunk (`node::TrunkStatus::registration`).
pub const TRUNK_STATES: [&str; 4] = ["unregistered", "registering", "registered", "failed"];

/// Which way a SIP datagram went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipDirection {
    In,
    Out,
}

impl SipDirection {
    fn as_str(self) -> &'static str {
        match self {
            SipDirection::In => "in",
            SipDirection::Out => "out",
        }
    }
}

/// The method and (for responses) code of a SIP datagram, from its first line (and the
/// CSeq header for a response), without parsing the rest. `None` for keep-alive CRLFs and
/// anything that does not look like SIP.
pub fn sip_summary(data: &[u8]) -> Option<(&'static str, Option<&'static str>)> {
    let head = &data[..data.len().min(4096)];
    let line_end = head.iter().position(|&b| b == b'\r' || b == b'\n')?;
    let first = &head[..line_end];
    if first.is_empty() {
        return None;
    }
    let method_of = |m: &[u8]| {
        SIP_METHODS
            .iter()
            .find(|k| k.as_bytes().eq_ignore_ascii_case(m))
            .copied()
            .unwrap_or("other")
    };
    if let Some(rest) = first.strip_prefix(b"SIP/2.0 ") {
        let code = rest.get(..3)?;
        if !code.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code_str = SIP_CODES
            .iter()
            .find(|k| k.as_bytes() == code)
            .copied()
            .or_else(|| {
                SIP_CLASSES
                    .get(usize::from(code[0].checked_sub(b'1')?))
                    .copied()
            })?;
        // The method it answers: the last word of the CSeq header.
        let mut method = "other";
        for line in head[line_end..].split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if line.len() > 5 && line[..5].eq_ignore_ascii_case(b"cseq:") {
                if let Some(m) = line[5..]
                    .split(|b| b.is_ascii_whitespace())
                    .rfind(|w| !w.is_empty())
                {
                    method = method_of(m);
                }
                break;
            }
        }
        Some((method, Some(code_str)))
    } else {
        let m = first.split(|&b| b == b' ').next()?;
        Some((method_of(m), None))
    }
}

pub struct Metrics {
    registry: Registry,
    /// Calls the engine carries now.
    pub live_calls: Gauge,
    /// Calls in the store by state (refreshed on scrape).
    pub calls_by_state: Family<StateLabel, Gauge>,
    pub calls_completed: Family<OutcomeLabel, Counter>,
    pub calls_failed: Family<ReasonLabel, Counter>,
    /// Outbox events by status (refreshed on scrape); `pending` is the queue depth.
    pub outbox_events: Family<StatusLabel, Gauge>,
    pub outbox_oldest_pending_seconds: Gauge<f64, AtomicU64>,
    pub events_recorded: Family<TypeLabel, Counter>,
    /// Delivery attempts by result (`delivered`, `refused`, `timeout`, `network`, `gone`).
    pub deliveries: Family<ResultLabel, Counter>,
    /// Events that became dead.
    pub dead_letters: Counter,
    pub delivery_seconds: Histogram,
    /// Mid-call webhook requests by result (`ok`, `error`).
    pub call_webhooks: Family<ResultLabel, Counter>,
    /// How long one group commit of call records took (the outbox insert latency).
    pub store_commit_seconds: Histogram,
    pub store_errors: Counter,
    /// How long SIP messages waited for their call's events to be committed.
    pub sip_hold_seconds: Histogram,
    /// SIP user-agent counters (unparseable, invalid, retransmissions…).
    pub sip_messages: Family<KindLabel, Counter>,
    pub rtp_packets_sent: Counter,
    pub rtp_send_errors: Counter,
    /// How late each 20 ms pacing tick ran.
    pub rtp_tick_lateness_seconds: Histogram,
    /// Speech recognition time per utterance (observed by the ASR workers).
    pub asr_decode_seconds: Histogram,
    /// Recognition jobs by what became of them in the queue: `replaced` (a newer
    /// utterance of the same call took its place), `cancelled`, `refused` (queue full).
    pub asr_jobs: Family<ResultLabel, Counter>,
    /// Scenario reloads (SIGHUP, `POST /v1/scenarios/reload`) by result: `ok`, `partial`
    /// (some files kept their previous version or were left out).
    pub scenario_reloads: Family<ResultLabel, Counter>,
    /// Deadlines a state machine handed back still due after handling them (a bug; see
    /// `crate::timers`).
    pub timer_violations: Counter,
    /// 1 while the store cannot commit (new calls refused, SIP held).
    pub store_failing: Gauge,
    /// RTP packets dropped because their source is not the call's (strict RTP).
    pub rtp_foreign_dropped: Counter,
    /// Source addresses the SIP edge guard has banned now (too many requests).
    pub sip_banned_sources: Gauge,
    pub sip_requests: Family<SipRequestLabels, Counter>,
    pub sip_responses: Family<SipResponseLabels, Counter>,
    /// INVITEs (either way) by scenario and how they ended.
    pub invites: Family<InviteLabels, Counter>,
    pub trunk_registered: Family<TrunkLabel, Gauge>,
    pub trunk_registration: Family<TrunkStateLabels, Gauge>,
    pub trunk_keepalive_up: Family<TrunkLabel, Gauge>,
    pub trunk_keepalive_down: Family<TrunkLabel, Gauge>,
    pub trunk_active_calls: Family<TrunkLabel, Gauge>,
    pub node_draining: Gauge,
    pub node_overloaded: Gauge,
    /// Outbound calls in the dialer's queue by campaign and place (refreshed on scrape).
    pub dialer_queue: Family<QueueLabels, Gauge>,
    /// How long an utterance waited for a recognition worker.
    pub asr_queue_wait_seconds: Histogram,
    /// From the caller's last key to the first packet of the robot's next prompt.
    pub dtmf_to_prompt_seconds: Histogram,
    /// From the end of the caller's speech to the robot's next prompt (needs `speech`
    /// entries in the call trace; see docs/operations.md).
    pub speech_to_prompt_seconds: Histogram,
    /// From an event's commit to its delivery (retries included).
    pub webhook_event_latency_seconds: Histogram,
    process: ProcessMetrics,
    /// Calls answered (by call_ref) whose end is not recorded yet: a failure after the
    /// answer is not an INVITE result.
    answered: Mutex<HashSet<String>>,
    /// The scenarios, campaigns and trunks given to [`Metrics::init`].
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    scenarios: BTreeSet<String>,
    campaigns: BTreeSet<String>,
}

/// Standard process metrics (`process_*`, as other exporters name them), from `/proc`.
#[derive(Default)]
struct ProcessMetrics {
    resident_memory_bytes: Gauge,
    virtual_memory_bytes: Gauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start_time_seconds: Gauge<f64, AtomicU64>,
}

/// What `/proc/self` says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcStats {
    pub rss_bytes: u64,
    pub vsize_bytes: u64,
    pub cpu_seconds: f64,
    pub threads: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
}

/// Parse `/proc/self/stat` (and `btime` from `/proc/stat`) into [`ProcStats`].
pub fn parse_proc_stat(stat: &str, btime: u64, ticks: f64, page: u64) -> Option<ProcStats> {
    // The command name is in parentheses and may hold spaces: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStats {
        cpu_seconds: (num(14)? + num(15)?) as f64 / ticks,
        threads: num(20)?,
        start_time_seconds: btime as f64 + num(22)? as f64 / ticks,
        vsize_bytes: num(23)?,
        rss_bytes: num(24)? * page,
        open_fds: 0,
        max_fds: 0,
    })
}

#[cfg(target_os = "linux")]
fn read_proc() -> Option<ProcStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    // SAFETY: sysconf and getrlimit only read process settings into plain values.
    let (ticks, page, max_fds) = unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur
        } else {
            0
        };
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
            max,
        )
    };
    let mut s = parse_proc_stat(&stat, btime, ticks.max(1) as f64, page.max(1) as u64)?;
    s.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    s.max_fds = max_fds;
    Some(s)
}

#[cfg(not(target_os = "linux"))]
fn read_proc() -> Option<ProcStats> {
    None
}

/// The scenarios, campaigns and trunks whose label values exist from the start.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    pub scenarios: Vec<String>,
    pub campaigns: Vec<String>,
    pub trunks: Vec<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn latency_buckets() -> Histogram {
    // 0.5 ms … ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// A conversational turn: 20 ms … 5 s, finest where a caller notices (0.2–1 s).
fn turn_buckets() -> impl Iterator<Item = f64> {
    [
        0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0,
    ]
    .into_iter()
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            live_calls: Gauge::default(),
            calls_by_state: Family::default(),
            calls_completed: Family::default(),
            calls_failed: Family::default(),
            outbox_events: Family::default(),
            outbox_oldest_pending_seconds: Gauge::default(),
            events_recorded: Family::default(),
            deliveries: Family::default(),
            dead_letters: Counter::default(),
            delivery_seconds: latency_buckets(),
            call_webhooks: Family::default(),
            store_commit_seconds: latency_buckets(),
            store_errors: Counter::default(),
            sip_hold_seconds: latency_buckets(),
            sip_messages: Family::default(),
            rtp_packets_sent: Counter::default(),
            rtp_send_errors: Counter::default(),
            rtp_tick_lateness_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 12)),
            asr_decode_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            asr_jobs: Family::default(),
            scenario_reloads: Family::default(),
            timer_violations: Counter::default(),
            store_failing: Gauge::default(),
            rtp_foreign_dropped: Counter::default(),
            sip_banned_sources: Gauge::default(),
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            invites: Family::default(),
            trunk_registered: Family::default(),
            trunk_registration: Family::default(),
            trunk_keepalive_up: Family::default(),
            trunk_keepalive_down: Family::default(),
            trunk_active_calls: Family::default(),
            node_draining: Gauge::default(),
            node_overloaded: Gauge::default(),
            dialer_queue: Family::default(),
            asr_queue_wait_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            dtmf_to_prompt_seconds: Histogram::new(turn_buckets()),
            speech_to_prompt_seconds: Histogram::new(turn_buckets()),
            webhook_event_latency_seconds: Histogram::new(exponential_buckets(0.05, 4.0, 12)),
            process: ProcessMetrics::default(),
            answered: Mutex::new(HashSet::new()),
            known: Mutex::new(Known::default()),
            registry: Registry::default(),
        };
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("ivrflow");
        registry.register(
            "calls_live",
            "Calls the engine carries now",
            m.live_calls.clone(),
        );
        registry.register(
            "calls",
            "Calls in the store by state",
            m.calls_by_state.clone(),
        );
        registry.register(
            "calls_completed",
            "Answered calls that ended, by scenario outcome",
            m.calls_completed.clone(),
        );
        registry.register(
            "calls_failed",
            "Calls that failed, by reason",
            m.calls_failed.clone(),
        );
        registry.register(
            "outbox_events",
            "Outbox events by status (pending = queue depth)",
            m.outbox_events.clone(),
        );
        registry.register(
            "outbox_oldest_pending_seconds",
            "Age of the oldest pending event",
            m.outbox_oldest_pending_seconds.clone(),
        );
        registry.register(
            "events_recorded",
            "Events committed to the outbox, by type",
            m.events_recorded.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Delivery attempts by result",
            m.deliveries.clone(),
        );
        registry.register(
            "webhook_dead_letters",
            "Events that exhausted their attempts or got 410",
            m.dead_letters.clone(),
        );
        registry.register(
            "webhook_delivery_seconds",
            "Duration of one delivery attempt",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "call_webhooks",
            "Mid-call webhook requests by result",
            m.call_webhooks.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Duration of one group commit of call records and events",
            m.store_commit_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store operations",
            m.store_errors.clone(),
        );
        registry.register(
            "sip_hold_seconds",
            "How long SIP messages waited for their events to be committed",
            m.sip_hold_seconds.clone(),
        );
        registry.register(
            "sip_messages",
            "SIP user-agent counters by kind",
            m.sip_messages.clone(),
        );
        registry.register(
            "rtp_packets_sent",
            "RTP packets sent",
            m.rtp_packets_sent.clone(),
        );
        registry.register(
            "rtp_send_errors",
            "RTP packets the socket refused",
            m.rtp_send_errors.clone(),
        );
        registry.register(
            "rtp_tick_lateness_seconds",
            "How late each 20 ms pacing tick ran",
            m.rtp_tick_lateness_seconds.clone(),
        );
        registry.register(
            "asr_decode_seconds",
            "Speech recognition time per utterance",
            m.asr_decode_seconds.clone(),
        );
        registry.register(
            "asr_jobs",
            "Recognition jobs dropped before a result, by why (replaced, cancelled, refused)",
            m.asr_jobs.clone(),
        );
        for result in ["replaced", "cancelled", "refused"] {
            let _ = m.asr_jobs.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }
        registry.register(
            "scenario_reloads",
            "Scenario reloads by result (ok, partial: some files kept their previous version)",
            m.scenario_reloads.clone(),
        );
        for result in ["ok", "partial"] {
            let _ = m.scenario_reloads.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }
        registry.register(
            "timer_violations",
            "Deadlines still due after being handled, deferred by a tick (a bug if not 0)",
            m.timer_violations.clone(),
        );
        registry.register(
            "rtp_foreign_dropped",
            "RTP packets dropped because their source is not the call's (strict RTP)",
            m.rtp_foreign_dropped.clone(),
        );
        registry.register(
            "sip_banned_sources",
            "Source addresses banned now by the SIP edge guard (request flood)",
            m.sip_banned_sources.clone(),
        );
        registry.register(
            "store_failing",
            "1 while the store cannot commit: new calls are refused and SIP waits",
            m.store_failing.clone(),
        );
        registry.register(
            "sip_requests",
            "SIP requests by direction (in, out) and method",
            m.sip_requests.clone(),
        );
        registry.register(
            "sip_responses",
            "SIP responses by direction (in, out), the method they answer and code",
            m.sip_responses.clone(),
        );
        registry.register(
            "invites",
            "INVITEs by direction, scenario and how they ended (answered, busy, no_answer, rejected, error, shutdown)",
            m.invites.clone(),
        );
        registry.register(
            "trunk_registered",
            "1 while the trunk is registered (or needs no registration: see trunk_registration)",
            m.trunk_registered.clone(),
        );
        registry.register(
            "trunk_registration",
            "1 for the trunk's registration state (unregistered, registering, registered, failed)",
            m.trunk_registration.clone(),
        );
        registry.register(
            "trunk_keepalive_up",
            "1 while the trunk answers OPTIONS keep-alives",
            m.trunk_keepalive_up.clone(),
        );
        registry.register(
            "trunk_keepalive_down",
            "1 while the trunk does not answer OPTIONS keep-alives (0 when up or not probed)",
            m.trunk_keepalive_down.clone(),
        );
        registry.register(
            "trunk_active_calls",
            "Calls up on the trunk",
            m.trunk_active_calls.clone(),
        );
        registry.register(
            "node_draining",
            "1 while the node drains (SIGTERM or POST /v1/admin/drain)",
            m.node_draining.clone(),
        );
        registry.register(
            "node_overloaded",
            "1 while new calls are refused because RTP pacing falls behind",
            m.node_overloaded.clone(),
        );
        registry.register(
            "dialer_queue",
            "Outbound calls by campaign and place in the dialer's queue (waiting, due, started, answered)",
            m.dialer_queue.clone(),
        );
        registry.register(
            "asr_queue_wait_seconds",
            "How long an utterance waited for a recognition worker",
            m.asr_queue_wait_seconds.clone(),
        );
        registry.register(
            "dtmf_to_prompt_seconds",
            "From the caller's last key to the robot's next prompt",
            m.dtmf_to_prompt_seconds.clone(),
        );
        registry.register(
            "speech_to_prompt_seconds",
            "From the end of the caller's speech to the robot's next prompt",
            m.speech_to_prompt_seconds.clone(),
        );
        registry.register(
            "webhook_event_latency_seconds",
            "From an event's commit to its delivery to the CRM, retries included",
            m.webhook_event_latency_seconds.clone(),
        );
        // `ivrflow_build_info{version, commit} 1` (the commit is set by scripts/release.sh).
        registry.register(
            "build",
            "The running build",
            prometheus_client::metrics::info::Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                commit: option_env!("IVRFLOW_GIT_COMMIT")
                    .unwrap_or("unknown")
                    .to_owned(),
            }),
        );
        let p = &m.process;
        root.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            p.resident_memory_bytes.clone(),
        );
        root.register(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            p.virtual_memory_bytes.clone(),
        );
        root.register(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds",
            p.cpu_seconds.clone(),
        );
        root.register(
            "process_open_fds",
            "Open file descriptors",
            p.open_fds.clone(),
        );
        root.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            p.max_fds.clone(),
        );
        root.register("process_threads", "OS threads", p.threads.clone());
        root.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            p.start_time_seconds.clone(),
        );
        let m = Metrics {
            registry: root,
            ..m
        };
        m.refresh_process();
        m
    }

    /// Create the label values operators alert on, at 0: INVITE results per scenario and
    /// direction, SIP methods and the common responses, call failures by reason, delivery
    /// results, event types, each trunk's state and each campaign's queue.
    pub fn init(&self, labels: &Labels) {
        if let Ok(mut k) = self.known.lock() {
            k.scenarios = labels.scenarios.iter().cloned().collect();
            k.campaigns = labels.campaigns.iter().cloned().collect();
        }
        for direction in ["inbound", "outbound"] {
            for scenario in &labels.scenarios {
                for result in INVITE_RESULTS {
                    let _ = self.invites.get_or_create(&InviteLabels {
                        direction: direction.to_owned(),
                        scenario: scenario.clone(),
                        result: result.to_owned(),
                    });
                }
            }
        }
        for direction in [SipDirection::In, SipDirection::Out] {
            let d = direction.as_str();
            for method in SIP_METHODS {
                let _ = self.sip_requests.get_or_create(&SipRequestLabels {
                    direction: d,
                    method,
                });
            }
            for method in ["INVITE", "REGISTER", "OPTIONS", "BYE"] {
                for code in [
                    "200", "401", "407", "408", "486", "487", "503", "5xx", "6xx",
                ] {
                    let _ = self.sip_responses.get_or_create(&SipResponseLabels {
                        direction: d,
                        method,
                        code,
                    });
                }
            }
        }
        for reason in [
            "busy",
            "no_answer",
            "rejected",
            "error",
            "interrupted",
            "blocked",
            "max_duration",
            "no_ack",
            "shutdown",
        ] {
            let _ = self.calls_failed.get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            });
        }
        for result in ["delivered", "refused", "timeout", "network", "gone"] {
            let _ = self.deliveries.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }
        for result in ["ok", "error"] {
            let _ = self.call_webhooks.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }
        for kind in crate::crm::events::KNOWN {
            let _ = self.events_recorded.get_or_create(&TypeLabel {
                r#type: kind.to_owned(),
            });
        }
        for trunk in &labels.trunks {
            let t = TrunkLabel {
                trunk: trunk.clone(),
            };
            let _ = self.trunk_registered.get_or_create(&t);
            let _ = self.trunk_keepalive_up.get_or_create(&t);
            let _ = self.trunk_keepalive_down.get_or_create(&t);
            let _ = self.trunk_active_calls.get_or_create(&t);
            for state in TRUNK_STATES {
                let _ = self.trunk_registration.get_or_create(&TrunkStateLabels {
                    trunk: trunk.clone(),
                    state: state.to_owned(),
                });
            }
        }
        for campaign in &labels.campaigns {
            for state in QUEUE_STATES {
                let _ = self.dialer_queue.get_or_create(&QueueLabels {
                    campaign: campaign.clone(),
                    state: state.to_owned(),
                });
            }
        }
    }

    /// Count one SIP datagram sent or received (first line and CSeq only).
    pub fn sip_datagram(&self, direction: SipDirection, data: &[u8]) {
        let Some((method, code)) = sip_summary(data) else {
            return;
        };
        let d = direction.as_str();
        match code {
            None => self
                .sip_requests
                .get_or_create(&SipRequestLabels {
                    direction: d,
                    method,
                })
                .inc(),
            Some(code) => self
                .sip_responses
                .get_or_create(&SipResponseLabels {
                    direction: d,
                    method,
                    code,
                })
                .inc(),
        };
    }

    /// The node's status: health, trunks.
    pub fn node_status(&self, s: &crate::node::NodeStatus) {
        self.store_failing.set(i64::from(s.store_error.is_some()));
        self.node_draining.set(i64::from(s.draining));
        self.node_overloaded.set(i64::from(s.overloaded));
        for t in &s.trunks {
            let label = TrunkLabel {
                trunk: t.name.clone(),
            };
            let ok = t.registration == "registered" || t.registration == "unregistered";
            self.trunk_registered
                .get_or_create(&label)
                .set(i64::from(ok));
            for state in TRUNK_STATES {
                self.trunk_registration
                    .get_or_create(&TrunkStateLabels {
                        trunk: t.name.clone(),
                        state: state.to_owned(),
                    })
                    .set(i64::from(t.registration == state));
            }
            self.trunk_keepalive_up
                .get_or_create(&label)
                .set(i64::from(t.keepalive == "up"));
            self.trunk_keepalive_down
                .get_or_create(&label)
                .set(i64::from(t.keepalive == "down"));
            self.trunk_active_calls
                .get_or_create(&label)
                .set(i64::try_from(t.active_calls).unwrap_or(i64::MAX));
        }
    }

    /// The dialer's queue as the store counts it (calls naming no campaign are `default`).
    pub fn set_dialer_queue(&self, counts: &[crate::store::QueueCount]) {
        let campaigns: BTreeSet<String> = self
            .known
            .lock()
            .map(|k| k.campaigns.clone())
            .unwrap_or_default();
        // Every known series back to 0 first: a campaign whose calls all left reads 0.
        for campaign in &campaigns {
            for state in QUEUE_STATES {
                self.dialer_queue
                    .get_or_create(&QueueLabels {
                        campaign: campaign.clone(),
                        state: state.to_owned(),
                    })
                    .set(0);
            }
        }
        for c in counts {
            let campaign = c
                .campaign
                .clone()
                .unwrap_or_else(|| crate::node::DEFAULT_CAMPAIGN.to_owned());
            // Campaigns not configured (any more) share one series.
            let campaign = if campaigns.contains(&campaign) {
                campaign
            } else {
                "other".to_owned()
            };
            let g = self.dialer_queue.get_or_create(&QueueLabels {
                campaign,
                state: c.state.clone(),
            });
            g.set(g.get() + i64::try_from(c.calls).unwrap_or(i64::MAX));
        }
    }

    /// Refresh the `process_*` metrics from `/proc`.
    pub fn refresh_process(&self) {
        let Some(s) = read_proc() else {
            return;
        };
        let p = &self.process;
        p.resident_memory_bytes
            .set(i64::try_from(s.rss_bytes).unwrap_or(i64::MAX));
        p.virtual_memory_bytes
            .set(i64::try_from(s.vsize_bytes).unwrap_or(i64::MAX));
        p.threads.set(i64::try_from(s.threads).unwrap_or(i64::MAX));
        p.open_fds
            .set(i64::try_from(s.open_fds).unwrap_or(i64::MAX));
        p.max_fds.set(i64::try_from(s.max_fds).unwrap_or(i64::MAX));
        p.start_time_seconds.set(s.start_time_seconds);
        let seen = p.cpu_seconds.get();
        if s.cpu_seconds > seen {
            p.cpu_seconds.inc_by(s.cpu_seconds - seen);
        }
    }

    /// The scenario label for `name`: itself when loaded, else `other`.
    fn scenario_label(&self, name: &str) -> String {
        match self.known.lock() {
            Ok(k) if k.scenarios.contains(name) => name.to_owned(),
            _ => "other".to_owned(),
        }
    }

    /// Scenarios put in service by a reload get their label values too (at 0).
    pub fn scenarios_loaded(&self, names: &[String]) {
        if let Ok(mut k) = self.known.lock() {
            k.scenarios.extend(names.iter().cloned());
        }
        for direction in ["inbound", "outbound"] {
            for scenario in names {
                for result in INVITE_RESULTS {
                    let _ = self.invites.get_or_create(&InviteLabels {
                        direction: direction.to_owned(),
                        scenario: scenario.clone(),
                        result: result.to_owned(),
                    });
                }
            }
        }
    }

    /// INVITE results and turn latencies from a committed event.
    fn count_event(&self, call_ref: &str, ev: &crate::store::NewEvent) {
        use crate::crm::events::{CALL_ANSWERED, CALL_COMPLETED, CALL_FAILED};
        let d = &ev.data;
        let invite = |result: &str| {
            self.invites
                .get_or_create(&InviteLabels {
                    direction: d["direction"].as_str().unwrap_or("inbound").to_owned(),
                    scenario: self.scenario_label(d["scenario"].as_str().unwrap_or("")),
                    result: result.to_owned(),
                })
                .inc();
        };
        match ev.kind.as_str() {
            CALL_ANSWERED => {
                invite("answered");
                if let Ok(mut a) = self.answered.lock() {
                    a.insert(call_ref.to_owned());
                }
            }
            CALL_FAILED => {
                let after_answer = self
                    .answered
                    .lock()
                    .map(|mut a| a.remove(call_ref))
                    .unwrap_or(false);
                let reason = d["reason"].as_str().unwrap_or("error");
                // Never dialled (blocked) or lost in a crash (interrupted): no INVITE ended.
                if !after_answer && INVITE_RESULTS.contains(&reason) && reason != "answered" {
                    invite(reason);
                }
            }
            CALL_COMPLETED => {
                if let Ok(mut a) = self.answered.lock() {
                    a.remove(call_ref);
                }
                if let Some(trace) = d["trace"].as_array() {
                    self.turns(trace);
                }
            }
            _ => {}
        }
    }

    /// Key → next prompt and end of speech → next prompt, from a finished call's trace:
    /// for each prompt, the last key (or end of speech) since the previous prompt.
    fn turns(&self, trace: &[serde_json::Value]) {
        let mut last_key: Option<u64> = None;
        let mut last_speech: Option<u64> = None;
        for t in trace {
            let at = t["at_ms"].as_u64();
            match (t["type"].as_str(), at) {
                (Some("dtmf"), Some(at)) => last_key = Some(at),
                (Some("speech"), Some(at)) => last_speech = Some(at),
                (Some("play"), Some(at)) => {
                    if let Some(k) = last_key.take() {
                        self.dtmf_to_prompt_seconds
                            .observe(at.saturating_sub(k) as f64 / 1000.0);
                    }
                    if let Some(s) = last_speech.take() {
                        self.speech_to_prompt_seconds
                            .observe(at.saturating_sub(s) as f64 / 1000.0);
                    }
                }
                _ => {}
            }
        }
    }

    /// Refresh the store gauges from a stats snapshot taken at `now_ms`.
    pub fn set_store_stats(&self, s: &Stats, now_ms: i64) {
        for st in crate::store::CallState::ALL {
            let n = s.calls_by_state.get(st.as_str()).copied().unwrap_or(0);
            self.calls_by_state
                .get_or_create(&StateLabel {
                    state: st.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for st in crate::store::EventStatus::ALL {
            let n = s.events_by_status.get(st.as_str()).copied().unwrap_or(0);
            self.outbox_events
                .get_or_create(&StatusLabel {
                    status: st.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let age = s
            .oldest_pending
            .map(|t| (now_ms - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.outbox_oldest_pending_seconds.set(age);
    }

    /// A record the store committed: its event, and the call's end by outcome or reason.
    pub fn recorded(&self, rec: &crate::store::Record) {
        if let Some(ev) = &rec.event {
            self.event_recorded(&ev.kind);
            self.count_event(&rec.call_id, ev);
        }
        if let crate::store::CallChange::Update(u) = &rec.change {
            match (&u.state, &u.failure) {
                (Some(crate::store::CallState::Completed), _) => {
                    self.calls_completed
                        .get_or_create(&OutcomeLabel {
                            outcome: u.outcome.clone().unwrap_or_else(|| "none".to_owned()),
                        })
                        .inc();
                }
                (_, Some((reason, _))) if u.state != Some(crate::store::CallState::Queued) => {
                    self.calls_failed
                        .get_or_create(&ReasonLabel {
                            reason: reason.clone(),
                        })
                        .inc();
                }
                _ => {}
            }
        }
    }

    pub fn event_recorded(&self, kind: &str) {
        self.events_recorded
            .get_or_create(&TypeLabel {
                r#type: kind.to_owned(),
            })
            .inc();
    }

    pub fn delivery(&self, result: &str) {
        self.deliveries
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Bring a cumulative SIP counter up to `total` (from `UaStats` snapshots).
    pub fn sip_counter_to(&self, kind: &str, total: u64) {
        let c = self.sip_messages.get_or_create(&KindLabel {
            kind: kind.to_owned(),
        });
        let cur = c.get();
        if total > cur {
            c.inc_by(total - cur);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_everything() {
        let m = Metrics::new();
        m.live_calls.set(3);
        m.delivery("delivered");
        m.sip_counter_to("retransmissions_absorbed", 5);
        m.sip_counter_to("retransmissions_absorbed", 7);
        let mut s = Stats::default();
        s.events_by_status.insert("pending".into(), 4);
        s.oldest_pending = Some(1_000);
        m.set_store_stats(&s, 3_500);
        let text = m.encode();
        for needle in [
            "ivrflow_calls_live 3",
            "ivrflow_webhook_deliveries_total{result=\"delivered\"} 1",
            "ivrflow_outbox_events{status=\"pending\"} 4",
            "ivrflow_outbox_events{status=\"dead\"} 0",
            "ivrflow_calls{state=\"queued\"} 0",
            "ivrflow_outbox_oldest_pending_seconds 2.5",
            "ivrflow_sip_messages_total{kind=\"retransmissions_absorbed\"} 7",
            "ivrflow_rtp_tick_lateness_seconds_bucket",
            "ivrflow_asr_decode_seconds_count 0",
            "ivrflow_build_info{version=\"",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_start_time_seconds ",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn sip_datagrams_are_counted_by_method_code_and_direction() {
        let invite = b"INVITE sip:100@x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCSeq: 1 INVITE\r\n\r\n";
        assert_eq!(sip_summary(invite), Some(("INVITE", None)));
        let ok = b"SIP/2.0 200 OK\r\nVia: x\r\ncseq:  7   register \r\n\r\nbody CSeq: 1 BYE";
        assert_eq!(sip_summary(ok), Some(("REGISTER", Some("200"))));
        let odd = b"SIP/2.0 299 Odd\nCSeq: 2 FOO\n\n";
        assert_eq!(sip_summary(odd), Some(("other", Some("2xx"))));
        assert_eq!(
            sip_summary(b"FROB sip:x SIP/2.0\r\n\r\n"),
            Some(("other", None))
        );
        // Keep-alives, garbage, a response without a code.
        assert_eq!(sip_summary(b"\r\n\r\n"), None);
        assert_eq!(sip_summary(b"SIP/2.0 abc\r\n"), None);
        assert_eq!(sip_summary(b"SIP/2.0 999 x\r\n"), None);
        assert_eq!(sip_summary(b"no line end"), None);
        let m = Metrics::new();
        m.sip_datagram(SipDirection::In, invite);
        m.sip_datagram(
            SipDirection::Out,
            b"SIP/2.0 486 Busy Here\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        let text = m.encode();
        for needle in [
            "ivrflow_sip_requests_total{direction=\"in\",method=\"INVITE\"} 1",
            "ivrflow_sip_responses_total{direction=\"out\",method=\"INVITE\",code=\"486\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn label_values_exist_from_the_start() {
        let m = Metrics::new();
        m.init(&Labels {
            scenarios: vec!["order-confirmation".into()],
            campaigns: vec!["default".into(), "cart".into()],
            trunks: vec!["main".into()],
        });
        let text = m.encode();
        for needle in [
            "ivrflow_invites_total{direction=\"outbound\",scenario=\"order-confirmation\",result=\"no_answer\"} 0",
            "ivrflow_sip_requests_total{direction=\"out\",method=\"REGISTER\"} 0",
            "ivrflow_sip_responses_total{direction=\"in\",method=\"REGISTER\",code=\"401\"} 0",
            "ivrflow_calls_failed_total{reason=\"shutdown\"} 0",
            "ivrflow_webhook_deliveries_total{result=\"gone\"} 0",
            "ivrflow_events_recorded_total{type=\"call.completed\"} 0",
            "ivrflow_trunk_registration{trunk=\"main\",state=\"failed\"} 0",
            "ivrflow_trunk_keepalive_up{trunk=\"main\"} 0",
            "ivrflow_dialer_queue{campaign=\"cart\",state=\"due\"} 0",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    #[test]
    fn trunks_queue_and_node_state() {
        let m = Metrics::new();
        m.init(&Labels {
            campaigns: vec!["default".into(), "cart".into()],
            ..Labels::default()
        });
        let trunk = crate::node::TrunkStatus {
            name: "main".into(),
            proxy: "127.0.0.1:5070".into(),
            registration: "failed",
            last_status: Some(403),
            expires_s: None,
            keepalive: "up",
            active_calls: 3,
        };
        m.node_status(&crate::node::NodeStatus {
            store_error: None,
            trunks: vec![trunk],
            overloaded: false,
            draining: true,
            calls: Vec::new(),
        });
        let q = |campaign: Option<&str>, state: &str, calls| crate::store::QueueCount {
            campaign: campaign.map(str::to_owned),
            state: state.to_owned(),
            calls,
        };
        m.set_dialer_queue(&[
            q(Some("cart"), "due", 4),
            q(None, "waiting", 2),
            q(Some("gone"), "due", 1),
        ]);
        m.set_dialer_queue(&[q(Some("cart"), "due", 1), q(None, "waiting", 2)]);
        let text = m.encode();
        for needle in [
            "ivrflow_trunk_registered{trunk=\"main\"} 0",
            "ivrflow_trunk_registration{trunk=\"main\",state=\"failed\"} 1",
            "ivrflow_trunk_registration{trunk=\"main\",state=\"registered\"} 0",
            "ivrflow_trunk_keepalive_up{trunk=\"main\"} 1",
            "ivrflow_trunk_active_calls{trunk=\"main\"} 3",
            "ivrflow_node_draining 1",
            "ivrflow_dialer_queue{campaign=\"cart\",state=\"due\"} 1",
            "ivrflow_dialer_queue{campaign=\"default\",state=\"waiting\"} 2",
            "ivrflow_dialer_queue{campaign=\"cart\",state=\"waiting\"} 0",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }

    fn record(call: &str, kind: &str, data: serde_json::Value) -> crate::store::Record {
        crate::store::Record {
            call_id: call.into(),
            at: 0,
            change: crate::store::CallChange::Update(crate::store::CallUpdate::default()),
            event: Some(crate::store::NewEvent {
                id: "m".into(),
                kind: kind.into(),
                occurred_at: 0,
                data,
            }),
        }
    }

    #[test]
    fn invites_end_once_and_turns_are_timed_from_the_trace() {
        use serde_json::json;
        let m = Metrics::new();
        m.init(&Labels {
            scenarios: vec!["oc".into()],
            ..Labels::default()
        });
        let id = |dir: &str| json!({"direction": dir, "scenario": "oc"});
        let failed = |dir: &str, reason: &str| {
            let mut v = id(dir);
            v["reason"] = json!(reason);
            v
        };
        // Answered, then ended at the maximum duration: one INVITE, answered.
        m.recorded(&record("a", "call.answered", id("inbound")));
        m.recorded(&record(
            "a",
            "call.failed",
            failed("inbound", "max_duration"),
        ));
        // Busy; never dialled (blocked); an unknown scenario.
        m.recorded(&record("b", "call.failed", failed("outbound", "busy")));
        m.recorded(&record("c", "call.failed", failed("outbound", "blocked")));
        let mut other = failed("outbound", "no_answer");
        other["scenario"] = json!("not-loaded");
        m.recorded(&record("d", "call.failed", other));
        // A completed call: key at 1000 → prompt at 1040; keys at 3000 and 3300 → 3500;
        // speech ending at 6000 → prompt at 6450; a key with no prompt after it.
        let trace = json!([
            {"type": "play", "at_ms": 0}, {"type": "dtmf", "at_ms": 1000},
            {"type": "play", "at_ms": 1040}, {"type": "dtmf", "at_ms": 3000},
            {"type": "dtmf", "at_ms": 3300}, {"type": "play", "at_ms": 3500},
            {"type": "speech", "at_ms": 6000}, {"type": "play", "at_ms": 6450},
            {"type": "dtmf", "at_ms": 9000}, {"type": "robot_hangup", "at_ms": 9100},
        ]);
        let mut done = id("inbound");
        done["trace"] = trace;
        m.recorded(&record("e", "call.completed", done));
        let text = m.encode();
        for needle in [
            "ivrflow_invites_total{direction=\"inbound\",scenario=\"oc\",result=\"answered\"} 1",
            "ivrflow_invites_total{direction=\"inbound\",scenario=\"oc\",result=\"shutdown\"} 0",
            "ivrflow_invites_total{direction=\"outbound\",scenario=\"oc\",result=\"busy\"} 1",
            "ivrflow_invites_total{direction=\"outbound\",scenario=\"other\",result=\"no_answer\"} 1",
            "ivrflow_dtmf_to_prompt_seconds_count 2",
            "ivrflow_dtmf_to_prompt_seconds_sum 0.24",
            "ivrflow_speech_to_prompt_seconds_count 1",
            "ivrflow_speech_to_prompt_seconds_sum 0.45",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
        assert!(!text.contains("result=\"blocked\""), "{text}");
        assert!(!text.contains("result=\"max_duration\""), "{text}");
    }

    #[test]
    fn proc_stat_parses() {
        // A command name with spaces and parentheses in it.
        let stat = "4242 (ivr flow) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 \
                    12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
        let s = parse_proc_stat(stat, 1_700_000_000, 100.0, 4096).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.threads, 7);
        assert_eq!(s.start_time_seconds, 1_700_000_123.45);
        assert_eq!(s.vsize_bytes, 104_857_600);
        assert_eq!(s.rss_bytes, 2560 * 4096);
        assert_eq!(parse_proc_stat("garbage", 0, 100.0, 4096), None);
        let live = read_proc().expect("/proc/self");
        assert!(live.rss_bytes > 0 && live.open_fds > 0 && live.max_fds >= live.open_fds);
    }
}
