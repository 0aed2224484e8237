//! Runtime configuration: a YAML file (all keys optional) with command-line flags on top,
//! and embedded defaults that start a working robot on loopback with no file at all.
//!
//! ```yaml
//! sip:
//!   listen: 127.0.0.1:5060
//!   advertise: 203.0.113.5:5060     # Via/Contact host when behind NAT
//! media:
//!   rtp_ip: 127.0.0.1
//!   rtp_ports: 20000-29999
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
//! store:
//!   node: local                     # this process's name in call records
//! routes:                            # dialled number → scenario (file stem)
//!   "100": order-confirmation
//! max_calls: 4000
//! log: { pii: false }
//! asr: { model: models/ggml-base.bin, workers: 1, threads: 2, queue: 16 }
//! ```
//! Errors name the file, line and column. This module does no I/O beyond reading the file.

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
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            advertise: None,
            user_agent: format!("ivrflow/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Address RTP sockets bind to and SDP advertises; defaults to the SIP listen address.
    pub rtp_ip: Option<IpAddr>,
    /// Inclusive port range, "LOW-HIGH"; even ports are used for RTP.
    pub rtp_ports: String,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ip: None,
            rtp_ports: "20000-29999".to_owned(),
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
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
        }
    }
}

/// Shortest API token accepted.
pub const MIN_API_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// This process's name in call records; calls it had up when it stopped are reported
    /// as interrupted at its next start.
    pub node: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            node: "local".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Show phone numbers, names and transcripts in logs.
    pub pii: bool,
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
    pub max_calls: usize,
    pub log: LogConfig,
    pub asr: AsrConfig,
}

/// Speech recognition (`asr:`). The model is loaded and self-tested at start-up when any
/// loaded scenario accepts speech; `serve` refuses to start if it is missing or broken.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AsrConfig {
    /// ggml Whisper model; default `$IVRFLOW_MODEL`, else `models/ggml-base.bin`
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
    /// The model path: configured, or the default.
    pub fn model_path(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(crate::asr::default_model_path)
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
            max_calls: 4000,
            log: LogConfig::default(),
            asr: AsrConfig::default(),
        }
    }
}

/// The bundled asset directory: `./NAME` when run from a checkout, else the one next to the
/// crate's manifest at build time.
fn bundled_dir(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

impl Config {
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

    pub fn rtp_ip(&self) -> IpAddr {
        self.media.rtp_ip.unwrap_or(self.sip.listen.ip())
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
