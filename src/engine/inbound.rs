//! Inbound calls: an INVITE checked and routed to a scenario (or refused, with the reason in
//! its `call.failed`), its variables taken from the SIP headers the scenario declares, and
//! the call answered once its media port is open.

use super::*;

impl Engine {
    pub(super) fn incoming_call(
        &mut self,
        now: Instant,
        call: CallHandle,
        invite: &Request,
        source: SocketAddr,
    ) {
        let call_id = invite.headers.get("Call-ID").unwrap_or("").to_owned();
        let dialled = parse_uri(&invite.uri)
            .ok()
            .and_then(|u| u.user)
            .unwrap_or_default();
        // The caller's number: the From user (anyone can type it), or the identity a
        // trusted proxy asserted (RFC 3325) — only that one counts as verified.
        let asserted = crate::sip::acl::any_contains(&self.cfg.trusted, source.ip())
            .then(|| asserted_identity(invite))
            .flatten();
        let verified = asserted.is_some();
        let caller = asserted.unwrap_or_else(|| {
            invite
                .headers
                .get("From")
                .and_then(|f| parse_name_addr(f).ok())
                .and_then(|n| parse_uri(&n.uri).ok())
                .and_then(|u| u.user)
                .unwrap_or_default()
        });
        tracing::info!(%call_id, %source, from = %Pii(&caller), to = %Pii(&dialled), verified, "incoming call");

        let Some(scenario_name) = self.cfg.inbound.route(&dialled).map(str::to_owned) else {
            // Not a number this node answers (a scanner probing, or an outbound-only
            // scenario's name): one stateless answer, no event.
            tracing::info!(%call_id, to = %Pii(&dialled), "no route for the dialled number");
            self.ua.reject_stateless(now, call, 404, "Not Found", &[]);
            return;
        };
        let origin = |variables: BTreeMap<String, String>| {
            Box::new(CallOrigin {
                sip_call_id: call_id.clone(),
                call_ref: None,
                scenario: scenario_name.clone(),
                direction: "inbound",
                from: caller.clone(),
                to: dialled.clone(),
                variables,
            })
        };
        let at = self.wall(now);
        if self.store_failing || self.draining {
            // Fail closed: nothing about this call could be stored, so it is not taken;
            // or the node is going away: the caller should try another.
            let why = if self.draining {
                "the node is shutting down"
            } else {
                "the store cannot commit"
            };
            tracing::warn!(%call_id, why, "refusing call");
            self.ua.reject(
                now,
                call,
                503,
                "Service Unavailable",
                &[("Retry-After", "10".to_owned())],
            );
            return;
        }
        if let Some(limit) = self.cfg.max_calls_per_source
            && !crate::sip::acl::any_contains(&self.cfg.trusted, source.ip())
            && self.calls_from(source.ip()) >= limit
        {
            // One source does not take every slot (and its refusals make no events: a
            // flood would fill the outbox).
            tracing::warn!(%call_id, %source, limit, "too many calls from one source; refusing");
            self.per_source_refused += 1;
            self.ua.reject(
                now,
                call,
                503,
                "Service Unavailable",
                &[("Retry-After", "5".to_owned())],
            );
            return;
        }
        let at_max = self.live_calls() >= self.cfg.max_calls;
        if at_max || self.media_overloaded {
            let detail = if at_max {
                "at capacity (max_calls)"
            } else {
                "at capacity (media pacing overloaded)"
            };
            tracing::warn!(%call_id, live = self.live_calls(), detail, "at capacity; refusing call");
            self.ua.reject(
                now,
                call,
                503,
                "Service Unavailable",
                &[("Retry-After", "5".to_owned())],
            );
            if let Some(scenario) = self.scenarios.get(&scenario_name) {
                let variables =
                    refused_variables(Some(scenario), invite, &caller, &dialled, verified);
                self.emit(EngineEvent::CallFailed {
                    call,
                    origin: origin(variables),
                    reason: FailReason::Rejected,
                    sip_code: Some(503),
                    detail: detail.to_owned(),
                    at,
                });
            }
            return;
        }
        let Some(scenario) = self.scenarios.get(&scenario_name).cloned() else {
            tracing::info!(%call_id, to = %Pii(&dialled), "no scenario for the dialled number");
            self.ua.reject_stateless(now, call, 404, "Not Found", &[]);
            return;
        };
        let variables = match sip_variables(&scenario, invite, &caller, &dialled, verified) {
            Ok(v) => v,
            Err(why) => {
                tracing::info!(%call_id, %why, "a header the scenario reads is unusable; refusing the call");
                let warning = format!("399 ivrflow \"{}\"", why.replace('"', "'"));
                self.ua
                    .reject_stateless(now, call, 400, "Bad Request", &[("Warning", warning)]);
                return;
            }
        };
        let srtp = self.inbound_srtp(source);
        let neg = match sdp::negotiate_with(&invite.body, srtp).and_then(|n| {
            sdp::check_rtp_destination(n.remote_rtp.ip())
                .map(|()| n)
                .map_err(|why| sdp::SdpError::Unusable(why.to_owned()))
        }) {
            Ok(n) => n,
            Err(e) => {
                tracing::info!(%call_id, error = %e, "unusable SDP offer");
                let warning = format!("305 ivrflow \"{}\"", e.to_string().replace('"', "'"));
                self.ua.reject(
                    now,
                    call,
                    488,
                    "Not Acceptable Here",
                    &[("Warning", warning)],
                );
                self.emit(EngineEvent::CallFailed {
                    call,
                    origin: origin(variables.clone()),
                    reason: FailReason::Rejected,
                    sip_code: Some(488),
                    detail: format!("unusable SDP offer: {e}"),
                    at,
                });
                return;
            }
        };
        let origin = origin(variables);
        self.awaiting_media.insert(
            call,
            MediaWait::Inbound(Box::new(InboundSetup {
                source: source.ip(),
                scenario,
                neg,
                origin,
            })),
        );
        self.open_media(call);
    }

    /// An accepted inbound call whose media port is open: 200 OK with our SDP, and the
    /// scenario starts. The greeting waits for [`Engine::release_answer`] (the owner holds
    /// the 200 OK until the call's events are stored).
    pub(super) fn answer_inbound(
        &mut self,
        now: Instant,
        call: CallHandle,
        setup: InboundSetup,
        port: u16,
    ) {
        let InboundSetup {
            source,
            scenario,
            neg,
            origin,
        } = setup;
        let at = self.wall(now);
        let call_id = origin.sip_call_id.clone();
        let scenario_name = origin.scenario.clone();
        let variables = origin.variables.clone();
        self.emit(EngineEvent::CallStarted { call, origin, at });
        let local = self.local_media(port);
        let mut neg = neg;
        let srtp = self.secure_answer(&mut neg);
        let answer = sdp::answer(&neg, &local);
        let media = self.media_params(&neg);
        let link = self.new_link(now, &neg, srtp, media.ssrc);
        let core = CallCore::new(scenario, variables, self.prompts.clone(), media, now);
        self.ua.ring(now, call);
        self.ua.answer(now, call, &answer);
        self.emit(EngineEvent::CallAnswered {
            call,
            sip_call_id: call_id.clone(),
            at,
        });
        let span = call_span(&call_id, None);
        span.in_scope(|| tracing::info!(%call_id, scenario = %scenario_name, codec = ?neg.codec, remote_rtp = %neg.remote_rtp, srtp = link.is_secure(), "answered"));
        self.calls.insert(
            call,
            LiveCall {
                core,
                sip_call_id: call_id,
                scenario: scenario_name,
                direction: "inbound",
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
                answer_in_flight: true,
                hard_deadline: now + self.cfg.max_call_duration,
                source: Some(source),
                link,
                span,
            },
        );
        if let Some(c) = self.calls.get_mut(&call) {
            c.core.start_inbound(now);
        }
        self.after_call_activity(now, call);
    }
}

/// An inbound call's starting variables: the built-ins (`caller`, `dialled`, `customer`,
/// `direction`), and each variable the scenario lets the caller's INVITE set
/// (`from: sip_header X-Order-Id`), checked against its declared type and `max_length`. Every other header is ignored: a caller does not
/// choose where the robot calls or what it tells the CRM (issue 12). `Err` says which
/// header is wrong and why (the call is refused with 400).
pub fn sip_variables(
    scenario: &Scenario,
    invite: &Request,
    caller: &str,
    dialled: &str,
    verified: bool,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for var in scenario.variables.values() {
        let Some(header) = var.sip_header.as_deref() else {
            continue;
        };
        let mut lines = invite.headers.lines(header);
        let Some(value) = lines.next() else {
            continue;
        };
        if lines.next().is_some() {
            return Err(format!("{header} appears more than once"));
        }
        let value = value.trim();
        if value.len() > var.max_length {
            return Err(format!(
                "{header} is longer than {} characters",
                var.max_length
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(format!("{header} holds control characters"));
        }
        var.ty
            .check(value)
            .map_err(|e| format!("{header}: {e} (a {} value)", var.ty.name()))?;
        vars.insert(var.name.clone(), value.to_owned());
    }
    vars.extend(party_variables(
        CallDirection::Inbound,
        caller,
        dialled,
        verified,
    ));
    Ok(vars)
}

/// [`sip_variables`] for a call refused before it starts: what can be read, no more.
fn refused_variables(
    scenario: Option<&Arc<Scenario>>,
    invite: &Request,
    caller: &str,
    dialled: &str,
    verified: bool,
) -> BTreeMap<String, String> {
    scenario
        .and_then(|s| sip_variables(s, invite, caller, dialled, verified).ok())
        .unwrap_or_else(|| party_variables(CallDirection::Inbound, caller, dialled, verified))
}

/// The number in an INVITE's `P-Asserted-Identity` (RFC 3325): the user part of the first
/// `sip:`/`sips:` URI, or the number of a `tel:` URI. Only meaningful from a trusted source.
pub fn asserted_identity(invite: &Request) -> Option<String> {
    let value = invite.headers.get("P-Asserted-Identity")?;
    value.split(',').find_map(|one| {
        let uri = parse_name_addr(one.trim()).ok()?.uri;
        let number = match uri.get(..4) {
            Some(scheme) if scheme.eq_ignore_ascii_case("tel:") => {
                uri[4..].split(';').next().unwrap_or("").to_owned()
            }
            _ => parse_uri(&uri).ok()?.user?,
        };
        let ok = !number.is_empty()
            && number.len() <= 64
            && number
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.()*#".contains(c));
        ok.then_some(number)
    })
}
