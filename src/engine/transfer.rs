//! Transfers from a scenario's `transfer` node.
//!
//! **Blind** (`mode: blind`): REFER to the caller's UA with the target; the NOTIFYs say how
//! the caller's call to the target went. A final 2xx is `Connected` (the dialogue ends and
//! the robot hangs up); a refusal or a failed target goes back to the scenario as busy, no
//! answer or failed.
//!
//! **Bridged** (`mode: bridged`, the default): the robot calls the target itself (an agent
//! leg, through the configured transfer route), plays the agent the node's announcement
//! ("the caller speaks English"), and only then connects the legs: RTP is relayed both ways
//! on the legs' own sockets (symmetric RTP), payload types rewritten to what each side
//! negotiated, G.711 μ-law/A-law transcoded when the legs differ, and the caller's RFC 4733
//! keys passed through (as events when the agent negotiated them, else as SIP INFO). Busy,
//! no answer (ring timeout → CANCEL) or failure at the agent goes back to the scenario,
//! with the caller still on the line. Once bridged, either side's BYE ends both legs, and
//! the caller's `call.completed` is recorded then (with the transfer node's outcome).
//!
//! Not here: attended transfer (REFER with Replaces), transfer of an agent leg, recording
//! of the bridged conversation.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::dialogue::{Action, PromptRef, TransferOutcome};
use crate::media::rtp::{Playout, PlayoutEvent};
use crate::scenario::TransferMode;
use crate::sip::ua::ReferFailure;

/// How long an agent may ring before the robot gives up (CANCEL, no answer).
pub const AGENT_RING_TIMEOUT: Duration = Duration::from_secs(25);

/// Where agent legs of bridged transfers go when the target URI names no IP address and
/// port of its own: the trunk's proxy, with our identity and credentials there.
#[derive(Debug, Clone)]
pub struct TransferRoute {
    pub dest: SocketAddr,
    /// Host part for targets given as a bare number (`"100"` → `sip:100@domain`).
    pub domain: String,
    pub from_uri: String,
    /// The trunk's credentials (scoped to its proxy: see [`TrunkCredentials`]).
    pub credentials: Option<crate::sip::ua::TrunkCredentials>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AgentPhase {
    Ringing,
    Announcing,
    Bridged,
}

/// An agent leg waiting for its media port.
pub(super) struct AgentSetup {
    pub caller: CallHandle,
    pub transfer_id: u64,
    pub announcement: Vec<Arc<crate::media::prompts::Prompt>>,
    /// Its `sdp_offer` is written once the port is known.
    pub invite: OutboundInvite,
}

/// The robot's call to the agent of a bridged transfer.
pub(super) struct AgentLeg {
    pub caller: CallHandle,
    pub transfer_id: u64,
    pub phase: AgentPhase,
    pub announcement: Vec<Arc<crate::media::prompts::Prompt>>,
    pub ring_deadline: Instant,
    pub cancelled_on_timeout: bool,
    /// Set on answer.
    pub media: Option<(MediaParams, SocketAddr)>,
    pub playout: Option<Playout>,
    /// Whose RTP the agent leg accepts (set on answer).
    pub latch: Option<crate::media::latch::SourceLatch>,
}

fn outcome_for_status(status: u16) -> TransferOutcome {
    match status {
        486 | 600 => TransferOutcome::Busy,
        408 | 480 | 487 => TransferOutcome::NoAnswer,
        s => TransferOutcome::Failed(format!("SIP {s}")),
    }
}

/// `sip:user@192.0.2.1:5070` → that address; a host name (or no port) → `None`.
fn literal_dest(uri: &str) -> Option<SocketAddr> {
    let u = crate::sip::message::parse_uri(uri).ok()?;
    let host = u.host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, u.port.unwrap_or(5060)))
}

impl Engine {
    /// A dialogue asked for a transfer of `call`.
    pub(super) fn start_transfer(&mut self, now: Instant, call: CallHandle, action: Action) {
        let Action::Transfer {
            id,
            target,
            mode,
            announcement,
        } = action
        else {
            return;
        };
        let call_id = self.ua.call_id(call).unwrap_or("-").to_owned();
        tracing::info!(%call_id, target = %Pii(&target), ?mode, "transfer");
        let failed = |engine: &mut Engine, why: String| {
            tracing::warn!(%call_id, %why, "transfer failed");
            engine.transfer_result(now, call, id, TransferOutcome::Failed(why));
        };
        match mode {
            TransferMode::Blind => match self.ua.refer(now, call, &target, None) {
                Ok(()) => {
                    self.refers.insert(call, id);
                }
                Err(e) => failed(self, format!("REFER not sent: {e:?}")),
            },
            TransferMode::Bridged => {
                let route = match (literal_dest(&target), &self.cfg.transfer_route) {
                    (Some(dest), route) => TransferRoute {
                        dest,
                        domain: dest.to_string(),
                        from_uri: route
                            .as_ref()
                            .map(|r| r.from_uri.clone())
                            .unwrap_or_else(|| format!("sip:ivrflow@{}", self.cfg.media_ip)),
                        // The trunk's credentials go only to the trunk itself: an agent
                        // anywhere else never gets them (issue 12).
                        credentials: route
                            .as_ref()
                            .and_then(|r| r.credentials.clone())
                            .filter(|c| c.peer == dest),
                    },
                    (None, Some(r)) => r.clone(),
                    (None, None) => {
                        return failed(
                            self,
                            "no route to the target: give an IP:port or configure a trunk"
                                .to_owned(),
                        );
                    }
                };
                let announcement: Vec<_> = announcement
                    .iter()
                    .filter_map(|p: &PromptRef| self.prompts.get(&p.lang, &p.name))
                    .collect();
                let target = if target.contains(':') {
                    target
                } else {
                    format!("sip:{target}@{}", route.domain)
                };
                let agent = self.ua.reserve_call();
                self.awaiting_media.insert(
                    agent,
                    super::MediaWait::Agent(Box::new(AgentSetup {
                        caller: call,
                        transfer_id: id,
                        announcement,
                        invite: OutboundInvite {
                            target,
                            dest: route.dest,
                            from_uri: route.from_uri,
                            from_display: None,
                            sdp_offer: String::new(),
                            headers: Vec::new(),
                            credentials: route.credentials,
                        },
                    })),
                );
                if let Some(c) = self.calls.get_mut(&call) {
                    c.bridge = Some(agent);
                }
                self.open_media(agent);
            }
        }
    }

    /// The agent leg's media port is open: call the agent.
    pub(super) fn call_agent(
        &mut self,
        now: Instant,
        agent: CallHandle,
        setup: AgentSetup,
        port: u16,
    ) {
        let AgentSetup {
            caller,
            transfer_id,
            announcement,
            mut invite,
        } = setup;
        if self
            .calls
            .get(&caller)
            .is_none_or(|c| c.completed || c.bridge != Some(agent))
        {
            // The caller went away meanwhile.
            self.close_media(agent);
            return;
        }
        invite.sdp_offer = sdp::offer(&self.local_media(port));
        self.ua.invite_as(now, agent, invite);
        let ring_deadline = now + AGENT_RING_TIMEOUT;
        self.call_timers.push(Reverse((ring_deadline, agent)));
        self.agents.insert(
            agent,
            AgentLeg {
                caller,
                transfer_id,
                phase: AgentPhase::Ringing,
                announcement,
                ring_deadline,
                cancelled_on_timeout: false,
                media: None,
                playout: None,
                latch: None,
            },
        );
    }

    /// Tell the caller's dialogue how its transfer went.
    pub(super) fn transfer_result(
        &mut self,
        now: Instant,
        call: CallHandle,
        id: u64,
        out: TransferOutcome,
    ) {
        if let Some(c) = self.calls.get_mut(&call)
            && !c.completed
        {
            c.core
                .handle_input(now, Input::TransferResult { id, outcome: out });
        }
        self.attention.push(call);
    }

    /// REFER outcome events.
    pub(super) fn refer_event(&mut self, now: Instant, ev: UaEvent) {
        let (call, outcome) = match ev {
            UaEvent::ReferSucceeded { call, .. } => (call, TransferOutcome::Connected),
            UaEvent::ReferFailed { call, reason } => (
                call,
                match reason {
                    ReferFailure::Rejected(s) => {
                        TransferOutcome::Failed(format!("REFER refused with {s}"))
                    }
                    ReferFailure::TargetFailed(s) => outcome_for_status(s),
                    ReferFailure::NoResponse => {
                        TransferOutcome::Failed("no answer to REFER".into())
                    }
                    ReferFailure::SubscriptionTerminated => {
                        TransferOutcome::Failed("subscription ended without a result".into())
                    }
                    ReferFailure::Timeout => TransferOutcome::NoAnswer,
                },
            ),
            _ => return,
        };
        if let Some(id) = self.refers.remove(&call) {
            tracing::info!(
                call_id = self.ua.call_id(call).unwrap_or("-"),
                ?outcome,
                "blind transfer result"
            );
            self.transfer_result(now, call, id, outcome);
        }
    }

    /// The agent answered: play the announcement, then bridge.
    pub(super) fn agent_answered(&mut self, now: Instant, agent: CallHandle, sdp_answer: &[u8]) {
        let Some(leg) = self.agents.get_mut(&agent) else {
            return;
        };
        let neg = match sdp::negotiate(sdp_answer) {
            Ok(n) => n,
            Err(e) => {
                let (caller, id) = (leg.caller, leg.transfer_id);
                self.ua.hangup(now, agent);
                self.agents.remove(&agent);
                if let Some(c) = self.calls.get_mut(&caller) {
                    c.bridge = None;
                }
                self.transfer_result(
                    now,
                    caller,
                    id,
                    TransferOutcome::Failed(format!("agent's SDP answer: {e}")),
                );
                return;
            }
        };
        let media = self.media_params(&neg);
        let Some(leg) = self.agents.get_mut(&agent) else {
            return;
        };
        let mut playout = Playout::new(
            media.codec,
            media.ssrc,
            media.initial_seq,
            media.initial_ts,
            media.payload_type,
        );
        tracing::info!(call_id = self.ua.call_id(agent).unwrap_or("-"), remote_rtp = %neg.remote_rtp, "agent answered; announcing the caller");
        if leg.announcement.is_empty() {
            leg.phase = AgentPhase::Bridged;
        } else {
            playout.play(0, leg.announcement.clone(), now);
            leg.phase = AgentPhase::Announcing;
        }
        leg.media = Some((media, neg.remote_rtp));
        leg.latch = Some(crate::media::latch::SourceLatch::new(
            neg.remote_rtp,
            self.cfg.strict_rtp,
        ));
        leg.playout = Some(playout);
        if leg.phase == AgentPhase::Bridged {
            let (caller, id) = (leg.caller, leg.transfer_id);
            self.transfer_result(now, caller, id, TransferOutcome::Connected);
        }
    }

    /// The agent leg ended: before the bridge, the transfer failed; after, the call is over.
    pub(super) fn agent_ended(&mut self, now: Instant, agent: CallHandle, reason: EndReason) {
        let Some(leg) = self.agents.remove(&agent) else {
            return;
        };
        self.close_media(agent);
        let caller = leg.caller;
        match leg.phase {
            AgentPhase::Ringing => {
                let outcome = match reason {
                    EndReason::Failed(487) if leg.cancelled_on_timeout => TransferOutcome::NoAnswer,
                    EndReason::Failed(s) => outcome_for_status(s),
                    other => TransferOutcome::Failed(format!("{other:?}")),
                };
                if let Some(c) = self.calls.get_mut(&caller) {
                    c.bridge = None;
                }
                tracing::info!(?outcome, "agent leg failed; back to the scenario");
                self.transfer_result(now, caller, leg.transfer_id, outcome);
            }
            AgentPhase::Announcing | AgentPhase::Bridged => {
                tracing::info!(
                    call_id = self.ua.call_id(caller).unwrap_or("-"),
                    "the agent hung up; ending the caller's leg"
                );
                if leg.phase == AgentPhase::Announcing {
                    // Never bridged: the caller still waits in the scenario.
                    if let Some(c) = self.calls.get_mut(&caller) {
                        c.bridge = None;
                    }
                    self.transfer_result(
                        now,
                        caller,
                        leg.transfer_id,
                        TransferOutcome::Failed("the agent hung up during the announcement".into()),
                    );
                    return;
                }
                if self.calls.contains_key(&caller) {
                    self.ua.hangup(now, caller);
                    self.complete(now, caller, HangupBy::Robot);
                }
            }
        }
    }

    /// The caller's leg ended: take the agent leg down with it.
    pub(super) fn caller_gone(&mut self, now: Instant, agent: CallHandle) {
        if self.awaiting_media.remove(&agent).is_some() {
            // Not called yet: the port, if it opens, is closed then (`handle_media_opened`).
            return;
        }
        let Some(leg) = self.agents.remove(&agent) else {
            return;
        };
        match leg.phase {
            AgentPhase::Ringing => self.ua.cancel(now, agent),
            _ => self.ua.hangup(now, agent),
        }
        self.close_media(agent);
    }

    /// Ring timeout of an agent leg (from the timer heap). True if `call` was an agent leg.
    pub(super) fn agent_timer(&mut self, now: Instant, at: Instant, call: CallHandle) -> bool {
        let Some(leg) = self.agents.get_mut(&call) else {
            return false;
        };
        if leg.phase == AgentPhase::Ringing && at >= leg.ring_deadline && !leg.cancelled_on_timeout
        {
            leg.cancelled_on_timeout = true;
            self.ua.cancel(now, call);
        }
        true
    }

    /// The pacing tick for agent legs: announcement packets; the end of the announcement
    /// bridges the call.
    pub(super) fn tick_agents(&mut self, now: Instant) {
        let mut bridged = Vec::new();
        let mut packets = Vec::new();
        for (&agent, leg) in self.agents.iter_mut() {
            if leg.phase != AgentPhase::Announcing {
                continue;
            }
            let (Some(playout), Some((_, remote))) = (leg.playout.as_mut(), leg.media) else {
                continue;
            };
            if let Some(n) = playout.poll_packet(now, &mut self.packet_buf) {
                packets.push((agent, remote, self.packet_buf[..n].to_vec()));
            }
            while let Some(ev) = playout.poll_event() {
                if matches!(
                    ev,
                    PlayoutEvent::Finished { .. } | PlayoutEvent::Stopped { .. }
                ) {
                    leg.phase = AgentPhase::Bridged;
                    bridged.push((leg.caller, leg.transfer_id));
                }
            }
        }
        for (agent, remote, p) in packets {
            self.push_rtp(agent, remote, &p);
        }
        for (caller, id) in bridged {
            tracing::info!(
                call_id = self.ua.call_id(caller).unwrap_or("-"),
                "announcement played; caller and agent bridged"
            );
            self.transfer_result(now, caller, id, TransferOutcome::Connected);
        }
    }

    /// An RTP packet on a leg of a bridge: relay it to the other leg. True if it was one
    /// (the caller's dialogue does not see it).
    pub(super) fn relay_rtp(&mut self, now: Instant, from: CallHandle, packet: &[u8]) -> bool {
        // Agent → caller.
        if let Some(leg) = self.agents.get(&from) {
            if leg.phase != AgentPhase::Bridged {
                return true;
            }
            let (Some((agent_media, _)), Some(c)) = (leg.media, self.calls.get(&leg.caller)) else {
                return true;
            };
            let (to, dest, to_media) = (leg.caller, c.remote_rtp, c.media);
            let mut buf = std::mem::take(&mut self.packet_buf);
            if let Some(n) = rewrite(&agent_media, &to_media, packet, &mut buf) {
                self.push_rtp(to, dest, &buf[..n]);
            }
            self.packet_buf = buf;
            return true;
        }
        // Caller → agent.
        let Some(agent) = self.calls.get(&from).and_then(|c| c.bridge) else {
            return false;
        };
        let Some(leg) = self.agents.get(&agent) else {
            return false;
        };
        if leg.phase != AgentPhase::Bridged {
            // Ringing or announcing: the caller is still in the scenario.
            return false;
        }
        let (Some((agent_media, dest)), Some(c)) = (leg.media, self.calls.get(&from)) else {
            return true;
        };
        let caller_media = c.media;
        // Keys: as events when the agent takes them, else one INFO per key.
        if caller_media
            .telephone_event_pt
            .is_some_and(|pt| rtp_pt(packet) == Some(pt))
            && agent_media.telephone_event_pt.is_none()
        {
            if let Some(c) = self.calls.get_mut(&from)
                && let Some(digit) = c
                    .relay_dtmf
                    .as_mut()
                    .and_then(|d| d.handle_rtp(now, packet))
            {
                let _ = self.ua.send_info_dtmf(now, agent, digit.digit, 160);
            }
            return true;
        }
        let mut buf = std::mem::take(&mut self.packet_buf);
        if let Some(n) = rewrite(&caller_media, &agent_media, packet, &mut buf) {
            self.push_rtp(agent, dest, &buf[..n]);
        }
        self.packet_buf = buf;
        true
    }
}

fn rtp_pt(packet: &[u8]) -> Option<u8> {
    crate::media::rtp::parse_rtp(packet).map(|h| h.payload_type)
}

/// Copy an RTP packet from one leg's negotiation to the other's: payload type renumbered,
/// G.711 transcoded when the codecs differ. `None` for what the other side cannot take.
fn rewrite(from: &MediaParams, to: &MediaParams, packet: &[u8], out: &mut [u8]) -> Option<usize> {
    let view = crate::media::rtp::parse_rtp(packet)?;
    let pt = view.payload_type;
    if packet.len() > out.len() {
        return None;
    }
    out[..packet.len()].copy_from_slice(packet);
    let marker = packet[1] & 0x80;
    if pt == from.payload_type {
        out[1] = marker | to.payload_type;
        if from.codec != to.codec {
            // The payload only: header extension and padding pass through untouched.
            for b in &mut out[view.payload.clone()] {
                *b = transcode(from.codec, to.codec, *b);
            }
        }
    } else if Some(pt) == from.telephone_event_pt {
        out[1] = marker | to.telephone_event_pt?;
    } else {
        // Comfort noise or an unknown type: pass it through unchanged.
    }
    Some(packet.len())
}

fn transcode(from: crate::media::Codec, to: crate::media::Codec, b: u8) -> u8 {
    use crate::media::{Codec, g711};
    let linear = match from {
        Codec::Pcmu => g711::ulaw_to_linear(b),
        Codec::Pcma => g711::alaw_to_linear(b),
    };
    match to {
        Codec::Pcmu => g711::linear_to_ulaw(linear),
        Codec::Pcma => g711::linear_to_alaw(linear),
    }
}

#[cfg(test)]
mod relay_tests {
    use super::*;
    use crate::media::Codec;

    fn media(codec: Codec, pt: u8, te: Option<u8>) -> MediaParams {
        MediaParams {
            codec,
            payload_type: pt,
            telephone_event_pt: te,
            ssrc: 1,
            initial_seq: 0,
            initial_ts: 0,
        }
    }

    #[test]
    fn relay_renumbers_and_transcodes() {
        let ulaw = media(Codec::Pcmu, 0, Some(101));
        let alaw = media(Codec::Pcma, 8, Some(96));
        let mut pkt = vec![0x80, 0x80, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        let silence_u = crate::media::g711::linear_to_ulaw(0);
        pkt.extend(std::iter::repeat_n(silence_u, 160));
        let mut out = [0u8; 1500];
        let n = rewrite(&ulaw, &alaw, &pkt, &mut out).unwrap();
        assert_eq!(n, pkt.len());
        assert_eq!(out[1], 0x80 | 8, "marker kept, PT renumbered");
        assert!(
            out[12..n]
                .iter()
                .all(|&b| b == crate::media::g711::linear_to_alaw(0))
        );
        // A key event: renumbered to the other side's telephone-event type.
        let mut ev = vec![0x80, 101, 0, 2, 0, 0, 0, 160, 0, 0, 0, 9, 5, 0x8a, 0, 160];
        let n = rewrite(&ulaw, &alaw, &ev, &mut out).unwrap();
        assert_eq!(out[1], 96);
        assert_eq!(&out[12..n], &ev[12..]);
        // No telephone-event on the other side: not relayed as RTP.
        let plain = media(Codec::Pcmu, 0, None);
        assert_eq!(rewrite(&ulaw, &plain, &ev, &mut out), None);
        // Garbage is dropped, never a panic.
        ev.truncate(5);
        assert_eq!(rewrite(&ulaw, &alaw, &ev, &mut out), None);
        assert_eq!(
            rewrite(
                &ulaw,
                &alaw,
                &[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                &mut out
            ),
            None
        );
    }

    /// The one RTP view: a header extension and padding pass through untouched; only the
    /// payload is transcoded (the relay used to count the CSRCs only and transcode the
    /// extension and the padding as audio).
    #[test]
    fn relay_transcodes_the_payload_only() {
        let ulaw = media(Codec::Pcmu, 0, Some(101));
        let alaw = media(Codec::Pcma, 8, Some(96));
        // V=2, P=1, X=1, CC=0; extension: profile 0xBEDE, 1 word; 4 payload bytes; 2 padding.
        let mut pkt = vec![0xb0, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9];
        pkt.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x11, 0x22, 0x33, 0x44]);
        let silence_u = crate::media::g711::linear_to_ulaw(0);
        pkt.extend(std::iter::repeat_n(silence_u, 4));
        pkt.extend_from_slice(&[0x00, 0x02]);
        let mut out = [0u8; 1500];
        let n = rewrite(&ulaw, &alaw, &pkt, &mut out).unwrap();
        assert_eq!(n, pkt.len());
        assert_eq!(out[1] & 0x7f, 8);
        assert_eq!(&out[12..20], &pkt[12..20], "extension untouched");
        let a = crate::media::g711::linear_to_alaw(0);
        assert_eq!(&out[20..24], &[a; 4], "payload transcoded");
        assert_eq!(&out[24..26], &[0x00, 0x02], "padding untouched");
    }

    #[test]
    fn targets_with_an_address_are_dialled_directly() {
        assert_eq!(
            literal_dest("sip:agent@127.0.0.1:5070"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(literal_dest("sip:sales@pbx.shop.example"), None);
        assert_eq!(literal_dest("not a uri"), None);
    }
}
