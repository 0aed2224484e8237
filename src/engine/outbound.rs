//! Outbound calls: placed through a trunk (a media port first, then the INVITE), answered
//! (the callee's SDP negotiated and the scenario started) or failed before an answer.

use super::*;

impl Engine {
    /// Place an outbound call: ask for its media port; once it is open
    /// ([`Engine::handle_media_opened`]) the INVITE goes out with our SDP offer, and
    /// [`EngineEvent::CallStarted`] with it. Then [`EngineEvent::CallAnswered`] and the
    /// scenario, or [`EngineEvent::CallFailed`] with the SIP status and disposition.
    pub fn place_call(
        &mut self,
        _now: Instant,
        out: OutboundCall,
    ) -> Result<CallHandle, PlaceError> {
        if self.live_calls() >= self.cfg.max_calls {
            return Err(PlaceError::AtCapacity(self.live_calls()));
        }
        let scenario = self
            .scenarios
            .get(&out.scenario)
            .cloned()
            .ok_or_else(|| PlaceError::UnknownScenario(out.scenario.clone()))?;
        let call = self.ua.reserve_call();
        self.awaiting_media
            .insert(call, MediaWait::Outbound(Box::new((out, scenario))));
        self.open_media(call);
        Ok(call)
    }

    /// The INVITE of an outbound call whose media port is open.
    pub(super) fn send_outbound(
        &mut self,
        now: Instant,
        call: CallHandle,
        out: OutboundCall,
        scenario: Arc<Scenario>,
        port: u16,
    ) {
        let local = self.local_media(port);
        let mut invite = out.invite;
        invite.sdp_offer = self.secure_offer(call, invite.dest, &local, &out.codecs);
        self.ua.invite_as(now, call, invite);
        let sip_call_id = self.ua.call_id(call).unwrap_or("").to_owned();
        let mut variables = out.variables;
        variables.extend(party_variables(
            CallDirection::Outbound,
            &out.from,
            &out.to,
            true,
        ));
        let origin = Box::new(CallOrigin {
            sip_call_id: sip_call_id.clone(),
            call_ref: Some(out.call_ref),
            scenario: out.scenario,
            direction: "outbound",
            from: out.from,
            to: out.to,
            variables,
        });
        tracing::info!(call_id = %sip_call_id, to = %Pii(&origin.to), scenario = %origin.scenario, "placing outbound call");
        let origin_ref = origin.call_ref.clone();
        let at = self.wall(now);
        self.emit(EngineEvent::CallStarted {
            call,
            origin: origin.clone(),
            at,
        });
        let ring_deadline = now + out.ring_timeout;
        self.call_timers.push(Reverse((ring_deadline, call)));
        self.pending.insert(
            call,
            PendingCall {
                origin,
                scenario,
                port,
                ring_deadline,
                cancelled_on_timeout: false,
                cancelled_for_shutdown: false,
                early_sdp: None,
                span: call_span(&sip_call_id, origin_ref.as_deref()),
            },
        );
    }

    /// The callee answered an outbound call: negotiate its SDP answer and start the
    /// scenario. An unusable answer ends the call (BYE) as failed.
    pub(super) fn outbound_answered(
        &mut self,
        now: Instant,
        call: CallHandle,
        sdp_answer: Vec<u8>,
    ) {
        let Some(p) = self.pending.remove(&call) else {
            return;
        };
        let body = if sdp_answer.is_empty() {
            p.early_sdp.clone().unwrap_or_default()
        } else {
            sdp_answer
        };
        let call_id = p.origin.sip_call_id.clone();
        let srtp_policy = self.answer_policy(call);
        let neg = sdp::negotiate_with(&body, srtp_policy).and_then(|n| {
            sdp::check_rtp_destination(n.remote_rtp.ip())
                .map(|()| n)
                .map_err(|why| sdp::SdpError::Unusable(why.to_owned()))
        });
        let secured = match &neg {
            Ok(n) => self
                .secure_answered(call, n)
                .map_err(sdp::SdpError::Unusable),
            Err(_) => {
                self.forget_offer(call);
                Ok(None)
            }
        };
        let (neg, srtp) = match neg.and_then(|n| secured.map(|s| (n, s))) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(%call_id, error = %e, "unusable SDP answer; hanging up");
                self.ua.hangup(now, call);
                self.close_media(call);
                self.emit(EngineEvent::CallFailed {
                    call,
                    origin: p.origin,
                    reason: FailReason::Error,
                    sip_code: None,
                    detail: format!("unusable SDP answer: {e}"),
                    at: self.wall(now),
                });
                return;
            }
        };
        let media = self.media_params(&neg);
        let link = self.new_link(now, &neg, srtp, media.ssrc);
        let core = CallCore::new(
            p.scenario,
            p.origin.variables.clone(),
            self.prompts.clone(),
            media,
            now,
        );
        self.emit(EngineEvent::CallAnswered {
            call,
            sip_call_id: call_id.clone(),
            at: self.wall(now),
        });
        tracing::info!(%call_id, scenario = %p.origin.scenario, codec = ?neg.codec, remote_rtp = %neg.remote_rtp, local_port = p.port, "outbound call answered");
        self.calls.insert(
            call,
            LiveCall {
                core,
                sip_call_id: call_id,
                scenario: p.origin.scenario.clone(),
                direction: "outbound",
                remote_rtp: neg.remote_rtp,
                media,
                bridge: None,
                relay_dtmf: media
                    .telephone_event_pt
                    .map(crate::media::dtmf::DtmfReceiver::new),
                latch: crate::media::latch::SourceLatch::new(neg.remote_rtp, self.cfg.strict_rtp),
                started_wall: self.wall(now),
                completed: false,
                gone: false,
                scheduled: None,
                // The callee's 200 OK is in: media may flow at once.
                answer_in_flight: false,
                hard_deadline: now + self.cfg.max_call_duration,
                source: None,
                link,
                span: p.span,
            },
        );
        if let Some(c) = self.calls.get_mut(&call) {
            c.core.start(now);
        }
        self.after_call_activity(now, call);
    }

    /// An outbound call ended before it was answered.
    pub(super) fn outbound_failed(
        &mut self,
        now: Instant,
        call: CallHandle,
        p: PendingCall,
        reason: EndReason,
    ) {
        self.forget_offer(call);
        let status = match reason {
            EndReason::Failed(487) if p.cancelled_on_timeout => None,
            EndReason::Failed(s) | EndReason::Rejected(s) => Some(s),
            _ => None,
        };
        let disposition = Disposition::from_sip(status);
        let fail = match disposition {
            _ if p.cancelled_for_shutdown => FailReason::Shutdown,
            Disposition::Busy => FailReason::Busy,
            Disposition::NoAnswer => FailReason::NoAnswer,
            Disposition::Rejected => FailReason::Rejected,
            Disposition::Failed(_) | Disposition::Answered => FailReason::Error,
        };
        let detail = match status {
            _ if p.cancelled_for_shutdown => "cancelled: ivrflow shut down".to_owned(),
            None => "no answer before the ring timeout".to_owned(),
            Some(s) => format!("SIP {s}"),
        };
        tracing::info!(call_id = %p.origin.sip_call_id, ?status, disposition = disposition.as_str(), "outbound call failed");
        self.emit(EngineEvent::CallFailed {
            call,
            origin: p.origin,
            reason: fail,
            sip_code: status,
            detail,
            at: self.wall(now),
        });
    }
}
