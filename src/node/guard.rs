//! The SIP edge: who may talk to the node, and how fast (issue 14).
//!
//! Every SIP request from a source that is not trusted is checked before the user agent
//! sees it:
//! - **access list**: when `allow` is set, requests from outside it are dropped silently
//!   or answered `403 Forbidden` once, statelessly (`deny`);
//! - **rate limit** per source address, like Kamailio's `pike`: more than `requests` in
//!   `per` bans the source for `ban`; a banned source's requests are dropped silently (no
//!   reply to amplify, nothing for a spoofed source to bounce off us).
//!
//! Responses (to our own requests) are never limited: they can only match a transaction of
//! ours. Trusted sources (the local host, each trunk's proxy, `sip.trusted`: a proxy such as
//! Kamailio in front of the node, whose one address carries everybody's calls) are exempt.
//!
//! Sans-IO: the time comes in as `now`. Not here: per-source call limits (the engine's, at
//! `max_calls_per_source`), RTP (`media::latch`).

use std::collections::HashMap;
use std::net::IpAddr;
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

#[cfg(test)]
use crate::sip::acl::Net;
use crate::sip::acl::any_contains;
pub use crate::sip::acl::{Deny, GuardConfig};

/// What happens to a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Dropped silently (banned, or outside the allow-list with `deny: drop`).
    Drop,
    /// Outside the allow-list: `403` once.
    Forbid,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    window: Instant,
    count: u32,
    banned_until: Option<Instant>,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    pub dropped_banned: u64,
    pub denied: u64,
    pub bans: u64,
}

/// Most sources kept; beyond, idle ones are forgotten first.
const MAX_SOURCES: usize = 100_000;

pub struct Guard {
    cfg: GuardConfig,
    sources: HashMap<IpAddr, Source>,
    pub stats: GuardStats,
}

impl Guard {
    pub fn new(cfg: GuardConfig) -> Guard {
        Guard {
            cfg,
            sources: HashMap::new(),
            stats: GuardStats::default(),
        }
    }

    /// Whether `ip` is trusted (exempt from limits).
    pub fn trusted(&self, ip: IpAddr) -> bool {
        any_contains(&self.cfg.trusted, ip)
    }

    /// Sources banned now.
    pub fn banned(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|s| s.banned_until.is_some_and(|t| t > now))
            .count()
    }

    /// A datagram from `source` at `now`.
    pub fn check(&mut self, now: Instant, source: IpAddr, datagram: &[u8]) -> Verdict {
        if datagram.starts_with(b"SIP/2.0 ") || self.trusted(source) {
            return Verdict::Pass;
        }
        // A keep-alive (CRLF) is not a request.
        if datagram.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return Verdict::Pass;
        }
        if !self.cfg.allow.is_empty() && !any_contains(&self.cfg.allow, source) {
            self.stats.denied += 1;
            return match self.cfg.deny {
                Deny::Drop => Verdict::Drop,
                Deny::Forbid => Verdict::Forbid,
            };
        }
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&source) {
            self.forget_idle(now);
        }
        let s = self.sources.entry(source).or_insert(Source {
            window: now,
            count: 0,
            banned_until: None,
        });
        if let Some(until) = s.banned_until {
            if until > now {
                self.stats.dropped_banned += 1;
                return Verdict::Drop;
            }
            s.banned_until = None;
            s.window = now;
            s.count = 0;
        }
        if now.saturating_duration_since(s.window) >= self.cfg.per {
            s.window = now;
            s.count = 0;
        }
        s.count += 1;
        if s.count > self.cfg.requests {
            s.banned_until = Some(now + self.cfg.ban);
            self.stats.bans += 1;
            self.stats.dropped_banned += 1;
            tracing::warn!(%source, requests = s.count, per_ms = self.cfg.per.as_millis() as u64, ban_s = self.cfg.ban.as_secs(), "SIP request flood: source banned");
            return Verdict::Drop;
        }
        Verdict::Pass
    }

    fn forget_idle(&mut self, now: Instant) {
        let per = self.cfg.per;
        self.sources.retain(|_, s| {
            s.banned_until.is_some_and(|t| t > now) || now.saturating_duration_since(s.window) < per
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &[u8] = b"OPTIONS sip:x@h SIP/2.0\r\n\r\n";

    #[test]
    fn a_flood_is_banned_and_the_ban_ends() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig {
            trusted: vec![Net::parse("127.0.0.1").unwrap()],
            ..GuardConfig::default()
        });
        let flooder: IpAddr = "127.0.0.2".parse().unwrap();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let passed = (0..100u64)
            .filter(|i| g.check(at(i * 5), flooder, REQ) == Verdict::Pass)
            .count();
        assert_eq!(passed, 16, "16 in the first 2 s, then banned");
        assert_eq!(g.stats.bans, 1);
        assert_eq!(g.banned(at(500)), 1);
        // Responses still pass; trusted sources are never counted.
        assert_eq!(
            g.check(at(600), flooder, b"SIP/2.0 200 OK\r\n\r\n"),
            Verdict::Pass
        );
        for i in 0..1000 {
            assert_eq!(
                g.check(at(i), "127.0.0.1".parse().unwrap(), REQ),
                Verdict::Pass
            );
        }
        // Still banned at 299 s, free again after 300 s.
        assert_eq!(g.check(at(299_000), flooder, REQ), Verdict::Drop);
        assert_eq!(g.check(at(301_000), flooder, REQ), Verdict::Pass);
        // A caller at a normal pace is never banned.
        let caller: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..100u64 {
            assert_eq!(g.check(at(400_000 + i * 200), caller, REQ), Verdict::Pass);
        }
    }

    #[test]
    fn outside_the_allow_list_is_dropped_or_forbidden() {
        let t0 = Instant::now();
        let mut g = Guard::new(GuardConfig {
            allow: vec![Net::parse("198.51.100.0/24").unwrap()],
            deny: Deny::Forbid,
            ..GuardConfig::default()
        });
        assert_eq!(
            g.check(t0, "198.51.100.9".parse().unwrap(), REQ),
            Verdict::Pass
        );
        assert_eq!(
            g.check(t0, "203.0.113.1".parse().unwrap(), REQ),
            Verdict::Forbid
        );
        assert_eq!(g.stats.denied, 1);
    }
}
