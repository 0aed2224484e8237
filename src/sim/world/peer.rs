//! Scripted SIP peers of the simulated world: callers who dial the node, and the trunk's
//! callees who answer (or not) the node's outbound calls. Each peer is a real
//! [`UserAgent`] (so retransmissions, ACKs and BYE transactions behave as on a wire) plus
//! a small script: press a key, hang up, stay silent; or, for a hostile caller, an INVITE
//! written by hand that is never ACKed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::net::Network;
use crate::sip::sdp::{self, LocalMedia, Origin};
use crate::sip::ua::{CallHandle, OutboundInvite, TimerValues, UaConfig, UaEvent, UserAgent};

/// What a caller does once the robot answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// Presses `key` this long after the answer (and then waits for the robot).
    Presses(char, Duration),
    /// Hangs up this long after the answer.
    HangsUp(Duration),
    /// Says nothing; the robot's no-input handling ends the call.
    Silent,
    /// Sends an INVITE and never ACKs anything (the robot's 200 OK goes unanswered).
    NeverAcks,
}

/// What the trunk's callee does with the node's INVITE.
#[derive(Debug, Clone, PartialEq)]
pub enum Callee {
    /// Answers after `ring`, then behaves like a caller.
    Answers {
        ring: Duration,
        then: Caller,
    },
    Busy,
    /// Rings until the node gives up (CANCEL).
    NoAnswer,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    Caller(Caller),
    Callee(Callee),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Act {
    Key(char),
    HangUp,
    Answer,
}

pub struct Peer {
    pub sip: SocketAddr,
    pub rtp: SocketAddr,
    pub role: Role,
    ua: UserAgent,
    call: Option<CallHandle>,
    /// The SIP Call-ID of its call, once known.
    pub call_id: Option<String>,
    /// Where the node wants RTP for this call.
    remote_rtp: Option<SocketAddr>,
    /// The node's offer, for the answer (callee).
    offer: Option<Vec<u8>>,
    acts: Vec<(Instant, Act)>,
    seq: u16,
    ts: u32,
    /// The call ended (in SIP terms).
    pub ended: bool,
    /// INVITEs received (callee), by Call-ID.
    pub invites: Vec<(Instant, String)>,
}

fn ua_config(sip: SocketAddr) -> UaConfig {
    UaConfig {
        local_addr: sip,
        advertised: None,
        user_agent: "sim-peer".into(),
        timers: TimerValues::default(),
    }
}

impl Peer {
    pub fn new(sip: SocketAddr, rtp: SocketAddr, role: Role, seed: u64) -> Peer {
        Peer {
            sip,
            rtp,
            role,
            ua: UserAgent::new(ua_config(sip), seed),
            call: None,
            call_id: None,
            remote_rtp: None,
            offer: None,
            acts: Vec::new(),
            seq: 1,
            ts: 0,
            ended: false,
            invites: Vec::new(),
        }
    }

    fn local(&self) -> LocalMedia {
        LocalMedia {
            addr: self.rtp,
            origin: Origin {
                session_id: u64::from(self.rtp.port()),
                version: 1,
            },
        }
    }

    /// A caller dials `user` at the node's `node` address.
    pub fn dial(&mut self, now: Instant, node: SocketAddr, user: &str, net: &mut Network) {
        if self.role == Role::Caller(Caller::NeverAcks) {
            let call_id = format!("noack-{}@sim", self.sip.ip());
            let sdp = sdp::offer(&self.local());
            let msg = format!(
                "INVITE sip:{user}@{node} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{tag}\r\nMax-Forwards: 70\r\nFrom: <sip:+1555{port}@{me}>;tag=x{port}\r\nTo: <sip:{user}@{node}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:c@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len(),
                me = self.sip,
                port = self.sip.port(),
                tag = self.sip.ip().to_string().replace('.', ""),
            );
            self.call_id = Some(call_id);
            net.send(now, self.sip, node, msg.into_bytes());
            return;
        }
        let call = self.ua.invite(
            now,
            OutboundInvite {
                target: format!("sip:{user}@{node}"),
                dest: node,
                from_uri: format!("sip:+1555{}@{}", self.sip.port(), self.sip),
                from_display: None,
                sdp_offer: sdp::offer(&self.local()),
                headers: Vec::new(),
                credentials: None,
            },
        );
        self.call_id = self.ua.call_id(call).map(str::to_owned);
        self.call = Some(call);
        self.flush(net, now);
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        net: &mut Network,
    ) {
        if self.role == Role::Caller(Caller::NeverAcks) {
            return;
        }
        self.ua.handle_datagram(now, from, data);
        self.events(now);
        self.flush(net, now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let a = self.acts.iter().map(|(t, _)| *t).min();
        [self.ua.poll_timeout(), a].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant, net: &mut Network) {
        self.ua.handle_timeout(now);
        self.events(now);
        let due: Vec<Act> = self
            .acts
            .iter()
            .filter(|(t, _)| *t <= now)
            .map(|(_, a)| *a)
            .collect();
        self.acts.retain(|(t, _)| *t > now);
        for act in due {
            match act {
                Act::Key(k) => self.send_key(now, k, net),
                Act::HangUp => {
                    if let Some(c) = self.call
                        && !self.ended
                    {
                        self.ua.hangup(now, c);
                    }
                }
                Act::Answer => {
                    if let (Some(c), Some(offer)) = (self.call, self.offer.clone())
                        && let Ok(neg) = sdp::negotiate(&offer)
                    {
                        self.remote_rtp = Some(neg.remote_rtp);
                        let answer = sdp::answer(&neg, &self.local());
                        self.ua.answer(now, c, &answer);
                        if let Role::Callee(Callee::Answers { then, .. }) = self.role.clone() {
                            self.script(now, &then);
                        }
                    }
                }
            }
        }
        self.events(now);
        self.flush(net, now);
    }

    fn script(&mut self, now: Instant, c: &Caller) {
        match c {
            Caller::Presses(k, after) => self.acts.push((now + *after, Act::Key(*k))),
            Caller::HangsUp(after) => self.acts.push((now + *after, Act::HangUp)),
            Caller::Silent | Caller::NeverAcks => {}
        }
    }

    fn events(&mut self, now: Instant) {
        while let Some(ev) = self.ua.poll_event() {
            match ev {
                UaEvent::IncomingCall { call, request, .. } => {
                    let call_id = request.headers.get("Call-ID").unwrap_or("").to_owned();
                    self.invites.push((now, call_id.clone()));
                    if self.call.is_some() && !self.ended {
                        // One call at a time per number: a second one is the dialer's bug
                        // (the world counts INVITEs against attempts).
                        self.ua.reject(now, call, 486, "Busy Here", &[]);
                        continue;
                    }
                    self.ended = false;
                    self.call = Some(call);
                    self.call_id = Some(call_id);
                    self.offer = Some(request.body.clone());
                    match self.role.clone() {
                        Role::Callee(Callee::Busy) => {
                            self.ua.reject(now, call, 486, "Busy Here", &[]);
                        }
                        Role::Callee(Callee::NoAnswer) => self.ua.ring(now, call),
                        Role::Callee(Callee::Answers { ring, .. }) => {
                            self.ua.ring(now, call);
                            self.acts.push((now + ring, Act::Answer));
                        }
                        Role::Caller(_) => self.ua.reject(now, call, 486, "Busy Here", &[]),
                    }
                }
                UaEvent::Answered { sdp, .. } => {
                    if let Ok(neg) = sdp::negotiate(&sdp) {
                        self.remote_rtp = Some(neg.remote_rtp);
                    }
                    if let Role::Caller(c) = self.role.clone() {
                        self.script(now, &c);
                    }
                }
                UaEvent::Ended { .. } => {
                    self.ended = true;
                    self.acts.clear();
                }
                _ => {}
            }
        }
    }

    fn flush(&mut self, net: &mut Network, now: Instant) {
        while let Some(t) = self.ua.poll_transmit() {
            net.send(now, self.sip, t.dest, t.payload);
        }
    }

    /// A key as RFC 4733 events: three updates and three copies of the end (all at `now`:
    /// the robot acts on the first).
    fn send_key(&mut self, now: Instant, key: char, net: &mut Network) {
        let Some(dest) = self.remote_rtp else { return };
        let digit = match key {
            '0'..='9' => key as u8 - b'0',
            '*' => 10,
            '#' => 11,
            _ => return,
        };
        for i in 0..6u16 {
            let end = i >= 3;
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            p.extend_from_slice(&self.seq.to_be_bytes());
            p.extend_from_slice(&self.ts.to_be_bytes());
            p.extend_from_slice(&0x5157_0001u32.to_be_bytes());
            p.extend_from_slice(&[digit, if end { 0x80 | 10 } else { 10 }]);
            p.extend_from_slice(&(160 * (i.min(3) + 1)).to_be_bytes());
            self.seq = self.seq.wrapping_add(1);
            net.send(now, self.rtp, dest, p);
        }
        self.ts = self.ts.wrapping_add(640);
    }
}
