//! UAC side of the user agent: client transactions (RFC 3261 §17.1) and the requests we
//! originate inside a dialog (BYE).

use std::net::SocketAddr;
use std::time::Instant;

use super::*;

impl UserAgent {
    pub(super) fn handle_response(&mut self, now: Instant, source: SocketAddr, resp: Response) {
        if let Err(why) = validate_response(&resp) {
            self.stats.responses_dropped += 1;
            tracing::debug!(%source, %why, "dropped invalid response");
            return;
        }
        let branch = resp
            .headers
            .get("Via")
            .and_then(|v| parse_via(v).ok())
            .and_then(|v| v.branch().map(str::to_owned));
        let Some(branch) = branch else {
            self.stats.responses_dropped += 1;
            return;
        };
        let Some(tx) = self.clients.get_mut(&branch) else {
            self.stats.responses_dropped += 1;
            tracing::debug!(%source, status = resp.status, "response matches no transaction");
            return;
        };
        if resp.status < 200 || tx.state == ClientState::Completed {
            // Provisional: Timer E continues at T2 (§17.1.2.2); late finals are absorbed.
            return;
        }
        tx.state = ClientState::Completed;
        tx.retransmit_at = None;
        tx.timeout_at = None;
        let at = now + self.cfg.timers.t4;
        tx.expire_at = Some(at);
        let (call, method) = (tx.call, tx.method.clone());
        self.schedule(at, TimerRef::Client(branch));
        if let (Some(call), Method::Bye) = (call, method) {
            self.end_leg(call, EndReason::LocalBye);
        }
    }

    // ───────────────────────────── input: commands from the TU ─────────────────────────────

    /// The robot ends the call: BYE when answered, 480 before that.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) {
        let Some(state) = self.legs.get(&call).map(|l| l.state) else {
            return;
        };
        match state {
            LegState::Early => {
                self.reject(now, call, 480, "Temporarily Unavailable", &[]);
            }
            // §15: the callee may send BYE once the 2xx is sent, ACK or not.
            LegState::Answered | LegState::Confirmed => self.send_bye(now, call),
            LegState::Terminating => {}
        }
    }

    pub(super) fn send_bye(&mut self, now: Instant, call: CallHandle) {
        let branch = format!("{MAGIC_COOKIE}{}", self.random_token(10));
        let via = format!("SIP/2.0/UDP {};branch={branch};rport", self.cfg.host_port());
        let ua = self.cfg.user_agent.clone();
        let Some(leg) = self.legs.get_mut(&call) else {
            return;
        };
        leg.state = LegState::Terminating;
        leg.ok_bytes = None;
        leg.ok_retransmit_at = None;
        leg.ok_give_up_at = None;
        leg.local_cseq += 1;
        let mut req = Request {
            method: Method::Bye,
            uri: leg.remote_target.clone(),
            version: "SIP/2.0".to_owned(),
            headers: Default::default(),
            body: Vec::new(),
        };
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push("From", leg.local_party.clone());
        req.headers.push("To", leg.remote_party.clone());
        req.headers.push("Call-ID", leg.call_id.clone());
        req.headers.push("CSeq", format!("{} BYE", leg.local_cseq));
        for r in &leg.route_set {
            req.headers.push("Route", r.clone());
        }
        req.headers.push("User-Agent", ua);
        let dest = leg.peer;
        let bytes = req.to_bytes();
        self.send(dest, bytes.clone());
        let t1 = self.cfg.timers.t1;
        let (retransmit_at, timeout_at) = (now + t1, now + 64 * t1);
        self.clients.insert(
            branch.clone(),
            ClientTxn {
                call: Some(call),
                method: Method::Bye,
                dest,
                request: bytes,
                state: ClientState::Trying,
                retransmit_at: Some(retransmit_at),
                interval: t1,
                timeout_at: Some(timeout_at),
                expire_at: None,
            },
        );
        self.schedule(retransmit_at, TimerRef::Client(branch.clone()));
        self.schedule(timeout_at, TimerRef::Client(branch));
    }

    pub(super) fn client_timer(&mut self, now: Instant, branch: String) {
        let t2 = self.cfg.timers.t2;
        let Some(tx) = self.clients.get_mut(&branch) else {
            return;
        };
        if tx.expire_at.is_some_and(|t| t <= now) {
            self.clients.remove(&branch);
            return;
        }
        if tx.timeout_at.is_some_and(|t| t <= now) {
            // Timer F: no final response. For BYE the call is over anyway (§15.1.1).
            let (call, method) = (tx.call, tx.method.clone());
            self.clients.remove(&branch);
            tracing::info!(?method, "request timed out (Timer F)");
            if let (Some(call), Method::Bye) = (call, method) {
                self.end_leg(call, EndReason::LocalBye);
            }
            return;
        }
        if let Some(at) = tx.retransmit_at
            && at <= now
        {
            tx.interval = (tx.interval * 2).min(t2);
            let next = now + tx.interval;
            tx.retransmit_at = Some(next);
            let (dest, bytes) = (tx.dest, tx.request.clone());
            self.send(dest, bytes);
            self.schedule(next, TimerRef::Client(branch));
        }
    }
}
