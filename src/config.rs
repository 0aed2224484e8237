//! Runtime configuration: a YAML file (all keys optional) with command-line flags on top,
//! and embedded defaults that start a working robot on loopback with no file at all.
//!
//! ```yaml
//! sip:
//!   listen: 127.0.0.1:5060          # UDP (or --sip-listen udp:…, repeatable with tcp:/tls:)
//!   tcp: 127.0.0.1:5060             # SIP over TCP (RFC 3261 §18); default: none
//!   tls: 127.0.0.1:5061             # SIP over TLS; needs tls_cert and tls_key (PEM)
//!   tls_cert: /etc/ivrflow/sip.crt
//!   tls_key: /etc/ivrflow/sip.key
//!   srtp: optional                  # SRTP for callers over TLS: off, optional, required
//!   connection_idle: 600s           # idle TCP/TLS connections are closed
//!   dns: 127.0.0.1:53               # DNS server for trunk names (default: /etc/resolv.conf)
//!   advertise: 203.0.113.5:5060     # Via/Contact host when behind NAT
//! media:
//!   rtp_ip: 127.0.0.1
//!   rtp_ports: 20000-29999
//!   advertise: 203.0.113.5         # SDP address behind NAT (default: rtp_ip)
//!   keepalive: true                 # silence frames while the robot listens (no RTP gaps)
//!   rtcp: true                      # RTCP reports every ~5 s and BYE (RFC 3550)
//!   timeout: 60s                    # no RTP from the peer this long: hang up (0s: never)
//! scenarios: scenarios               # directory of *.yaml
//! audio: audio                       # audio/<lang>/<prompt>.wav
//! data_dir: data
//! webhook:
//!   url: http://127.0.0.1:8000/ivr
//!   timeout: 10s                    # per attempt
//!   max_attempts: 8
//!   retry: [5s, 5m, 30m, 2h, 5h, 10h, 10h]   # waits between attempts (Standard Webhooks)
//!   jitter: 0.1                     # each wait × [0.9, 1.1)
//!   secret: whsec_…                 # or IVRFLOW_WEBHOOK_SECRET (preferred)
//!   max_in_flight: 64
//! api:
//!   listen: 127.0.0.1:8080
//!   token: …                        # or IVRFLOW_API_TOKEN (preferred); none: API off
//!   header_timeout: 10s             # request headers must arrive within this
//!   idle_timeout: 60s               # a silent connection is closed
//!   max_connections: 256
//! store:
//!   url: postgres://ivrflow:…@db:5432/ivrflow   # shared by several nodes (default: SQLite)
//!   node: local                     # this process's name in call records
//! routes:                            # dialled number → scenario (file stem)
//!   "100": order-confirmation
//! inbound_by_name: false             # any scenario by file name too (default: on loopback)
//! allow_broken_scenarios: false      # start without a broken scenario (default: refuse)
//! max_calls: 4000
//! max_call_duration: 30m             # then BYE and call.failed (max_duration)
//! drain_timeout: 5m                  # SIGTERM: calls up may finish this long (then shutdown)
//! log: { pii: false, format: text }  # format: text (human) or json (one object a line)
//! asr: { model: models/ggml-base-q8_0.bin, workers: 1, threads: 2, queue: 16 }
//! trunks:                            # outbound calls and transfers (or --trunk sip:U:P@H:P)
//!   - name: main
//!     proxy: sip.example.net:5060   # where INVITEs go (trunk or outbound proxy)
//!     registrar: sip.example.net:5060  # default: the proxy; register: false to skip
//!     domain: sip.example.net       # host of dialled URIs and of our From (default: proxy)
//!     username: shop                # digest credentials (or IVRFLOW_TRUNK_PASSWORD)
//!     realm: sip.example.net        # answer only this realm's challenges (default: any, from the trunk)
//!     password: …
//!     caller_id: "+15550100"        # From user (default: username)
//!     expires: 300s                 # registration; refreshed at 85 %
//!     keepalive: 30s                # OPTIONS; 0s: off
//!     max_calls: 100                # concurrent calls on this trunk
//!     max_cps: 10                   # new calls per second
//!     ring_timeout: 30s             # then CANCEL: no answer
//!     codecs: [pcma, pcmu]          # offer order (default: pcmu, pcma)
//!     transport: udp                # udp, tcp or tls (certificate verified)
//!     ca_file: /etc/ivrflow/carrier-ca.pem  # CA of the trunk's TLS certificate (default: system's)
//!     srtp: off                     # off, optional, required (SDES; needs transport: tls)
//! campaigns:                         # calls name one in POST /v1/calls ("campaign")
//!   - name: cart
//!     trunk: main
//!     timezone: Europe/Moscow       # callees without a timezone of their own
//!     windows: [{ days: mon-fri, from: "09:00", to: "20:00" }, { days: sat, from: "10:00", to: "18:00" }]
//!     require_consent: false
//!     retry:
//!       no_answer: { every: 10m, max_attempts: 5 }
//!       busy: { every: 5m, max_attempts: 3 }
//!       failed: { every: 30m, max_attempts: 2 }
//! ```
//! Errors name the file, line and column. This module does no I/O beyond reading the file
//! and looking for the bundled assets ([`asset_path`]) and the default config file
//! ([`default_config_path`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {msg}")]
    Syntax {
        path: String,
        line: u64,
        col: u64,
        msg: String,
    },
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    pub listen: SocketAddr,
    pub advertise: Option<String>,
    pub user_agent: String,
    /// Networks that may send requests (empty: anyone). See `node::guard`.
    pub allow: Vec<String>,
    /// What a request from outside `allow` gets: `drop` (silence) or `forbid` (403 once).
    pub deny: crate::sip::acl::Deny,
    /// Sources exempt from the rate limit and the per-source call limit: the local host by
    /// default; each trunk's proxy always; add a proxy in front (Kamailio, an SBC).
    pub trusted: Vec<String>,
    /// Per-source request rate limit (Kamailio `pike`'s defaults).
    pub limits: SipLimits,
    /// At most this many calls up from one (untrusted) source (default: half of
    /// `max_calls`; 0: no limit).
    pub max_calls_per_source: Option<usize>,
    /// SIP over TCP: the address to listen on (none: no listener; outbound TCP still works).
    pub tcp: Option<SocketAddr>,
    /// SIP over TLS: the address to listen on (5061 by convention); needs the two below.
    pub tls: Option<SocketAddr>,
    /// PEM certificate chain of the TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the TLS listener.
    pub tls_key: Option<PathBuf>,
    /// SRTP for calls that arrive over TLS (over UDP/TCP it is always off).
    pub srtp: crate::sip::sdp::SrtpPolicy,
    /// A TCP or TLS connection with no traffic for this long is closed.
    pub connection_idle: String,
    /// The DNS server trunk names are resolved with (RFC 3263); default: the first
    /// `nameserver` of /etc/resolv.conf.
    pub dns: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipLimits {
    /// Requests per window…
    pub requests: u32,
    /// …the window…
    pub per: String,
    /// …and how long a source that sends more is ignored.
    pub ban: String,
}

impl Default for SipLimits {
    fn default() -> Self {
        SipLimits {
            requests: 16,
            per: "2s".to_owned(),
            ban: "300s".to_owned(),
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            advertise: None,
            user_agent: format!("ivrflow/{}", env!("CARGO_PKG_VERSION")),
            allow: Vec::new(),
            deny: crate::sip::acl::Deny::Drop,
            trusted: vec!["127.0.0.1".to_owned(), "::1".to_owned()],
            limits: SipLimits::default(),
            max_calls_per_source: None,
            tcp: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
            srtp: crate::sip::sdp::SrtpPolicy::Optional,
            connection_idle: "600s".to_owned(),
            dns: None,
        }
    }
}

impl SipConfig {
    fn nets(list: &[String], key: &str) -> Result<Vec<crate::sip::acl::Net>, String> {
        list.iter()
            .map(|n| crate::sip::acl::Net::parse(n).map_err(|e| format!("sip.{key}: {e}")))
            .collect()
    }

    /// The edge's settings (`node::guard`).
    pub fn guard(&self) -> Result<crate::sip::acl::GuardConfig, String> {
        let dur = |v: &str, key: &str| {
            humantime::parse_duration(v.trim()).map_err(|e| format!("sip.limits.{key} {v:?}: {e}"))
        };
        if self.limits.requests == 0 {
            return Err("sip.limits.requests must be at least 1".to_owned());
        }
        Ok(crate::sip::acl::GuardConfig {
            allow: Self::nets(&self.allow, "allow")?,
            deny: self.deny,
            trusted: Self::nets(&self.trusted, "trusted")?,
            requests: self.limits.requests,
            per: dur(&self.limits.per, "per")?,
            ban: dur(&self.limits.ban, "ban")?,
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address RTP sockets bind to and SDP advertises; defaults to the SIP listen address.
    pub rtp_ip: Option<IpAddr>,
    /// Inclusive port range, "LOW-HIGH"; even ports are used for RTP.
    pub rtp_ports: String,
    /// Address written into SDP when it differs from `rtp_ip` (a public address behind
    /// NAT); RTP still binds `rtp_ip`.
    pub advertise: Option<IpAddr>,
    /// Back-pressure before quality collapses: a 20 ms pacing tick that starts this late
    /// plus runs this long (milliseconds) is over budget; while a fifth of a second's ticks
    /// are, new INVITEs get 503 with Retry-After (calls already up are not touched).
    pub overload_tick_ms: f64,
    /// Whose RTP a call accepts: `latch` (the SDP's address, or the first source seen and
    /// then only it or a continuation of its stream: symmetric RTP behind NAT) or `sdp`
    /// (only the address and port the SDP names).
    pub strict_rtp: crate::media::latch::StrictRtp,
    /// Send silence frames while no prompt plays, so the caller's stream never pauses
    /// (NATs and SBCs drop media they think is dead).
    pub keepalive: bool,
    /// RTCP reports every ~5 s and a BYE at the end (RFC 3550).
    pub rtcp: bool,
    /// End a call whose peer sent no RTP for this long (`0s`: never).
    pub timeout: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ip: None,
            rtp_ports: "20000-29999".to_owned(),
            advertise: None,
            overload_tick_ms: 20.0,
            strict_rtp: crate::media::latch::StrictRtp::Latch,
            keepalive: true,
            rtcp: true,
            timeout: "60s".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: Option<String>,
    /// Per-attempt timeout (connect + response).
    pub timeout: String,
    /// Attempts in all, the first immediate; the last `retry` wait repeats if needed.
    pub max_attempts: u32,
    /// Waits between attempts (humantime durations).
    pub retry: Vec<String>,
    /// Each wait is scaled by a random factor in [1 - jitter, 1 + jitter).
    pub jitter: f64,
    /// Standard Webhooks signing secret, `whsec_<base64>`; `IVRFLOW_WEBHOOK_SECRET`
    /// overrides it.
    pub secret: Option<String>,
    /// Deliveries in flight at once (each to a different call).
    pub max_in_flight: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            timeout: "10s".to_owned(),
            max_attempts: 8,
            retry: ["5s", "5m", "30m", "2h", "5h", "10h", "10h"]
                .into_iter()
                .map(str::to_owned)
                .collect(),
            jitter: 0.1,
            secret: None,
            max_in_flight: 64,
        }
    }
}

/// The control API (`POST /v1/calls`, …).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Bearer token; `IVRFLOW_API_TOKEN` overrides it. Without one the API is not started.
    pub token: Option<String>,
    /// A connection must send its request headers within this.
    pub header_timeout: String,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: String,
    /// At most this many API connections at once.
    pub max_connections: usize,
    /// How the CRM reaches this API (`https://ivr.shop.example`): the base of the
    /// recordings' URLs in CRM events. Default: `http://` and `listen`.
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            header_timeout: "10s".to_owned(),
            idle_timeout: "60s".to_owned(),
            max_connections: 256,
            public_url: None,
        }
    }
}

/// The control API's connection limits (`api.header_timeout`, `api.idle_timeout`,
/// `api.max_connections`), as `api::conn` applies them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiLimits {
    /// A new connection's first request line and headers must arrive within this.
    pub header_timeout: Duration,
    /// A connection with no bytes either way for this long is closed, and a later
    /// request's headers (on a kept-alive connection) must arrive within this too.
    pub idle_timeout: Duration,
    /// At most this many connections open; more are closed at once.
    pub max_connections: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
        }
    }
}

impl ApiConfig {
    /// The connection limits (`api.header_timeout`, `api.idle_timeout`,
    /// `api.max_connections`).
    pub fn limits(&self) -> Result<ApiLimits, String> {
        let dur = |v: &str, key: &str| -> Result<Duration, String> {
            let d =
                humantime::parse_duration(v.trim()).map_err(|e| format!("api.{key} {v:?}: {e}"))?;
            if d.is_zero() {
                return Err(format!("api.{key} must be more than 0"));
            }
            Ok(d)
        };
        if self.max_connections == 0 {
            return Err("api.max_connections must be at least 1".to_owned());
        }
        Ok(ApiLimits {
            header_timeout: dur(&self.header_timeout, "header_timeout")?,
            idle_timeout: dur(&self.idle_timeout, "idle_timeout")?,
            max_connections: self.max_connections,
        })
    }
}

/// Shortest API token accepted.
pub const MIN_API_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where the calls and the outbox live: none (or `sqlite:`) for SQLite in the data
    /// directory, `postgres://USER:PASS@HOST:PORT/DB` for a store shared by several nodes.
    /// The password may come from `IVRFLOW_STORE_URL` instead.
    pub url: Option<String>,
    /// This process's name in call records, claims and leases: unique per node. Calls it
    /// had up when it stopped are reported as interrupted at its next start (or by a
    /// surviving node, when it dies).
    pub node: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            node: "local".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Show phone numbers, names and transcripts in logs.
    pub pii: bool,
    /// `text` (one human-readable line per event) or `json` (one JSON object per line, for
    /// journald/Loki/Elasticsearch); `--log-format` overrides it.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text, json)")),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub scenarios: PathBuf,
    pub audio: PathBuf,
    pub data_dir: PathBuf,
    pub webhook: WebhookConfig,
    pub api: ApiConfig,
    pub store: StoreConfig,
    pub routes: BTreeMap<String, String>,
    /// Inbound calls may also reach any scenario by its file name as the dialled number
    /// (default: only while SIP listens on a loopback address — the demo; a node facing a
    /// trunk routes explicitly, so outbound-only scenarios cannot be called in).
    pub inbound_by_name: Option<bool>,
    /// Start even when a scenario that inbound calls can reach fails to load (it is left
    /// out; default: refuse to start and say why).
    pub allow_broken_scenarios: bool,
    pub max_calls: usize,
    /// Any answered call is ended after this long (`call.failed` reason `max_duration`).
    pub max_call_duration: String,
    /// On SIGTERM (or `POST /v1/admin/drain`) calls up may finish for this long; then the
    /// rest are ended (`call.failed` reason `shutdown`).
    pub drain_timeout: String,
    pub log: LogConfig,
    pub asr: AsrConfig,
    pub trunks: Vec<TrunkConfig>,
    pub campaigns: Vec<CampaignConfig>,
    pub recordings: RecordingsConfig,
    /// The file `serve` read this from (a reload re-reads its `routes:`); set by the caller.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// A SIP trunk for outbound calls.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    pub name: String,
    /// `host:port` where INVITEs go (the trunk, or its outbound proxy).
    pub proxy: String,
    /// `host:port` to REGISTER with (default: the proxy).
    #[serde(default)]
    pub registrar: Option<String>,
    /// Register at start (default: when a username is set).
    #[serde(default)]
    pub register: Option<bool>,
    /// Host part of dialled URIs and of our From (default: the proxy's `host:port`).
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The trunk's digest realm: challenges naming another realm are not answered
    /// (default: any realm, but only challenges from the trunk's own address).
    #[serde(default)]
    pub realm: Option<String>,
    #[serde(default)]
    pub caller_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default = "default_expires")]
    pub expires: String,
    #[serde(default = "default_keepalive")]
    pub keepalive: String,
    #[serde(default = "default_trunk_calls")]
    pub max_calls: usize,
    #[serde(default = "default_cps")]
    pub max_cps: f64,
    #[serde(default = "default_ring")]
    pub ring_timeout: String,
    /// Codecs to offer, in order of preference: `pcmu`, `pcma` (default both, µ-law first).
    #[serde(default)]
    pub codecs: Vec<String>,
    /// How to reach the proxy: `udp` (default), `tcp` or `tls`.
    #[serde(default)]
    pub transport: Option<String>,
    /// PEM file of the CA(s) the trunk's TLS certificate must chain to (default: the
    /// system's trust store).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SRTP with SDES keys on this trunk's calls: `off` (default), `optional`, `required`.
    /// Keys travel in the SDP, so anything but `off` needs `transport: tls`.
    #[serde(default)]
    pub srtp: Option<String>,
}

fn default_expires() -> String {
    "300s".to_owned()
}
fn default_keepalive() -> String {
    "30s".to_owned()
}
fn default_trunk_calls() -> usize {
    100
}
fn default_cps() -> f64 {
    10.0
}
fn default_ring() -> String {
    "30s".to_owned()
}

impl TrunkConfig {
    /// `sip:USER:PASSWORD@HOST:PORT` (user and password optional, percent-encoded where
    /// needed), the quick-start form of `--trunk`.
    pub fn from_uri(name: &str, uri: &str) -> Result<TrunkConfig, String> {
        let bad =
            |why: &str| format!("--trunk {uri:?}: {why}; expected sip:USER:PASSWORD@HOST:PORT");
        let rest = uri
            .strip_prefix("sip:")
            .ok_or_else(|| bad("not a sip: URI"))?;
        // One URI parameter is understood: `;transport=udp|tcp|tls`.
        let (rest, transport) = match rest.split_once(';') {
            None => (rest, None),
            Some((r, params)) => match params.strip_prefix("transport=") {
                Some(t) if crate::sip::transport::Transport::parse(t).is_some() => {
                    (r, Some(t.to_ascii_lowercase()))
                }
                _ => {
                    return Err(bad(
                        "the only parameter understood is ;transport=udp|tcp|tls",
                    ));
                }
            },
        };
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if hostport.is_empty() || hostport.contains(['/', ';', '?', ' ']) {
            return Err(bad("missing or malformed HOST:PORT"));
        }
        if let Some((_, port)) = hostport.rsplit_once(':')
            && !port.contains(']')
            && port.parse::<u16>().is_err()
        {
            return Err(bad("the port is not a number"));
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((a, b)) => (a, Some(b)),
                    None => (u, None),
                };
                if user.is_empty() {
                    return Err(bad("empty user"));
                }
                (Some(percent_decode(user)), pass.map(percent_decode))
            }
        };
        Ok(TrunkConfig {
            name: name.to_owned(),
            proxy: hostport.to_owned(),
            registrar: None,
            register: None,
            domain: None,
            username,
            password,
            realm: None,
            caller_id: None,
            display_name: None,
            expires: default_expires(),
            keepalive: default_keepalive(),
            max_calls: default_trunk_calls(),
            max_cps: default_cps(),
            ring_timeout: default_ring(),
            codecs: Vec::new(),
            transport,
            ca_file: None,
            srtp: None,
        })
    }

    /// How the trunk is reached.
    pub fn transport(&self) -> Result<crate::sip::transport::Transport, String> {
        match &self.transport {
            None => Ok(crate::sip::transport::Transport::Udp),
            Some(t) => crate::sip::transport::Transport::parse(t).ok_or_else(|| {
                format!(
                    "trunks[{}].transport {t:?}: expected udp, tcp or tls",
                    self.name
                )
            }),
        }
    }

    /// The trunk's SRTP policy.
    pub fn srtp(&self) -> Result<crate::sip::sdp::SrtpPolicy, String> {
        let p = match &self.srtp {
            None => crate::sip::sdp::SrtpPolicy::Off,
            Some(s) => crate::sip::sdp::SrtpPolicy::parse(s).ok_or_else(|| {
                format!(
                    "trunks[{}].srtp {s:?}: expected off, optional or required",
                    self.name
                )
            })?,
        };
        if p != crate::sip::sdp::SrtpPolicy::Off
            && self.transport()? != crate::sip::transport::Transport::Tls
        {
            return Err(format!(
                "trunks[{}].srtp {:?} needs transport: tls (SDES keys travel in the SDP)",
                self.name,
                self.srtp.as_deref().unwrap_or_default()
            ));
        }
        Ok(p)
    }

    pub fn registers(&self) -> bool {
        self.register.unwrap_or(self.username.is_some())
    }

    /// Host part of dialled URIs.
    pub fn domain(&self) -> &str {
        self.domain.as_deref().unwrap_or(&self.proxy)
    }

    fn duration(&self, what: &str, v: &str) -> Result<Duration, String> {
        humantime::parse_duration(v).map_err(|e| format!("trunks[{}].{what} {v:?}: {e}", self.name))
    }

    pub fn expires(&self) -> Result<Duration, String> {
        self.duration("expires", &self.expires)
    }
    pub fn keepalive(&self) -> Result<Duration, String> {
        self.duration("keepalive", &self.keepalive)
    }
    pub fn ring_timeout(&self) -> Result<Duration, String> {
        self.duration("ring_timeout", &self.ring_timeout)
    }

    pub fn codecs(&self) -> Result<Vec<crate::media::Codec>, String> {
        self.codecs
            .iter()
            .map(|c| match c.to_ascii_lowercase().as_str() {
                "pcmu" | "g711u" | "ulaw" => Ok(crate::media::Codec::Pcmu),
                "pcma" | "g711a" | "alaw" => Ok(crate::media::Codec::Pcma),
                other => Err(format!(
                    "trunks[{}].codecs: {other:?} is not a codec ivrflow speaks (pcmu, pcma)",
                    self.name
                )),
            })
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                (b[i + 1] as char).to_digit(16),
                (b[i + 2] as char).to_digit(16),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A calling campaign: when and how often its calls may be placed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    pub name: String,
    /// Trunk name (default: the first trunk).
    #[serde(default)]
    pub trunk: Option<String>,
    /// Callees without a time zone of their own.
    #[serde(default = "default_tz")]
    pub timezone: String,
    /// Empty: any time.
    #[serde(default)]
    pub windows: Vec<WindowConfig>,
    #[serde(default)]
    pub require_consent: bool,
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_tz() -> String {
    "UTC".to_owned()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// `mon-fri`, `sat`, `mon,wed,fri`, `daily`.
    pub days: String,
    /// Local time `HH:MM`.
    pub from: String,
    /// Local time `HH:MM`, exclusive.
    pub to: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub busy: Option<RetryRuleConfig>,
    pub no_answer: Option<RetryRuleConfig>,
    pub failed: Option<RetryRuleConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryRuleConfig {
    pub every: String,
    pub max_attempts: u32,
}

fn parse_days(s: &str) -> Result<Vec<jiff::civil::Weekday>, String> {
    use jiff::civil::Weekday::*;
    const ALL: [jiff::civil::Weekday; 7] = [
        Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
    ];
    let day = |d: &str| -> Result<usize, String> {
        let d = d.trim().to_ascii_lowercase();
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            .iter()
            .position(|n| d.starts_with(n) && !d.is_empty())
            .ok_or_else(|| format!("{d:?} is not a day (mon … sun)"))
    };
    let s = s.trim().to_ascii_lowercase();
    if s == "daily" || s == "every day" {
        return Ok(ALL.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut i = a;
                loop {
                    out.push(ALL[i]);
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => out.push(ALL[day(part)?]),
        }
    }
    Ok(out)
}

impl CampaignConfig {
    /// The dialer's view of this campaign.
    pub fn to_campaign(&self) -> Result<crate::dialer::Campaign, String> {
        let name = &self.name;
        if jiff::tz::TimeZone::get(&self.timezone).is_err() {
            return Err(format!(
                "campaigns[{name}].timezone {:?} is not an IANA time zone",
                self.timezone
            ));
        }
        let mut windows = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            let at = |what: &str, v: &str| -> Result<jiff::civil::Time, String> {
                v.parse::<jiff::civil::Time>().map_err(|e| {
                    format!("campaigns[{name}].windows[{i}].{what} {v:?} is not HH:MM: {e}")
                })
            };
            let start = at("from", &w.from)?;
            let end = at("to", &w.to)?;
            if end <= start {
                return Err(format!(
                    "campaigns[{name}].windows[{i}]: `to` must be after `from`"
                ));
            }
            windows.push(crate::dialer::CallingWindow {
                days: parse_days(&w.days)
                    .map_err(|e| format!("campaigns[{name}].windows[{i}].days: {e}"))?,
                start,
                end,
            });
        }
        let rule = |what: &str, r: &Option<RetryRuleConfig>| match r {
            None => Ok(crate::dialer::RetryRule {
                every: Duration::ZERO,
                max_attempts: 1,
            }),
            Some(r) => {
                let every = humantime::parse_duration(&r.every).map_err(|e| {
                    format!("campaigns[{name}].retry.{what}.every {:?}: {e}", r.every)
                })?;
                if r.max_attempts == 0 {
                    return Err(format!(
                        "campaigns[{name}].retry.{what}.max_attempts must be at least 1"
                    ));
                }
                Ok(crate::dialer::RetryRule {
                    every,
                    max_attempts: r.max_attempts,
                })
            }
        };
        Ok(crate::dialer::Campaign {
            name: name.clone(),
            windows,
            default_tz: self.timezone.clone(),
            require_consent: self.require_consent,
            busy: rule("busy", &self.retry.busy)?,
            no_answer: rule("no_answer", &self.retry.no_answer)?,
            failed: rule("failed", &self.retry.failed)?,
        })
    }
}

/// Speech recognition (`asr:`). The model is loaded and self-tested at start-up when any
/// loaded scenario accepts speech; `serve` refuses to start if it is missing or broken.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    /// ggml Whisper model; default `$IVRFLOW_MODEL`, else `models/ggml-base-q8_0.bin`
    /// (made by `./scripts/setup.sh`).
    pub model: Option<PathBuf>,
    /// Recognition worker threads (each decodes one utterance at a time).
    pub workers: usize,
    /// whisper.cpp threads per utterance.
    pub threads: usize,
    /// Utterances waiting beyond the ones being decoded; past this, new ones are answered
    /// as unrecognised at once (the node's nomatch) instead of piling up.
    pub queue: usize,
}

impl Default for AsrConfig {
    fn default() -> Self {
        AsrConfig {
            model: None,
            workers: 1,
            threads: 2,
            queue: 16,
        }
    }
}

impl AsrConfig {
    /// The model path: configured, else `$IVRFLOW_MODEL`, else the default model among the
    /// bundled assets ([`asset_path`]: `./models/`, next to the binary, `/usr/share/ivrflow`).
    pub fn model_path(&self) -> PathBuf {
        if let Some(m) = &self.model {
            return m.clone();
        }
        if std::env::var_os("IVRFLOW_MODEL").is_some() {
            return crate::asr::default_model_path();
        }
        asset_path(crate::asr::DEFAULT_MODEL)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            scenarios: bundled_dir("scenarios"),
            audio: bundled_dir("audio"),
            data_dir: PathBuf::from("data"),
            webhook: WebhookConfig::default(),
            api: ApiConfig::default(),
            store: StoreConfig::default(),
            routes: BTreeMap::new(),
            inbound_by_name: None,
            allow_broken_scenarios: false,
            max_calls: 4000,
            max_call_duration: "30m".to_owned(),
            drain_timeout: "5m".to_owned(),
            log: LogConfig::default(),
            asr: AsrConfig::default(),
            trunks: Vec::new(),
            campaigns: Vec::new(),
            recordings: RecordingsConfig::default(),
            source: None,
        }
    }
}

/// The callers' recordings (`record` nodes): WAV files under `<data_dir>/recordings`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingsConfig {
    /// Recordings older than this many days are deleted (checked hourly); 0 keeps them
    /// forever. Voice is personal data: keep it no longer than the shop needs it.
    pub retention_days: u32,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig { retention_days: 30 }
    }
}

/// The bundled asset directory (`scenarios`, `audio`): see [`asset_path`].
fn bundled_dir(name: &str) -> PathBuf {
    asset_path(name)
}

/// Where bundled assets (`scenarios/`, `audio/`, `models/…`) are looked for, in order:
/// the working directory (a checkout); next to the binary (`DIR/ivrflow` + `DIR/scenarios`,
/// an unpacked tarball); `../share/ivrflow` from the binary (`/usr/bin/ivrflow` →
/// `/usr/share/ivrflow`, `/opt/ivrflow/bin` → `/opt/ivrflow/share/ivrflow`);
/// `$XDG_DATA_HOME/ivrflow` (default `~/.local/share/ivrflow`); `/usr/local/share/ivrflow`;
/// `/usr/share/ivrflow`. Debug builds (`cargo run`,
/// `cargo test`) also look in the source tree they were built from; release builds never
/// depend on the build machine's paths.
pub fn asset_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from(".")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        dirs.push(bin.to_path_buf());
        if let Some(prefix) = bin.parent() {
            dirs.push(prefix.join("share").join("ivrflow"));
        }
    }
    // A user's own install (`cargo install --path .` puts no assets anywhere).
    if let Some(data) = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
    {
        dirs.push(data.join("ivrflow"));
    }
    dirs.push(PathBuf::from("/usr/local/share/ivrflow"));
    dirs.push(PathBuf::from("/usr/share/ivrflow"));
    #[cfg(debug_assertions)]
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dirs
}

/// The first of [`asset_dirs`]`/name` that exists; `./name` when none does (so the error
/// that follows names a plain relative path).
pub fn asset_path(name: &str) -> PathBuf {
    for dir in asset_dirs() {
        let p = if dir == Path::new(".") {
            PathBuf::from(name)
        } else {
            dir.join(name)
        };
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(name)
}

/// The system-wide configuration file `serve` reads when no `--config` is given and there is
/// no `./ivrflow.yaml`.
pub const SYSTEM_CONFIG: &str = "/etc/ivrflow/ivrflow.yaml";

/// The configuration file to read when none is named: `./ivrflow.yaml`, else
/// [`SYSTEM_CONFIG`], else none (built-in defaults).
pub fn default_config_path() -> Option<PathBuf> {
    [PathBuf::from("ivrflow.yaml"), PathBuf::from(SYSTEM_CONFIG)]
        .into_iter()
        .find(|p| p.is_file())
}

impl Config {
    /// `max_call_duration` as a duration (at least 1 s).
    pub fn max_call_duration(&self) -> Result<std::time::Duration, String> {
        let d = humantime::parse_duration(self.max_call_duration.trim()).map_err(|e| {
            format!(
                "max_call_duration {:?}: {e} (e.g. 30m)",
                self.max_call_duration
            )
        })?;
        if d < std::time::Duration::from_secs(1) {
            return Err("max_call_duration must be at least 1s".to_owned());
        }
        Ok(d)
    }

    /// The per-source call limit: `sip.max_calls_per_source`, default half of `max_calls`;
    /// 0 is no limit.
    pub fn max_calls_per_source(&self) -> Option<usize> {
        match self.sip.max_calls_per_source {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some((self.max_calls / 2).max(1)),
        }
    }

    /// `drain_timeout` as a duration.
    /// Where recordings are written and served from.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// The base of recordings' URLs given to the CRM, once the API listens on `bound`
    /// (`api.public_url`, else `http://` and that address).
    pub fn recordings_url(&self, bound: SocketAddr) -> String {
        match &self.api.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    pub fn drain_timeout(&self) -> Result<std::time::Duration, String> {
        humantime::parse_duration(self.drain_timeout.trim())
            .map_err(|e| format!("drain_timeout {:?}: {e} (e.g. 5m)", self.drain_timeout))
    }

    pub fn from_yaml(path_label: &str, text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ConfigError::Syntax {
                path: path_label.to_owned(),
                line,
                col,
                msg: first_line(&e.to_string()),
            }
        })?;
        cfg.validate(path_label)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: label.clone(),
            source,
        })?;
        Config::from_yaml(&label, &text)
    }

    /// Which scenarios inbound calls reach (see [`Config::inbound_by_name`]).
    pub fn inbound(&self) -> crate::catalog::Inbound {
        crate::catalog::Inbound {
            routes: self.routes.clone(),
            by_name: self
                .inbound_by_name
                .unwrap_or_else(|| self.sip.listen.ip().is_loopback()),
        }
    }

    /// Check values that parse but make no sense.
    pub fn validate(&self, label: &str) -> Result<(), ConfigError> {
        let invalid = |msg: String| ConfigError::Invalid {
            path: label.to_owned(),
            msg,
        };
        self.rtp_port_range().map_err(invalid)?;
        self.webhook_timeout().map_err(invalid)?;
        if let Some(url) = &self.webhook.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(format!(
                "webhook.url {url:?} must start with http:// or https://"
            )));
        }
        if self.max_calls == 0 {
            return Err(invalid("max_calls must be at least 1".to_owned()));
        }
        self.max_call_duration().map_err(invalid)?;
        self.drain_timeout().map_err(invalid)?;
        self.sip.guard().map_err(invalid)?;
        self.media_options().map_err(invalid)?;
        self.connection_idle().map_err(invalid)?;
        if self.sip.tls.is_some() && (self.sip.tls_cert.is_none() || self.sip.tls_key.is_none()) {
            return Err(invalid(
                "sip.tls (a TLS listener) needs sip.tls_cert and sip.tls_key (PEM files; --tls-cert, --tls-key)"
                    .to_owned(),
            ));
        }
        self.api.limits().map_err(invalid)?;
        if let Some(url) = &self.api.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(format!(
                "api.public_url {url:?} must start with http:// or https://"
            )));
        }
        self.webhook_schedule().map_err(invalid)?;
        self.webhook_secret().map_err(invalid)?;
        if self.webhook.max_in_flight == 0 {
            return Err(invalid(
                "webhook.max_in_flight must be at least 1".to_owned(),
            ));
        }
        if let Some(t) = &self.api.token
            && t.trim().len() < MIN_API_TOKEN_LEN
        {
            return Err(invalid(format!(
                "api.token (or IVRFLOW_API_TOKEN) must be at least {MIN_API_TOKEN_LEN} characters"
            )));
        }
        if self.store.node.trim().is_empty() {
            return Err(invalid("store.node must not be empty".to_owned()));
        }
        let mut names = std::collections::BTreeSet::new();
        for t in &self.trunks {
            if !names.insert(t.name.as_str()) {
                return Err(invalid(format!("trunk name {:?} is used twice", t.name)));
            }
            t.expires().map_err(invalid)?;
            t.keepalive().map_err(invalid)?;
            t.ring_timeout().map_err(invalid)?;
            t.codecs().map_err(invalid)?;
            t.transport().map_err(invalid)?;
            t.srtp().map_err(invalid)?;
            if t.max_calls == 0 || t.max_cps.is_nan() || t.max_cps <= 0.0 {
                return Err(invalid(format!(
                    "trunks[{}]: max_calls and max_cps must be positive",
                    t.name
                )));
            }
            if t.registers() && t.username.is_none() {
                return Err(invalid(format!(
                    "trunks[{}]: register needs a username",
                    t.name
                )));
            }
        }
        let mut campaigns = std::collections::BTreeSet::new();
        for c in &self.campaigns {
            if !campaigns.insert(c.name.as_str()) {
                return Err(invalid(format!("campaign name {:?} is used twice", c.name)));
            }
            c.to_campaign().map_err(invalid)?;
            if let Some(t) = &c.trunk
                && !names.contains(t.as_str())
            {
                return Err(invalid(format!(
                    "campaigns[{}].trunk {t:?} is not a configured trunk",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// The delivery retry schedule from `webhook.retry`, `max_attempts` and `jitter`.
    pub fn webhook_schedule(&self) -> Result<crate::crm::outbox::RetrySchedule, String> {
        let w = &self.webhook;
        if w.max_attempts == 0 {
            return Err("webhook.max_attempts must be at least 1".to_owned());
        }
        if !(0.0..=1.0).contains(&w.jitter) {
            return Err(format!("webhook.jitter {} must be in [0, 1]", w.jitter));
        }
        if w.retry.is_empty() && w.max_attempts > 1 {
            return Err(
                "webhook.retry must list at least one wait when max_attempts > 1".to_owned(),
            );
        }
        let delays = w
            .retry
            .iter()
            .enumerate()
            .map(|(i, d)| {
                humantime::parse_duration(d).map_err(|e| format!("webhook.retry[{i}] {d:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::crm::outbox::RetrySchedule {
            delays,
            max_attempts: w.max_attempts,
            jitter: w.jitter,
        })
    }

    /// The signing secret, parsed (`None` when not configured).
    pub fn webhook_secret(&self) -> Result<Option<crate::crm::signing::Secret>, String> {
        match &self.webhook.secret {
            None => Ok(None),
            Some(s) => crate::crm::signing::Secret::parse(s)
                .map(Some)
                .map_err(|e| format!("webhook.secret (or IVRFLOW_WEBHOOK_SECRET): {e}")),
        }
    }

    pub fn rtp_port_range(&self) -> Result<(u16, u16), String> {
        let s = &self.media.rtp_ports;
        let parsed = s.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
        });
        match parsed {
            Some((lo, hi)) if lo >= 1024 && lo < hi => Ok((lo, hi)),
            _ => Err(format!(
                "media.rtp_ports {s:?} must be LOW-HIGH with 1024 <= LOW < HIGH <= 65535"
            )),
        }
    }

    pub fn webhook_timeout(&self) -> Result<Duration, String> {
        humantime::parse_duration(&self.webhook.timeout)
            .map_err(|e| format!("webhook.timeout {:?}: {e}", self.webhook.timeout))
    }

    /// What the engine does to keep media alive and secure (see `engine::MediaOptions`).
    pub fn media_options(&self) -> Result<crate::engine::MediaOptions, String> {
        let t = humantime::parse_duration(self.media.timeout.trim())
            .map_err(|e| format!("media.timeout {:?}: {e}", self.media.timeout))?;
        Ok(crate::engine::MediaOptions {
            idle_fill: self.media.keepalive,
            rtcp: self.media.rtcp,
            timeout: (!t.is_zero()).then_some(t),
            inbound_srtp: self.sip.srtp,
        })
    }

    /// `sip.connection_idle`.
    pub fn connection_idle(&self) -> Result<Duration, String> {
        match humantime::parse_duration(self.sip.connection_idle.trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err("sip.connection_idle must be more than 0s".to_owned()),
            Err(e) => Err(format!(
                "sip.connection_idle {:?}: {e}",
                self.sip.connection_idle
            )),
        }
    }

    pub fn rtp_ip(&self) -> IpAddr {
        self.media.rtp_ip.unwrap_or(self.sip.listen.ip())
    }

    /// The RTP address our SDP advertises.
    pub fn sdp_ip(&self) -> IpAddr {
        self.media.advertise.unwrap_or_else(|| self.rtp_ip())
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_loopback_defaults() {
        let c = Config::from_yaml("c.yaml", "{}").unwrap();
        assert_eq!(c.sip.listen, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(c.rtp_port_range().unwrap(), (20000, 29999));
        assert_eq!(c.rtp_ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn full_file_parses() {
        let y = "sip:\n  listen: 0.0.0.0:5070\nroutes:\n  \"100\": order-confirmation\nwebhook:\n  url: http://127.0.0.1:9/x\n  timeout: 2s\n";
        let c = Config::from_yaml("c.yaml", y).unwrap();
        assert_eq!(c.sip.listen.port(), 5070);
        assert_eq!(c.routes["100"], "order-confirmation");
        assert_eq!(c.webhook_timeout().unwrap(), Duration::from_secs(2));
    }

    #[test]
    fn unknown_key_reports_line_and_column() {
        let y = "sip:\n  listen: 127.0.0.1:5060\n  lisen: 1\n";
        let e = Config::from_yaml("c.yaml", y).unwrap_err().to_string();
        assert!(e.starts_with("c.yaml:3:3:"), "{e}");
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn webhook_api_and_store_sections() {
        let y = "webhook:\n  url: http://127.0.0.1:9/x\n  retry: [100ms, 1s]\n  max_attempts: 4\n  jitter: 0\n  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\napi:\n  listen: 127.0.0.1:18080\n  token: abcdefghijklmnopq\nstore:\n  node: n1\n";
        let c = Config::from_yaml("c.yaml", y).unwrap();
        let s = c.webhook_schedule().unwrap();
        assert_eq!(
            s.delays,
            vec![Duration::from_millis(100), Duration::from_secs(1)]
        );
        assert_eq!(s.max_attempts, 4);
        assert!(c.webhook_secret().unwrap().is_some());
        assert_eq!(c.api.listen.port(), 18080);
        assert_eq!(c.store.node, "n1");
        // Defaults: the Standard Webhooks schedule, no secret, API off (no token).
        let d = Config::default();
        assert_eq!(
            d.webhook_schedule().unwrap(),
            crate::crm::outbox::RetrySchedule::default()
        );
        assert_eq!(d.api.token, None);
        for (bad, field) in [
            ("webhook:\n  retry: [5x]\n", "webhook.retry[0]"),
            ("webhook:\n  secret: nope\n", "webhook.secret"),
            ("webhook:\n  jitter: 2\n", "webhook.jitter"),
            ("api:\n  token: short\n", "api.token"),
        ] {
            let e = Config::from_yaml("c.yaml", bad).unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::from_yaml("c.yaml", "media:\n  rtp_ports: 9-5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.rtp_ports"), "{e}");
        let e = Config::from_yaml("c.yaml", "webhook:\n  url: ftp://x\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("webhook.url"), "{e}");
    }
}

#[cfg(test)]
mod trunk_tests {
    use super::*;

    #[test]
    fn trunk_uri_gives_credentials_and_address() {
        let t = TrunkConfig::from_uri("default", "sip:shop:s%40cret:x@127.0.0.1:5070").unwrap();
        assert_eq!(t.username.as_deref(), Some("shop"));
        assert_eq!(t.password.as_deref(), Some("s@cret:x"));
        assert_eq!(t.proxy, "127.0.0.1:5070");
        assert!(t.registers());
        let t = TrunkConfig::from_uri("default", "sip:pbx.example:5060").unwrap();
        assert_eq!(t.username, None);
        assert!(!t.registers());
        for bad in [
            "http://x",
            "sip:",
            "sip:u:p@",
            "sip:u@host:port",
            "sip:@h:5060",
        ] {
            assert!(TrunkConfig::from_uri("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn campaigns_parse_windows_and_retries() {
        let cfg = Config::from_yaml(
            "t.yaml",
            "trunks: [{name: main, proxy: '127.0.0.1:5070', username: u, password: p}]\n\
             campaigns:\n  - name: cart\n    trunk: main\n    timezone: Europe/Moscow\n    \
             windows: [{days: mon-fri, from: '09:00', to: '20:00'}, {days: sat, from: '10:00', to: '18:00'}]\n    \
             retry: {no_answer: {every: 10m, max_attempts: 5}}\n",
        )
        .unwrap();
        let c = cfg.campaigns[0].to_campaign().unwrap();
        assert_eq!(c.windows.len(), 2);
        assert_eq!(c.windows[0].days.len(), 5);
        assert_eq!(c.no_answer.max_attempts, 5);
        assert_eq!(c.no_answer.every, Duration::from_secs(600));
        assert_eq!(c.busy.max_attempts, 1);
        let bad = Config::from_yaml(
            "t.yaml",
            "campaigns: [{name: c, windows: [{days: funday, from: '09:00', to: '10:00'}]}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("funday"), "{bad}");
        let bad = Config::from_yaml("t.yaml", "campaigns: [{name: c, trunk: nope}]\n")
            .unwrap_err()
            .to_string();
        assert!(bad.contains("nope"), "{bad}");
    }

    #[test]
    fn transports_srtp_and_media_keys() {
        let y = "sip:\n  tcp: 127.0.0.1:5060\n  tls: \"[::1]:5061\"\n  tls_cert: c.pem\n  tls_key: k.pem\n  srtp: required\nmedia:\n  keepalive: false\n  timeout: 0s\ntrunks:\n  - name: t\n    proxy: sip.example.net:5061\n    transport: tls\n    srtp: required\n    ca_file: ca.pem\n";
        let c = Config::from_yaml("c.yaml", y).unwrap();
        c.validate("c.yaml").unwrap();
        assert_eq!(c.sip.tls.unwrap().port(), 5061);
        assert_eq!(c.sip.srtp, crate::sip::sdp::SrtpPolicy::Required);
        let m = c.media_options().unwrap();
        assert!(!m.idle_fill && m.rtcp && m.timeout.is_none());
        assert_eq!(
            c.trunks[0].transport().unwrap(),
            crate::sip::transport::Transport::Tls
        );
        assert_eq!(
            Config::default().media_options().unwrap().timeout,
            Some(Duration::from_secs(60))
        );
        let bad = [
            "sip:\n  tls: 127.0.0.1:5061\n",
            "trunks:\n  - name: t\n    proxy: h:5060\n    srtp: required\n",
            "trunks:\n  - name: t\n    proxy: h:5060\n    transport: sctp\n",
            "media:\n  timeout: soon\n",
            "sip:\n  connection_idle: 0s\n",
        ];
        for y in bad {
            assert!(Config::from_yaml("c.yaml", y).is_err(), "{y}");
        }
        let t = TrunkConfig::from_uri("d", "sip:u:p@h:5061;transport=tls").unwrap();
        assert_eq!(
            (t.proxy.as_str(), t.transport.as_deref()),
            ("h:5061", Some("tls"))
        );
        assert!(TrunkConfig::from_uri("d", "sip:u@h;lr").is_err());
    }
}
