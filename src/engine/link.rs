//! What keeps each call's media path secure and alive (issue 19), for the engine: SRTP
//! with SDES keys negotiated per call, RTCP reports, silence while the robot listens, and
//! the media timeout.
//!
//! - **SRTP.** An inbound call over TLS whose offer has a usable `a=crypto` (under
//!   [`MediaOptions::inbound_srtp`]) is answered with a fresh key of the same suite and tag;
//!   a call over UDP or TCP never is (SDES keys in clear text protect nothing, RFC 4568
//!   §8.3). Outbound calls through a trunk with `srtp: optional|required` offer a key for
//!   each suite (`_80` first); the answer's tag picks ours. Keys come from the operating
//!   system's generator, never from the engine's seeded RNG (a key derivable from a 64-bit
//!   seed is no key). Every packet of an SRTP call is protected on the way out (the pacing
//!   tick, prompts started between ticks, the relay from an agent) and authenticated and
//!   decrypted on the way in before anything else looks at it.
//! - **RTCP** (`media::rtcp`): a report every ~5 s and a BYE when the robot hangs up, to
//!   the RTP port when the caller multiplexes (RFC 5761), else to its RTCP address; RTCP
//!   arriving on the RTP port is taken apart from RTP there.
//! - **Silence while listening** (`Playout::set_idle_fill`), except while bridged to an
//!   agent (the agent's audio is relayed then).
//! - **Media timeout**: a call that received no RTP for [`MediaOptions::timeout`] is ended
//!   (BYE, `call.failed` reason `media_timeout`); checked on the pacing tick, so it costs a
//!   comparison per call per tick and no timer entries.
//!
//! Not here: DTLS-SRTP, SRTP on agent legs, re-keying on re-INVITE (a re-offer is answered
//! with the call's original SDP, keys included).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, RngExt as _};

use super::{Engine, EngineOutput, LiveCall, MAX_RTP};
use crate::media::rtcp::{self, Rtcp, SenderInfo};
use crate::media::rtp::{RtpHeaderView, SAMPLES_PER_PACKET};
use crate::media::srtp::{CryptoAttr, MasterKey, SrtpSession, Suite};
use crate::sip::sdp::{self, LocalMedia, Negotiated, SrtpPolicy};
use crate::sip::transport::Transport;
use crate::sip::ua::CallHandle;

/// The media settings the runtime gives the engine ([`Engine::set_media_options`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOptions {
    /// Send silence frames while no prompt plays.
    pub idle_fill: bool,
    /// Send RTCP reports and a BYE.
    pub rtcp: bool,
    /// End a call that received no RTP for this long (`None`: never).
    pub timeout: Option<Duration>,
    /// SRTP for inbound calls that came over TLS (over UDP and TCP it is always off).
    pub inbound_srtp: SrtpPolicy,
}

impl Default for MediaOptions {
    /// What the engine does unless told otherwise: plain RTP only while prompts play, as
    /// before issue 19 (the runtime's configuration turns the rest on).
    fn default() -> Self {
        MediaOptions {
            idle_fill: false,
            rtcp: false,
            timeout: None,
            inbound_srtp: SrtpPolicy::Off,
        }
    }
}

/// Engine-wide state of this module.
#[derive(Default)]
pub(super) struct Interop {
    pub(super) opts: MediaOptions,
    /// SRTP policy by trunk address (what outbound INVITEs to it offer).
    trunk_srtp: HashMap<SocketAddr, SrtpPolicy>,
    /// Outbound calls ringing: the policy and the keys their offer carried.
    offered: HashMap<CallHandle, (SrtpPolicy, Vec<CryptoAttr>)>,
    /// The operating system's randomness, for keys only (made on first use).
    key_rng: Option<StdRng>,
    /// Calls the pacing tick found silent past the media timeout.
    pub(super) timed_out: Vec<CallHandle>,
    scratch: Vec<u8>,
}

/// One call's media link.
pub(super) struct MediaLink {
    srtp: Option<SrtpSession>,
    rtcp: Option<Rtcp>,
    rtcp_dest: SocketAddr,
    last_rx: Instant,
    timeout: Option<Duration>,
}

impl MediaLink {
    /// SRTP is on for this call.
    pub(super) fn is_secure(&self) -> bool {
        self.srtp.is_some()
    }

    /// Protects the packet in `buf[..n]` in place when the call is SRTP; the new length, or
    /// `None` when it cannot be sent.
    pub(super) fn protect_rtp(&mut self, buf: &mut [u8], n: usize) -> Option<usize> {
        match self.srtp.as_mut() {
            None => Some(n),
            Some(s) => match s.protect_rtp(buf, n) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(error = %e, "SRTP: cannot protect a packet; dropped");
                    None
                }
            },
        }
    }

    /// An accepted RTP packet from the peer.
    pub(super) fn handle_rtp(&mut self, now: Instant, view: &RtpHeaderView) {
        self.last_rx = now;
        if let Some(r) = self.rtcp.as_mut() {
            r.handle_rtp(now, view.ssrc, view.sequence, view.timestamp);
        }
    }

    /// Whether the peer has been silent past the media timeout at `now`.
    pub(super) fn timed_out(&self, now: Instant) -> bool {
        self.timeout
            .is_some_and(|t| now.saturating_duration_since(self.last_rx) >= t)
    }
}

/// What [`Engine::media_in`] made of a datagram.
pub(super) enum In {
    /// Plain RTP: use the datagram as it is.
    Plain,
    /// SRTP, decrypted into the scratch buffer (this many bytes).
    Decrypted(usize),
    /// RTCP, or a packet that failed authentication: nothing more to do.
    Consumed,
}

fn fresh_key(rng: &mut Option<StdRng>) -> MasterKey {
    let rng = rng.get_or_insert_with(rand::make_rng::<StdRng>);
    let mut b = [0u8; 30];
    rng.fill_bytes(&mut b);
    MasterKey::from_bytes(b)
}

/// The RTP timestamp of `playout`'s clock at `now`, with its counters (RFC 3550 §6.4.1).
fn sender_info(c: &LiveCall, now: Instant) -> Option<SenderInfo> {
    let p = c.core.playout();
    let (ts, at) = p.rtp_clock()?;
    let rate = SAMPLES_PER_PACKET as u128 * 50;
    let rtp_ts = if at >= now {
        ts.wrapping_sub(((at - now).as_micros() * rate / 1_000_000) as u32)
    } else {
        ts.wrapping_add(((now - at).as_micros() * rate / 1_000_000) as u32)
    };
    Some(SenderInfo {
        rtp_ts,
        packets: p.packets_sent() as u32,
        octets: p.octets_sent() as u32,
    })
}

impl Engine {
    /// Media settings from the runtime's configuration (see [`MediaOptions`]).
    pub fn set_media_options(&mut self, opts: MediaOptions) {
        self.interop.opts = opts;
    }

    /// Outbound INVITEs to `dest` (a trunk) offer SRTP under `policy`.
    pub fn set_trunk_srtp(&mut self, dest: SocketAddr, policy: SrtpPolicy) {
        self.interop.trunk_srtp.insert(dest, policy);
    }

    /// The SRTP policy for an INVITE from `source`: only TLS callers may have SRTP.
    pub(super) fn inbound_srtp(&self, source: SocketAddr) -> SrtpPolicy {
        match self.ua.transport_to(source) {
            Transport::Tls => self.interop.opts.inbound_srtp,
            _ => SrtpPolicy::Off,
        }
    }

    /// Our side of SRTP for a negotiated offer: a fresh key of the suite and tag the peer
    /// chose goes into the answer; the session is returned.
    pub(super) fn secure_answer(&mut self, neg: &mut Negotiated) -> Option<SrtpSession> {
        let remote = neg.crypto.clone()?;
        let local = CryptoAttr {
            tag: remote.tag,
            suite: remote.suite,
            key: fresh_key(&mut self.interop.key_rng),
        };
        match SrtpSession::new(remote.suite, &local.key, &remote.key) {
            Ok(s) => {
                neg.local_crypto = Some(local);
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "SRTP: cannot set up the keys");
                None
            }
        }
    }

    /// The SDP offer of outbound `call` to `dest`: with SRTP keys when its trunk wants them.
    pub(super) fn secure_offer(
        &mut self,
        call: CallHandle,
        dest: SocketAddr,
        local: &LocalMedia,
        codecs: &[crate::media::Codec],
    ) -> String {
        let policy = self
            .interop
            .trunk_srtp
            .get(&dest)
            .copied()
            .unwrap_or_default();
        if policy == SrtpPolicy::Off {
            return sdp::offer_codecs(local, codecs);
        }
        let keys: Vec<CryptoAttr> = [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
            .into_iter()
            .zip(1..)
            .map(|(suite, tag)| CryptoAttr {
                tag,
                suite,
                key: fresh_key(&mut self.interop.key_rng),
            })
            .collect();
        let offer = sdp::offer_secure(local, codecs, &keys, policy == SrtpPolicy::Required);
        self.interop.offered.insert(call, (policy, keys));
        offer
    }

    /// The SRTP policy to read outbound `call`'s answer with.
    pub(super) fn answer_policy(&self, call: CallHandle) -> SrtpPolicy {
        self.interop
            .offered
            .get(&call)
            .map_or(SrtpPolicy::Off, |(p, _)| *p)
    }

    /// The SRTP session of an answered outbound call, from the answer's key and ours of the
    /// same tag. `Err` when SRTP was required and the answer has none of our keys.
    pub(super) fn secure_answered(
        &mut self,
        call: CallHandle,
        neg: &Negotiated,
    ) -> Result<Option<SrtpSession>, String> {
        let Some((policy, keys)) = self.interop.offered.remove(&call) else {
            return Ok(None);
        };
        let ours = neg.crypto.as_ref().and_then(|remote| {
            keys.iter()
                .find(|k| k.tag == remote.tag && k.suite == remote.suite)
                .map(|k| (k, remote))
        });
        match ours {
            Some((local, remote)) => SrtpSession::new(remote.suite, &local.key, &remote.key)
                .map(Some)
                .map_err(|e| format!("SRTP: {e}")),
            None if policy == SrtpPolicy::Required => Err(
                "SRTP is required on this trunk and the answer accepted none of our keys"
                    .to_owned(),
            ),
            None => Ok(None),
        }
    }

    /// Forgets what an outbound call that ended unanswered offered.
    pub(super) fn forget_offer(&mut self, call: CallHandle) {
        self.interop.offered.remove(&call);
    }

    /// A new call's media link.
    pub(super) fn new_link(
        &mut self,
        now: Instant,
        neg: &Negotiated,
        srtp: Option<SrtpSession>,
        ssrc: u32,
    ) -> MediaLink {
        let rtcp_dest = if neg.rtcp_mux {
            neg.remote_rtp
        } else if sdp::check_rtp_destination(neg.remote_rtcp.ip()).is_ok() {
            neg.remote_rtcp
        } else {
            SocketAddr::new(neg.remote_rtp.ip(), neg.remote_rtp.port().saturating_add(1))
        };
        let rtcp = self.interop.opts.rtcp.then(|| {
            let first = now + rtcp::REPORT_INTERVAL.mul_f64(self.rng.random_range(0.5..1.0));
            Rtcp::new(
                ssrc,
                &format!("ivrflow@{}", self.cfg.media_ip),
                8000,
                now,
                first,
            )
        });
        MediaLink {
            srtp,
            rtcp,
            rtcp_dest,
            last_rx: now,
            timeout: self.interop.opts.timeout,
        }
    }

    /// SRTP and RTCP on the way in, before anything else reads the datagram.
    pub(super) fn media_in(&mut self, now: Instant, call: CallHandle, packet: &[u8]) -> In {
        let Some(c) = self.calls.get_mut(&call) else {
            return In::Plain;
        };
        let link = &mut c.link;
        let buf = &mut self.interop.scratch;
        if rtcp::is_rtcp(packet) {
            let plain = match link.srtp.as_mut() {
                None => packet,
                Some(s) => {
                    buf.clear();
                    buf.extend_from_slice(packet);
                    match s.unprotect_rtcp(buf) {
                        Ok(n) => &buf[..n],
                        Err(_) => return In::Consumed,
                    }
                }
            };
            if let Some(r) = link.rtcp.as_mut() {
                r.handle_rtcp(now, plain);
            }
            return In::Consumed;
        }
        let Some(s) = link.srtp.as_mut() else {
            return In::Plain;
        };
        buf.clear();
        buf.extend_from_slice(packet);
        match s.unprotect_rtp(buf) {
            Ok(n) => In::Decrypted(n),
            Err(e) => {
                tracing::trace!(%call, error = %e, "SRTP packet refused");
                In::Consumed
            }
        }
    }

    /// The scratch buffer [`Engine::media_in`] decrypts into, taken out and put back by
    /// the caller (it is read while the engine is borrowed mutably).
    pub(super) fn take_scratch(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.interop.scratch)
    }

    pub(super) fn put_scratch(&mut self, buf: Vec<u8>) {
        self.interop.scratch = buf;
    }

    /// The tick's RTCP: a report for `call` when one is due, written into the arena.
    pub(super) fn push_rtcp_due(
        call: CallHandle,
        c: &mut LiveCall,
        now: Instant,
        wall: SystemTime,
        next: Duration,
        arena: &mut Vec<u8>,
        outputs: &mut std::collections::VecDeque<EngineOutput>,
    ) {
        let Some(r) = c.link.rtcp.as_ref() else {
            return;
        };
        if r.next_report() > now {
            return;
        }
        let sender = sender_info(c, now);
        let off = arena.len();
        arena.resize(off + MAX_RTP, 0);
        let Some(r) = c.link.rtcp.as_mut() else {
            return;
        };
        let mut n = r.write_report(now, wall, sender, now + next, &mut arena[off..]);
        if let Some(s) = c.link.srtp.as_mut() {
            n = s.protect_rtcp(&mut arena[off..], n).unwrap_or(0);
        }
        if n == 0 {
            arena.truncate(off);
            return;
        }
        arena.truncate(off + n);
        outputs.push_back(EngineOutput::Rtp {
            call,
            dest: c.link.rtcp_dest,
            off: off as u32,
            len: n as u32,
        });
    }

    /// The interval until a call's next RTCP report (RFC 3550 §6.3.1: 0.5–1.5 × the
    /// interval).
    pub(super) fn rtcp_interval(&mut self) -> Duration {
        rtcp::REPORT_INTERVAL.mul_f64(self.rng.random_range(0.5..1.5))
    }

    /// The robot leaves the call: an RTCP BYE before the media port closes.
    pub(super) fn send_rtcp_bye(&mut self, now: Instant, call: CallHandle) {
        let wall = self.wall(now);
        let mut buf = std::mem::take(&mut self.packet_buf);
        let out = self.calls.get_mut(&call).and_then(|c| {
            let sender = sender_info(c, now);
            let r = c.link.rtcp.as_mut()?;
            let mut n = r.write_bye(now, wall, sender, &mut buf);
            if let Some(s) = c.link.srtp.as_mut() {
                n = s.protect_rtcp(&mut buf, n).ok()?;
            }
            Some((c.link.rtcp_dest, n))
        });
        if let Some((dest, n)) = out {
            self.push_raw(call, dest, &buf[..n]);
        }
        self.packet_buf = buf;
    }

    /// Ends the calls the tick found silent past the media timeout.
    pub(super) fn end_silent_calls(&mut self, now: Instant) {
        for call in std::mem::take(&mut self.interop.timed_out) {
            let Some(c) = self.calls.get(&call) else {
                continue;
            };
            if c.completed {
                continue;
            }
            let limit = self.interop.opts.timeout.unwrap_or_default();
            tracing::warn!(call_id = %c.sip_call_id, ?limit, "no RTP from the peer; hanging up");
            self.abort_call(
                now,
                call,
                crate::crm::events::FailReason::MediaTimeout,
                format!(
                    "no RTP from the peer for {}",
                    humantime::format_duration(limit)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests;
