//! The SIP edge's settings (`node::guard` applies them), and networks in CIDR notation
//! (`10.0.0.0/8`, `2001:db8::/32`, a bare address for one host) for the listener's
//! allow-list and the trusted sources.

use std::net::IpAddr;
use std::time::Duration;

/// A network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `a.b.c.d/n`, `x::y/n`, or a bare address (the host alone).
    pub fn parse(text: &str) -> Result<Net, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{text:?} is not an address or network (e.g. 192.0.2.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0–{max}"))?,
        };
        Ok(Net { addr, prefix })
    }

    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What to do with a request from outside `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Deny {
    /// Silence.
    #[default]
    Drop,
    /// `403 Forbidden`, once, statelessly.
    Forbid,
}

/// The edge's settings.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Sources that may send requests (empty: anyone).
    pub allow: Vec<Net>,
    pub deny: Deny,
    /// Sources exempt from the limits (the local host and the trunks are added).
    pub trusted: Vec<Net>,
    /// At most this many requests…
    pub requests: u32,
    /// …per this window, per source address…
    pub per: Duration,
    /// …or the source is banned this long.
    pub ban: Duration,
}

impl Default for GuardConfig {
    /// Kamailio `pike`'s defaults: 16 requests per 2 s, a ban of 300 s.
    fn default() -> Self {
        GuardConfig {
            allow: Vec::new(),
            deny: Deny::Drop,
            trusted: Vec::new(),
            requests: 16,
            per: Duration::from_secs(2),
            ban: Duration::from_secs(300),
        }
    }
}

/// Whether any of `nets` contains `ip`.
pub fn any_contains(nets: &[Net], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_contain_their_addresses() {
        let n = Net::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("203.0.113.9".parse().unwrap())
        );
        let host = Net::parse("127.0.0.1").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        assert!(host.contains("::ffff:127.0.0.1".parse().unwrap()));
        let v6 = Net::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nope", "::1/129", "1.2.3.4/x"] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
    }
}
