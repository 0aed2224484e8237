//! Trunk registration (RFC 3261 §10) and OPTIONS keep-alives.
//!
//! ```text
//!  register() ──REGISTER──▶ Pending ──2xx──▶ Registered ──(85 % of the granted expiry)──▶ Pending
//!                            │ 401/407: answer the digest challenge (once; again if stale)
//!                            │ 423: retry with Min-Expires
//!                            └ other / timeout ──▶ Failed ──(backoff 30 s … 10 min)──▶ Pending
//! ```
//! One Call-ID per registration, CSeq increasing across refreshes (§10.2.4). The registrar
//! may shorten the expiry; the granted value comes from our Contact's `expires` parameter or
//! the Expires header. Failures are reported with when the next try happens.
//!
//! Not here: multiple contacts per AOR, GRUU, outbound flows (RFC 5626).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::client::Purpose;
use super::*;
use crate::sip::digest::{self, Challenge, Credentials};
use crate::sip::transport::Transport;

/// A registration to keep alive.
#[derive(Debug, Clone)]
pub struct RegisterParams {
    /// Request-URI, e.g. `sip:trunk.example.com`.
    pub registrar: String,
    /// Where REGISTER is sent.
    pub dest: SocketAddr,
    /// Address of record: To and From, e.g. `sip:shop@trunk.example.com`.
    pub aor: String,
    /// User part of our Contact.
    pub contact_user: String,
    /// Requested expiry.
    pub expires: Duration,
    /// Digest credentials (user, password).
    pub credentials: Option<(String, String)>,
}

/// Handle of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegId(pub u64);

#[derive(Debug)]
pub(super) struct Registration {
    params: RegisterParams,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: Duration,
    auth_attempts: u8,
    /// Next REGISTER (refresh or retry after failure).
    next_at: Option<Instant>,
    backoff: Duration,
    active: bool,
}

const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(600);

impl UserAgent {
    /// Register with a trunk and keep the registration fresh until [`UserAgent::unregister`].
    pub fn register(&mut self, now: Instant, params: RegisterParams) -> RegId {
        let id = RegId(self.next_call);
        self.next_call += 1;
        let reg = Registration {
            call_id: format!("{}@ivrflow", self.random_token(12)),
            from_tag: self.random_token(8),
            cseq: 0,
            expires: params.expires,
            auth_attempts: 0,
            next_at: None,
            backoff: FIRST_BACKOFF,
            active: true,
            params,
        };
        self.registrations.insert(id, reg);
        self.send_register(now, id, None);
        id
    }

    /// Remove the binding (REGISTER with Expires: 0) and stop refreshing.
    pub fn unregister(&mut self, now: Instant, id: RegId) {
        if let Some(reg) = self.registrations.get_mut(&id) {
            reg.active = false;
            reg.expires = Duration::ZERO;
            reg.next_at = None;
        }
        self.send_register(now, id, None);
    }

    fn send_register(
        &mut self,
        now: Instant,
        id: RegId,
        authorization: Option<(&'static str, String)>,
    ) {
        let branch = format!("{MAGIC_COOKIE}{}", self.random_token(10));
        let Some(dest) = self.registrations.get(&id).map(|r| r.params.dest) else {
            return;
        };
        let via = self.via_value(&branch, dest);
        let transport = self.transport_to(dest);
        let host_port = self.host_port_for(transport);
        let contact_params = match transport {
            Transport::Udp => String::new(),
            t => format!(";transport={}", t.param()),
        };
        let ua = self.cfg.user_agent.clone();
        let Some(reg) = self.registrations.get_mut(&id) else {
            return;
        };
        reg.cseq += 1;
        let p = &reg.params;
        let mut req = Request {
            method: Method::Register,
            uri: p.registrar.clone(),
            version: "SIP/2.0".to_owned(),
            headers: Default::default(),
            body: Vec::new(),
        };
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers
            .push("From", format!("<{}>;tag={}", p.aor, reg.from_tag));
        req.headers.push("To", format!("<{}>", p.aor));
        req.headers.push("Call-ID", reg.call_id.clone());
        req.headers.push("CSeq", format!("{} REGISTER", reg.cseq));
        req.headers.push(
            "Contact",
            format!("<sip:{}@{host_port}{contact_params}>", p.contact_user),
        );
        req.headers
            .push("Expires", reg.expires.as_secs().to_string());
        req.headers.push("Allow", ALLOW);
        req.headers.push("User-Agent", ua);
        if let Some((name, value)) = authorization {
            req.headers.push(name, value);
        }
        let dest = p.dest;
        self.start_client(now, dest, req, branch, Purpose::Register(id));
    }

    pub(super) fn register_final(
        &mut self,
        now: Instant,
        id: RegId,
        req: &Request,
        resp: Option<&Response>,
    ) {
        let Some(reg) = self.registrations.get_mut(&id) else {
            return;
        };
        match resp {
            Some(r) if (200..300).contains(&r.status) => {
                reg.auth_attempts = 0;
                reg.backoff = FIRST_BACKOFF;
                if !reg.active {
                    self.registrations.remove(&id);
                    self.events.push_back(UaEvent::Unregistered { id });
                    return;
                }
                let granted = granted_expiry(r, &reg.params.contact_user).unwrap_or(reg.expires);
                // Refresh at 85 % of the granted time, never sooner than 5 s from now.
                let refresh = now + granted.mul_f64(0.85).max(Duration::from_secs(5));
                reg.next_at = Some(refresh);
                self.schedule(refresh, TimerRef::Register(id));
                self.events.push_back(UaEvent::Registered {
                    id,
                    expires: granted,
                });
            }
            Some(r) if matches!(r.status, 401 | 407) => {
                let header = if r.status == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let challenge = r
                    .headers
                    .lines(header)
                    .find_map(|v| Challenge::parse(v).ok());
                match (challenge, reg.params.credentials.clone()) {
                    (Some(ch), Some((user, pass))) if reg.auth_attempts == 0 || ch.stale => {
                        reg.auth_attempts += 1;
                        let cnonce = self.random_token(8);
                        let value = digest::authorization(
                            &ch,
                            &Credentials {
                                username: &user,
                                password: &pass,
                                method: "REGISTER",
                                uri: &req.uri,
                                body: b"",
                            },
                            &cnonce,
                        );
                        let name = if r.status == 401 {
                            "Authorization"
                        } else {
                            "Proxy-Authorization"
                        };
                        self.send_register(now, id, Some((name, value)));
                    }
                    _ => self.register_failed(now, id, Some(r.status)),
                }
            }
            Some(r) if r.status == 423 => {
                // Interval Too Brief: ask again with the registrar's minimum (§10.2.8).
                let min = r
                    .headers
                    .get("Min-Expires")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                match min {
                    Some(m) if m > reg.expires => {
                        reg.expires = m;
                        self.send_register(now, id, None);
                    }
                    _ => self.register_failed(now, id, Some(423)),
                }
            }
            Some(r) => self.register_failed(now, id, Some(r.status)),
            None => self.register_failed(now, id, None),
        }
    }

    fn register_failed(&mut self, now: Instant, id: RegId, status: Option<u16>) {
        let jitter = (self.rng.next_u32() % 1000) as f64 / 10_000.0; // up to +10 %
        let Some(reg) = self.registrations.get_mut(&id) else {
            return;
        };
        reg.auth_attempts = 0;
        if !reg.active {
            self.registrations.remove(&id);
            self.events.push_back(UaEvent::Unregistered { id });
            return;
        }
        let retry_at = now + reg.backoff.mul_f64(1.0 + jitter);
        reg.backoff = (reg.backoff * 2).min(MAX_BACKOFF);
        reg.next_at = Some(retry_at);
        tracing::warn!(?status, registrar = %reg.params.registrar, "registration failed; retrying later");
        self.schedule(retry_at, TimerRef::Register(id));
        self.events.push_back(UaEvent::RegistrationFailed {
            id,
            status,
            retry_at,
        });
    }

    pub(super) fn register_timer(&mut self, now: Instant, id: RegId) {
        let due = self
            .registrations
            .get(&id)
            .and_then(|r| r.next_at)
            .is_some_and(|t| t <= now);
        if due {
            if let Some(reg) = self.registrations.get_mut(&id) {
                reg.next_at = None;
            }
            self.send_register(now, id, None);
        }
    }

    /// Send an OPTIONS keep-alive to `dest`; the answer (or its absence) comes back as
    /// [`UaEvent::PingResult`].
    pub fn ping(&mut self, now: Instant, dest: SocketAddr, uri: &str) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        let branch = format!("{MAGIC_COOKIE}{}", self.random_token(10));
        let host_port = self.host_port_for(self.transport_to(dest));
        let via = self.via_value(&branch, dest);
        let mut req = Request {
            method: Method::Options,
            uri: uri.to_owned(),
            version: "SIP/2.0".to_owned(),
            headers: Default::default(),
            body: Vec::new(),
        };
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers.push(
            "From",
            format!("<sip:ivrflow@{host_port}>;tag={}", self.random_token(6)),
        );
        req.headers.push("To", format!("<{uri}>"));
        req.headers
            .push("Call-ID", format!("{}@ivrflow", self.random_token(10)));
        req.headers.push("CSeq", "1 OPTIONS");
        req.headers.push("User-Agent", self.cfg.user_agent.clone());
        self.start_client(now, dest, req, branch, Purpose::Ping(id));
        id
    }
}

/// The expiry the registrar granted: our Contact's `expires`, else the Expires header.
fn granted_expiry(resp: &Response, contact_user: &str) -> Option<Duration> {
    let ours = resp
        .headers
        .get_all("Contact")
        .filter_map(|c| parse_name_addr(c).ok())
        .find(|n| parse_uri(&n.uri).ok().and_then(|u| u.user).as_deref() == Some(contact_user));
    let from_contact = ours.and_then(|n| {
        n.param("expires")
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let from_header = resp
        .headers
        .get("Expires")
        .and_then(|v| v.trim().parse::<u64>().ok());
    from_contact.or(from_header).map(Duration::from_secs)
}
