//! Strict RTP: whose packets a call's media port accepts (like Asterisk's `strictrtp`, but
//! safe against RTP Bleed).
//!
//! A call's port is known to anyone who can read the SDP, or guess it; without a check, a
//! stranger's RFC 4733 events sent to it press keys in somebody else's call (issue 14).
//!
//! ```text
//!   from the SDP's address ─────────────────────────────► accepted (latched to it)
//!   mode `sdp`: anything else ─────────────────────────► dropped
//!   mode `latch` (behind NAT, the SDP names a private address):
//!     nothing latched yet ─► accepted, latched (source, SSRC)
//!     from the latched source ─► accepted
//!     another source, same SSRC, sequence continuing (+1…+MAX_GAP), the latched
//!       source silent for RELEARN_SILENCE ─► re-latched (the phone's NAT binding changed)
//!     anything else ─► dropped, counted
//! ```
//! Not here: where the robot sends (always the SDP's address), RTCP, SRTP.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::rtp::RtpHeaderView;

/// Largest forward jump in sequence numbers that still continues a stream on a new
/// source (a second of packets).
pub const MAX_GAP: u16 = 50;
/// A stream moves to a new source only after its latched source has been silent this
/// long (a NAT that rebinds stops the old source; a stranger racing a live phone does
/// not get in).
pub const RELEARN_SILENCE: Duration = Duration::from_millis(60);

/// How strictly a call's RTP source is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StrictRtp {
    /// Only the address and port the SDP names.
    Sdp,
    /// The SDP's address, or the first source seen (symmetric RTP behind NAT), then only
    /// that source, or a continuation of its stream.
    #[default]
    Latch,
}

/// The check for one call leg.
#[derive(Debug, Clone)]
pub struct SourceLatch {
    sdp: SocketAddr,
    mode: StrictRtp,
    latched: Option<(SocketAddr, u32)>,
    last_seq: u16,
    last_at: Option<Instant>,
    /// Packets dropped for their source.
    pub dropped: u64,
}

impl SourceLatch {
    pub fn new(sdp: SocketAddr, mode: StrictRtp) -> SourceLatch {
        SourceLatch {
            sdp,
            mode,
            latched: None,
            last_seq: 0,
            last_at: None,
            dropped: 0,
        }
    }

    /// Whether the packet (`view`) from `source`, arrived at `now`, belongs to the call.
    pub fn accept(&mut self, now: Instant, source: SocketAddr, view: &RtpHeaderView) -> bool {
        let ok = if source == self.sdp {
            true
        } else if self.mode == StrictRtp::Sdp {
            false
        } else {
            match self.latched {
                None => true,
                Some((addr, _)) if addr == source => true,
                Some((_, ssrc)) => {
                    let gap = view.sequence.wrapping_sub(self.last_seq);
                    let quiet = self
                        .last_at
                        .is_none_or(|t| now.saturating_duration_since(t) >= RELEARN_SILENCE);
                    view.ssrc == ssrc && (1..=MAX_GAP).contains(&gap) && quiet
                }
            }
        };
        if ok {
            self.latched = Some((source, view.ssrc));
            self.last_seq = view.sequence;
            self.last_at = Some(now);
        } else {
            self.dropped += 1;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ssrc: u32, seq: u16) -> RtpHeaderView {
        RtpHeaderView {
            payload_type: 0,
            sequence: seq,
            timestamp: 0,
            ssrc,
            marker: false,
            payload: 12..12,
        }
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn latch_takes_the_first_source_and_keeps_strangers_out() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut l = SourceLatch::new(a("10.0.0.5:4000"), StrictRtp::Latch);
        // Behind NAT: the phone's packets come from its public address.
        assert!(l.accept(ms(0), a("203.0.113.7:31000"), &view(7, 100)));
        assert!(l.accept(ms(20), a("203.0.113.7:31000"), &view(7, 101)));
        // A stranger: another source, another SSRC — or the same SSRC, out of sequence,
        // or in sequence while the phone is talking.
        assert!(!l.accept(ms(30), a("198.51.100.9:5000"), &view(9, 102)));
        assert!(!l.accept(ms(30), a("198.51.100.9:5000"), &view(7, 1000)));
        assert!(!l.accept(ms(30), a("198.51.100.9:5000"), &view(7, 101)));
        assert!(!l.accept(ms(35), a("198.51.100.9:5000"), &view(7, 102)));
        assert_eq!(l.dropped, 4);
        // The phone's NAT binding changes: the old source stops; the same SSRC, the next
        // sequence numbers, from the new binding.
        assert!(!l.accept(ms(40), a("203.0.113.7:31002"), &view(7, 102)));
        assert!(l.accept(ms(80), a("203.0.113.7:31002"), &view(7, 104)));
        // A late packet of the old binding does not continue the stream: dropped.
        assert!(!l.accept(ms(200), a("203.0.113.7:31000"), &view(7, 103)));
        // The SDP's own address is always the call's.
        assert!(l.accept(ms(210), a("10.0.0.5:4000"), &view(1, 5)));
    }

    #[test]
    fn sdp_mode_accepts_only_the_sdp_address() {
        let t0 = Instant::now();
        let mut l = SourceLatch::new(a("127.0.0.1:6000"), StrictRtp::Sdp);
        assert!(!l.accept(t0, a("127.0.0.1:6002"), &view(1, 1)));
        assert!(l.accept(t0, a("127.0.0.1:6000"), &view(1, 2)));
        assert!(!l.accept(t0, a("127.0.0.1:6002"), &view(1, 3)));
    }
}
