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
//!   timeout: 10s
//!   max_attempts: 10
//! routes:                            # dialled number → scenario (file stem)
//!   "100": order-confirmation
//! max_calls: 4000
//! log: { pii: false }
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
    pub timeout: String,
    pub max_attempts: u32,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            timeout: "10s".to_owned(),
            max_attempts: 10,
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
    pub routes: BTreeMap<String, String>,
    pub max_calls: usize,
    pub log: LogConfig,
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
            routes: BTreeMap::new(),
            max_calls: 4000,
            log: LogConfig::default(),
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
        Ok(())
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
