//! Test harness: media ports played by a test type, so the engine's tests can keep their
//! shape (`handle_sip_with(…, &mut ports)`). The engine itself asks for ports through its
//! output queue; [`Engine::pump`] answers those requests at once and hands RTP to the test.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Engine, EngineOutput};
use crate::sip::ua::CallHandle;

/// What a test plays for the media side.
pub(crate) trait MediaPorts {
    fn open(&mut self, call: CallHandle) -> std::io::Result<u16>;
    fn close(&mut self, _call: CallHandle) {}
    /// An RTP packet the engine sent outside a [`Engine::tick_with`].
    fn relay(&mut self, _via: CallHandle, _dest: SocketAddr, _packet: &[u8]) {}
}

impl Engine {
    /// Serve the queued media requests and RTP; SIP and events stay queued (in order) for
    /// `poll_transmit` / `poll_event`.
    pub(crate) fn pump(&mut self, now: Instant, ports: &mut dyn MediaPorts) {
        self.flush_ua();
        loop {
            let Some(i) = self.outputs.iter().position(|o| {
                matches!(
                    o,
                    EngineOutput::OpenMedia { .. }
                        | EngineOutput::CloseMedia { .. }
                        | EngineOutput::Rtp { .. }
                )
            }) else {
                return;
            };
            match self.outputs.remove(i) {
                Some(EngineOutput::OpenMedia { call }) => match ports.open(call) {
                    Ok(port) => self.handle_media_opened(now, call, port),
                    Err(e) => self.handle_media_failed(now, call, &e.to_string()),
                },
                Some(EngineOutput::CloseMedia { call }) => ports.close(call),
                Some(EngineOutput::Rtp {
                    call,
                    dest,
                    off,
                    len,
                }) => {
                    let p = self.rtp_payload(off, len).to_vec();
                    ports.relay(call, dest, &p);
                }
                _ => {}
            }
            self.flush_ua();
        }
    }

    /// A SIP datagram, with inbound calls' 200 OKs taken as sent at once (a runtime
    /// without a store to wait for): their greetings start.
    pub(crate) fn handle_sip_with(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        ports: &mut dyn MediaPorts,
    ) {
        self.handle_sip_holding_answers(now, source, datagram, ports);
        let answered: Vec<CallHandle> = self
            .outputs
            .iter()
            .filter_map(|o| match o {
                EngineOutput::Event(super::EngineEvent::CallAnswered { call, .. }) => Some(*call),
                _ => None,
            })
            .collect();
        for call in answered {
            if self.calls.get(&call).is_some_and(|c| c.answer_in_flight) {
                self.release_answer_with(now, call, ports);
            }
        }
    }

    /// A SIP datagram; answered inbound calls wait for [`Engine::release_answer`].
    pub(crate) fn handle_sip_holding_answers(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        ports: &mut dyn MediaPorts,
    ) {
        self.handle_sip(now, source, datagram);
        self.pump(now, ports);
    }

    /// RTP for `call` from the address its SDP named (the caller's own packets).
    pub(crate) fn handle_rtp_with(
        &mut self,
        now: Instant,
        call: CallHandle,
        packet: &[u8],
        ports: &mut dyn MediaPorts,
    ) {
        let source = self
            .calls
            .get(&call)
            .map(|c| c.remote_rtp)
            .or_else(|| self.agents.get(&call).and_then(|a| a.media.map(|m| m.1)))
            .unwrap_or_else(|| "192.0.2.1:9".parse().unwrap());
        self.handle_rtp_from_with(now, call, source, packet, ports);
    }

    pub(crate) fn handle_rtp_from_with(
        &mut self,
        now: Instant,
        call: CallHandle,
        source: SocketAddr,
        packet: &[u8],
        ports: &mut dyn MediaPorts,
    ) {
        self.handle_rtp(now, call, source, packet);
        self.pump(now, ports);
    }

    pub(crate) fn handle_timeout_with(&mut self, now: Instant, ports: &mut dyn MediaPorts) {
        self.handle_timeout(now);
        self.pump(now, ports);
    }

    pub(crate) fn handle_recognition_with(
        &mut self,
        now: Instant,
        call: CallHandle,
        id: u64,
        result: Result<crate::asr::Transcript, String>,
        ports: &mut dyn MediaPorts,
    ) {
        self.handle_recognition(now, call, id, result);
        self.pump(now, ports);
    }

    pub(crate) fn place_call_with(
        &mut self,
        now: Instant,
        out: super::OutboundCall,
        ports: &mut dyn MediaPorts,
    ) -> Result<CallHandle, super::PlaceError> {
        let r = self.place_call(now, out);
        self.pump(now, ports);
        r
    }

    pub(crate) fn release_answer_with(
        &mut self,
        now: Instant,
        call: CallHandle,
        ports: &mut dyn MediaPorts,
    ) {
        self.release_answer(now, call);
        self.pump(now, ports);
    }

    /// The pacing tick, its packets handed to `send` (as the old callback did).
    pub(crate) fn tick_with(
        &mut self,
        now: Instant,
        send: &mut dyn FnMut(CallHandle, SocketAddr, &[u8]),
    ) {
        self.tick(now);
        self.flush_ua();
        let mut keep = std::collections::VecDeque::new();
        while let Some(o) = self.outputs.pop_front() {
            match o {
                EngineOutput::Rtp {
                    call,
                    dest,
                    off,
                    len,
                } => send(call, dest, self.rtp_payload(off, len)),
                other => keep.push_back(other),
            }
        }
        self.outputs = keep;
    }
}
