//! The control API (axum): create, list, read and cancel calls, list and replay outbox
//! events, the node's live view, scenario graphs, health and Prometheus metrics, and the
//! operators' web console (`console`). Reference for clients: docs/openapi.yaml, also served
//! at `/openapi.json`.
//!
//! `/v1/*` needs `Authorization: Bearer <token>` (`IVRFLOW_API_TOKEN` or `api.token`), or
//! the console's session cookie (see `console`); a missing or wrong token gets 401.
//! `/healthz`, `/metrics` and `/openapi.json` are open (no personal data, and probes and
//! scrapers rarely carry tokens). Without a token the runtime does not start the API at all
//! (see `rt::serve`).
//!
//! Errors are JSON `{"error": "...", "field": "..."}` where `field` names the offending
//! request field (or header, or path parameter) when there is one: 400 for a body that is
//! not a JSON object, 422 for a field with a bad value, 404, 409 (state or idempotency
//! conflicts), 401.
//!
//! Handlers never touch the database: every query goes to the store thread
//! (`store::StoreHandle::run`); what changed reaches the node as a `node::Command`. Not here:
//! dialing queued calls (the node).

pub mod campaigns;
pub mod conn;
pub mod console;
pub mod graph;
pub mod metrics;
pub mod recordings;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::crm::events::{self, rfc3339, unix_ms};
use crate::crm::signing::constant_time_eq;
use crate::node::{Command, NodeStatus};
use crate::scenario::Scenario;
use crate::store::StoreHandle;
use crate::store::admin::event_json;
use crate::store::{
    Attempt, CallFilter, CallRecord, Cancelled, Created, Direction, EventFilter, EventRecord,
    EventStatus, NewCall, NewEvent, Replayed, StoreError,
};
use metrics::Metrics;

/// Everything the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: StoreHandle,
    pub token: Arc<str>,
    /// The scenarios in service (`POST /v1/calls` must name one; `/v1/scenarios`, graphs);
    /// replaced by a reload.
    pub scenarios: ScenarioView,
    /// Asks for a reload of the scenarios and prompts (`POST /v1/scenarios/reload`); none
    /// when the process cannot reload (tests of the handlers alone).
    pub reload: Option<tokio::sync::mpsc::UnboundedSender<ReloadRequest>>,
    /// Names of the configured campaigns (`POST /v1/calls` may name one).
    pub campaigns: Arc<BTreeSet<String>>,
    /// A trunk is configured: outbound calls can be placed (`POST /v1/calls` is 422
    /// otherwise).
    pub has_trunk: bool,
    /// This process's name in call records (`store.node`).
    pub node_name: Arc<str>,
    pub metrics: Arc<Metrics>,
    /// Tells the node about cancelled and do-not-call changes (committed first).
    pub node: Option<tokio::sync::mpsc::UnboundedSender<Command>>,
    /// Wakes the claim loop (`rt::cluster`): a call just queued is claimed at once if due,
    /// by this node or any other sharing the store.
    pub claim_now: Arc<tokio::sync::Notify>,
    /// The node's state (store health, trunks) as it last reported it.
    pub status: NodeView,
    /// Default deadline of `POST /v1/admin/drain`.
    pub drain_timeout: Duration,
    /// Where this node writes the callers' recordings (`GET
    /// /v1/calls/{id}/recordings/{file}`); none: not served.
    pub recordings: Option<std::path::PathBuf>,
}

/// Where a reload's report goes.
pub type ReloadRequest = tokio::sync::oneshot::Sender<crate::catalog::Report>;

/// The scenarios in service, shared with the handlers; a reload swaps the whole map.
#[derive(Clone, Default)]
pub struct ScenarioView(Arc<std::sync::RwLock<Scenarios>>);

/// Scenario name → its compiled graph.
pub type Scenarios = Arc<BTreeMap<String, Arc<Scenario>>>;

impl ScenarioView {
    pub fn new(scenarios: BTreeMap<String, Arc<Scenario>>) -> ScenarioView {
        ScenarioView(Arc::new(std::sync::RwLock::new(Arc::new(scenarios))))
    }

    pub fn set(&self, scenarios: BTreeMap<String, Arc<Scenario>>) {
        if let Ok(mut g) = self.0.write() {
            *g = Arc::new(scenarios);
        }
    }

    pub fn get(&self) -> Scenarios {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.get().keys().cloned().collect()
    }
}

/// The node's last reported [`NodeStatus`] and when it came, shared with the handlers.
#[derive(Clone, Default)]
pub struct NodeView(Arc<std::sync::RwLock<Option<(NodeStatus, SystemTime)>>>);

impl NodeView {
    pub fn set(&self, s: NodeStatus) {
        if let Ok(mut g) = self.0.write() {
            *g = Some((s, SystemTime::now()));
        }
    }

    pub fn get(&self) -> Option<NodeStatus> {
        self.0
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|g| g.0.clone()))
    }

    /// The status with the time it was reported.
    pub fn get_dated(&self) -> Option<(NodeStatus, SystemTime)> {
        self.0.read().ok().and_then(|g| g.clone())
    }
}

/// A JSON error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub field: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, field: Option<&str>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: field.map(str::to_owned),
        }
    }

    fn invalid(field: &str, error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error, Some(field))
    }

    fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no {what} {id:?}"),
            Some("id"),
        )
    }

    fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not available",
            None,
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store error in an API request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store error: {e}"),
            None,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            axum::Json(json!({ "error": self.error, "field": self.field })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

type ApiResult = Result<Response, ApiError>;

/// The router: `/v1/*` behind the bearer token (or a console session), `/healthz`,
/// `/metrics` and `/openapi.json` open, the console under `/console`.
pub fn router(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/v1/calls", post(create_call).get(list_calls))
        .route("/v1/status", get(node_status))
        .route("/v1/scenarios", get(list_scenarios))
        .route("/v1/scenarios/reload", post(reload_scenarios))
        .route("/v1/scenarios/{name}/graph.svg", get(scenario_graph))
        .route("/v1/calls/{id}", get(get_call).delete(cancel_call))
        .route(
            "/v1/calls/{id}/recordings/{file}",
            get(recordings::get_recording),
        )
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}/replay", post(replay_event))
        .route("/v1/dnc", get(list_dnc))
        .route(
            "/v1/dnc/{number}",
            axum::routing::put(add_dnc).delete(remove_dnc),
        )
        .route("/v1/trunks", get(list_trunks))
        .route("/v1/campaigns", get(campaigns::list_campaigns))
        .route("/v1/campaigns/{name}/calls", post(campaigns::import_calls))
        .route(
            "/v1/campaigns/{name}/pause",
            post(campaigns::pause_campaign),
        )
        .route(
            "/v1/campaigns/{name}/resume",
            post(campaigns::resume_campaign),
        )
        .route("/v1/admin/drain", post(drain))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(v1)
        .merge(console::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint", None) })
        .with_state(state)
}

/// Serve the API on `listener` until the task is dropped, within the connection limits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: conn::Limits,
) -> std::io::Result<()> {
    conn::serve(listener, router(state), limits).await
}

async fn require_token(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if given.is_none() {
        match console::check_session(&st.token, req.method(), req.headers()) {
            console::Session::Valid => return next.run(req).await,
            console::Session::MissingCsrfHeader => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "a console session may change things only with the header {}: 1",
                        console::CSRF_HEADER
                    ),
                    Some(console::CSRF_HEADER),
                )
                .into_response();
            }
            console::Session::None => {}
        }
    }
    match given {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send Authorization: Bearer <token>",
            Some("Authorization"),
        )
        .into_response(),
        Some(v) => {
            let token = v
                .strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .map(str::trim)
                .unwrap_or("");
            if constant_time_eq(token.as_bytes(), st.token.as_bytes()) {
                next.run(req).await
            } else {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "wrong bearer token",
                    Some("Authorization"),
                )
                .into_response()
            }
        }
    }
}

/// A validated `POST /v1/calls` body.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    pub to: String,
    pub scenario: String,
    pub variables: BTreeMap<String, String>,
    pub not_before: Option<i64>,
    pub idempotency_key: Option<String>,
    /// Campaign (calling windows, retry policy), callee time zone, consent.
    pub dial: crate::store::DialOptions,
}

impl CallRequest {
    /// Fingerprint of what the request asks for (not its key): a retry with the same key
    /// must ask for the same thing.
    pub fn hash(&self) -> String {
        let canon = json!({
            "to": self.to,
            "scenario": self.scenario,
            "variables": self.variables,
            "not_before": self.not_before,
            "dial": self.dial,
        });
        let digest = Sha256::digest(canon.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

const CALL_FIELDS: [&str; 8] = [
    "to",
    "scenario",
    "variables",
    "not_before",
    "idempotency_key",
    "campaign",
    "timezone",
    "consent",
];

fn valid_number(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+*#._-".contains(&b))
}

fn valid_var_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Validate a `POST /v1/calls` body; `header_key` is the `Idempotency-Key` header;
/// `campaigns` are the configured campaign names.
pub fn parse_call_request(
    body: &[u8],
    header_key: Option<&str>,
    scenarios: &BTreeSet<String>,
    campaigns: &BTreeSet<String>,
) -> Result<CallRequest, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
            None,
        )
    })?;
    let Value::Object(m) = v else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
            None,
        ));
    };
    if let Some(k) = m.keys().find(|k| !CALL_FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            k,
            format!("unknown field {k:?}; expected {}", CALL_FIELDS.join(", ")),
        ));
    }
    let string = |name: &str, required: bool| -> Result<Option<String>, ApiError> {
        match m.get(name) {
            None | Some(Value::Null) if required => {
                Err(ApiError::invalid(name, format!("{name} is required")))
            }
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid(name, format!("{name} must be a string"))),
        }
    };
    let to = string("to", true)?.unwrap_or_default();
    if !valid_number(&to) {
        return Err(ApiError::invalid(
            "to",
            "to must be a number or SIP user part: 1-64 of 0-9 A-Z a-z + * # . _ -",
        ));
    }
    let scenario = string("scenario", true)?.unwrap_or_default();
    if !scenarios.contains(&scenario) {
        let known: Vec<&str> = scenarios.iter().map(String::as_str).collect();
        return Err(ApiError::invalid(
            "scenario",
            format!(
                "unknown scenario {scenario:?}; loaded: {}",
                known.join(", ")
            ),
        ));
    }
    let mut variables = BTreeMap::new();
    match m.get("variables") {
        None | Some(Value::Null) => {}
        Some(Value::Object(vars)) => {
            if vars.len() > 100 {
                return Err(ApiError::invalid("variables", "at most 100 variables"));
            }
            for (k, v) in vars {
                let field = format!("variables.{k}");
                if !valid_var_name(k) {
                    return Err(ApiError::invalid(
                        &field,
                        "variable names are 1-64 of a-z 0-9 _",
                    ));
                }
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(ApiError::invalid(
                            &field,
                            "a variable must be a string, number or boolean",
                        ));
                    }
                };
                if s.len() > 1024 {
                    return Err(ApiError::invalid(&field, "at most 1024 bytes"));
                }
                variables.insert(k.clone(), s);
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "variables",
                "variables must be an object of name: value",
            ));
        }
    }
    let not_before = match string("not_before", false)? {
        None => None,
        Some(s) => Some(events::parse_rfc3339(&s).ok_or_else(|| {
            ApiError::invalid(
                "not_before",
                format!("not_before {s:?} is not an RFC 3339 time (2026-11-22T09:30:00Z)"),
            )
        })?),
    };
    let campaign = string("campaign", false)?;
    if let Some(c) = &campaign
        && !campaigns.contains(c)
    {
        let known: Vec<&str> = campaigns.iter().map(String::as_str).collect();
        return Err(ApiError::invalid(
            "campaign",
            format!("unknown campaign {c:?}; configured: {}", known.join(", ")),
        ));
    }
    let timezone = string("timezone", false)?;
    if let Some(tz) = &timezone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        return Err(ApiError::invalid(
            "timezone",
            format!("timezone {tz:?} is not an IANA time zone (Europe/Moscow)"),
        ));
    }
    let consent = match m.get("consent") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::invalid(
                "consent",
                "consent must be true or false",
            ));
        }
    };
    let body_key = string("idempotency_key", false)?;
    let idempotency_key = match (body_key, header_key) {
        (Some(b), Some(h)) if b != h => {
            return Err(ApiError::invalid(
                "idempotency_key",
                "idempotency_key and the Idempotency-Key header differ",
            ));
        }
        (Some(k), _) => Some(k),
        (None, Some(h)) => Some(h.to_owned()),
        (None, None) => None,
    };
    if let Some(k) = &idempotency_key
        && !((1..=255).contains(&k.len()) && k.bytes().all(|b| (0x21..0x7f).contains(&b)))
    {
        return Err(ApiError::invalid(
            "idempotency_key",
            "idempotency_key must be 1-255 printable ASCII characters without spaces",
        ));
    }
    Ok(CallRequest {
        to,
        scenario,
        variables,
        not_before,
        idempotency_key,
        dial: crate::store::DialOptions {
            campaign,
            timezone,
            consent,
        },
    })
}

/// A new outbound call in state `queued` and its `call.queued` event.
fn queued_call(req: &CallRequest, now: crate::store::UnixMs) -> (NewCall, NewEvent) {
    let call = NewCall {
        id: events::new_call_ref(),
        direction: Direction::Outbound,
        state: crate::store::CallState::Queued,
        scenario: req.scenario.clone(),
        to: Some(req.to.clone()),
        from: None,
        variables: req.variables.clone(),
        not_before: req.not_before,
        idempotency_key: req.idempotency_key.clone(),
        request_hash: Some(req.hash()),
        sip_call_id: None,
        dial: req.dial.clone(),
    };
    let event = NewEvent {
        id: events::new_message_id(),
        kind: events::CALL_QUEUED.to_owned(),
        occurred_at: now,
        data: events::queued_data(&req.scenario, &req.to, &req.variables, req.not_before),
    };
    (call, event)
}

async fn create_call(State(st): State<ApiState>, headers: HeaderMap, body: Bytes) -> ApiResult {
    let header_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::invalid("Idempotency-Key", "the header must be printable ASCII")
            })
        })
        .transpose()?;
    let req = parse_call_request(&body, header_key, &st.scenarios.names(), &st.campaigns)?;
    if !st.has_trunk {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no SIP trunk is configured, so an outbound call could never be placed: add one \
             under trunks: in the config, or start with --trunk sip:USER:PASSWORD@HOST:PORT",
            None,
        ));
    }
    let now = unix_ms(SystemTime::now());
    let (call, event) = queued_call(&req, now);
    let created = st
        .store
        .run(move |s| s.create_call(&call, &event, now))
        .await
        .ok_or_else(ApiError::unavailable)??;
    match created {
        Created::New(c) => {
            st.metrics.event_recorded(events::CALL_QUEUED);
            st.store.new_events.notify_one();
            tracing::info!(call_ref = %c.id, scenario = %c.scenario, "call queued by the API");
            st.claim_now.notify_one();
            let location = format!("/v1/calls/{}", c.id);
            let body = call_json(&c, &[], &[]);
            let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            Ok(resp)
        }
        Created::Existing(c) => {
            let mut resp = (StatusCode::OK, axum::Json(call_json(&c, &[], &[]))).into_response();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(resp)
        }
        Created::Conflict(c) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "idempotency_key was already used for a different request (call {})",
                c.id
            ),
            Some("idempotency_key"),
        )),
    }
}

async fn get_call(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let key = id.clone();
    let found = st
        .store
        .run(move |s| -> Result<_, StoreError> {
            let Some(c) = s.get_call(&key)? else {
                return Ok(None);
            };
            let evs = s.call_events(&key)?;
            let attempts = s.call_attempts(&key)?;
            Ok(Some((c, evs, attempts)))
        })
        .await
        .ok_or_else(ApiError::unavailable)??;
    match found {
        Some((c, evs, attempts)) => Ok(axum::Json(call_json(&c, &evs, &attempts)).into_response()),
        None => Err(ApiError::not_found("call", &id)),
    }
}

async fn cancel_call(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let key = id.clone();
    let now = unix_ms(SystemTime::now());
    let res = st
        .store
        .run(move |s| s.cancel_call(&key, now))
        .await
        .ok_or_else(ApiError::unavailable)??;
    match res {
        Cancelled::Done(c) => {
            tracing::info!(call_ref = %c.id, "queued call cancelled by the API");
            st.tell_dialer(Command::Cancelled(c.id.clone()));
            Ok(axum::Json(call_json(&c, &[], &[])).into_response())
        }
        Cancelled::NotFound => Err(ApiError::not_found("call", &id)),
        Cancelled::NotQueued(c) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "only a queued call can be cancelled; this one is {}",
                c.state.as_str()
            ),
            Some("id"),
        )),
    }
}

impl ApiState {
    fn tell_dialer(&self, cmd: Command) {
        if let Some(tx) = &self.node
            && tx.send(cmd).is_err()
        {
            tracing::error!("the dialer is gone; the change takes effect at the next start");
        }
    }
}

/// `GET /v1/dnc`: the do-not-call list.
async fn list_dnc(State(st): State<ApiState>) -> ApiResult {
    let numbers = st
        .store
        .run(|s| s.dnc_numbers())
        .await
        .ok_or_else(ApiError::unavailable)??;
    Ok(axum::Json(json!({ "numbers": numbers })).into_response())
}

fn dnc_number(raw: &str) -> Result<String, ApiError> {
    let n = crate::dialer::normalize_number(raw);
    let formatting = |c: char| c.is_ascii_digit() || " +-().".contains(c);
    if (1..=64).contains(&raw.len()) && raw.chars().all(formatting) && n.len() > 1 {
        Ok(n)
    } else {
        Err(ApiError::invalid(
            "number",
            "number must be a phone number: digits, a leading +, spaces, - ( ) .",
        ))
    }
}

/// `PUT /v1/dnc/{number}`: never call this number again (checked at dial time).
async fn add_dnc(State(st): State<ApiState>, Path(raw): Path<String>) -> ApiResult {
    let number = dnc_number(&raw)?;
    let now = unix_ms(SystemTime::now());
    let key = number.clone();
    let added = st
        .store
        .run(move |s| s.add_dnc(&key, "api", now))
        .await
        .ok_or_else(ApiError::unavailable)??;
    st.tell_dialer(Command::Dnc {
        number: number.clone(),
        listed: true,
    });
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(json!({ "number": number, "listed": true })),
    )
        .into_response())
}

/// `DELETE /v1/dnc/{number}`.
async fn remove_dnc(State(st): State<ApiState>, Path(raw): Path<String>) -> ApiResult {
    let number = dnc_number(&raw)?;
    let key = number.clone();
    let removed = st
        .store
        .run(move |s| s.remove_dnc(&key))
        .await
        .ok_or_else(ApiError::unavailable)??;
    if !removed {
        return Err(ApiError::not_found("do-not-call number", &number));
    }
    st.tell_dialer(Command::Dnc {
        number: number.clone(),
        listed: false,
    });
    Ok(axum::Json(json!({ "number": number, "listed": false })).into_response())
}

/// `POST /v1/admin/drain`: the node stops taking calls and lets the calls up finish
/// (body, optional: `{"deadline": "30s"}`; default `drain_timeout`), then exits, as on
/// SIGTERM. 202.
async fn drain(State(st): State<ApiState>, body: Bytes) -> ApiResult {
    let deadline = if body.iter().all(u8::is_ascii_whitespace) {
        st.drain_timeout
    } else {
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("body is not JSON: {e}"),
                None,
            )
        })?;
        match v.get("deadline") {
            None => st.drain_timeout,
            Some(Value::String(d)) => humantime::parse_duration(d)
                .map_err(|e| ApiError::invalid("deadline", format!("{d:?}: {e} (e.g. 30s)")))?,
            Some(_) => return Err(ApiError::invalid("deadline", "a duration such as \"30s\"")),
        }
    };
    st.tell_dialer(Command::Drain { deadline });
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "draining", "deadline_s": deadline.as_secs()})),
    )
        .into_response())
}

/// `GET /v1/trunks`: each trunk's registration and keep-alive state.
async fn list_trunks(State(st): State<ApiState>) -> ApiResult {
    let trunks = st.status.get().map(|s| s.trunks).unwrap_or_default();
    Ok(axum::Json(json!({ "trunks": trunks })).into_response())
}

/// `a=1&b=x%20y` → pairs, percent- and plus-decoded.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn list_events(State(st): State<ApiState>, RawQuery(q): RawQuery) -> ApiResult {
    let mut filter = EventFilter {
        limit: 100,
        ..EventFilter::default()
    };
    for (k, v) in parse_query(q.as_deref().unwrap_or("")) {
        match k.as_str() {
            "status" => {
                filter.status = Some(EventStatus::parse(&v).ok_or_else(|| {
                    ApiError::invalid("status", "status must be pending, delivered or dead")
                })?)
            }
            "call" | "call_ref" => filter.call_id = Some(v),
            "limit" => {
                filter.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", "limit must be 1-1000"))?
            }
            "after" => {
                filter.after = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::invalid("after", "after must be a position from a previous page")
                })?)
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!(
                        "unknown query parameter {other:?}; expected status, call, limit, after"
                    ),
                ));
            }
        }
    }
    let f = filter.clone();
    let evs = st
        .store
        .run(move |s| s.list_events(&f))
        .await
        .ok_or_else(ApiError::unavailable)??;
    let next = (evs.len() as u32 == filter.limit)
        .then(|| evs.last().map(|e| e.position))
        .flatten();
    Ok(axum::Json(json!({
        "events": evs.iter().map(event_json).collect::<Vec<_>>(),
        "next_after": next,
    }))
    .into_response())
}

async fn replay_event(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    let key = id.clone();
    let now = unix_ms(SystemTime::now());
    let res = st
        .store
        .run(move |s| s.replay_event(&key, now))
        .await
        .ok_or_else(ApiError::unavailable)??;
    match res {
        Replayed::Done(e) => {
            st.store.new_events.notify_one();
            tracing::info!(event_id = %e.id, event = %e.kind, "event replayed by the API");
            Ok((StatusCode::ACCEPTED, axum::Json(event_json(&e))).into_response())
        }
        Replayed::AlreadyPending(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "event is already pending ({} attempt(s) so far)",
                e.attempts
            ),
            Some("id"),
        )),
        Replayed::NotFound => Err(ApiError::not_found("event", &id)),
    }
}

/// `GET /healthz`: 200 while the node can take calls and store what happens; 503 with
/// the reason while the store cannot commit (the node refuses new calls then) or does not
/// answer.
async fn healthz(State(st): State<ApiState>) -> Response {
    let unavailable = |why: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "error": why})),
        )
            .into_response()
    };
    if let Some(s) = st.status.get() {
        if let Some(e) = s.store_error {
            return unavailable(format!("the store cannot commit: {e}"));
        }
        if s.draining {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "draining", "error": "the node is shutting down"})),
            )
                .into_response();
        }
    }
    let probe = tokio::time::timeout(Duration::from_secs(2), st.store.run(|s| s.next_due())).await;
    match probe {
        Ok(Some(Ok(_))) => axum::Json(json!({"status": "ok"})).into_response(),
        Ok(Some(Err(e))) => unavailable(e.to_string()),
        _ => unavailable("the store does not answer".to_owned()),
    }
}

async fn metrics_text(State(st): State<ApiState>) -> Response {
    let now = unix_ms(SystemTime::now());
    let snapshot = st
        .store
        .run(move |s| Ok::<_, StoreError>((s.stats()?, s.dialer_queue(now)?)));
    if let Ok(Some(Ok((stats, queue)))) =
        tokio::time::timeout(Duration::from_secs(2), snapshot).await
    {
        st.metrics.set_store_stats(&stats, now);
        st.metrics.set_dialer_queue(&queue);
    }
    st.metrics.refresh_process();
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        st.metrics.encode(),
    )
        .into_response()
}

/// `GET /v1/calls?state=&campaign=&scenario=&direction=&limit=&after=`: calls, newest
/// first, without their traces; `next_after` continues the listing.
async fn list_calls(State(st): State<ApiState>, RawQuery(q): RawQuery) -> ApiResult {
    let mut filter = CallFilter {
        limit: 50,
        ..CallFilter::default()
    };
    for (k, v) in parse_query(q.as_deref().unwrap_or("")) {
        match k.as_str() {
            "state" => {
                filter.state = Some(crate::store::CallState::parse(&v).ok_or_else(|| {
                    ApiError::invalid(
                        "state",
                        "state must be queued, started, answered, completed, failed or cancelled",
                    )
                })?)
            }
            "direction" => {
                filter.direction = Some(Direction::parse(&v).ok_or_else(|| {
                    ApiError::invalid("direction", "direction must be inbound or outbound")
                })?)
            }
            "scenario" => filter.scenario = Some(v),
            "campaign" => {
                // Calls that name no campaign are the dialer's default campaign.
                filter.campaign_or_none = v == crate::node::DEFAULT_CAMPAIGN;
                filter.campaign = Some(v);
            }
            "limit" => {
                filter.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| ApiError::invalid("limit", "limit must be 1-1000"))?
            }
            "after" => {
                filter.after = Some(parse_call_cursor(&v).ok_or_else(|| {
                    ApiError::invalid("after", "after must be a next_after from a previous page")
                })?)
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!(
                        "unknown query parameter {other:?}; expected state, campaign, scenario, direction, limit, after"
                    ),
                ));
            }
        }
    }
    let f = filter.clone();
    let calls = st
        .store
        .run(move |s| s.list_calls(&f))
        .await
        .ok_or_else(ApiError::unavailable)??;
    let next = (calls.len() as u32 == filter.limit)
        .then(|| calls.last().map(|c| format!("{}_{}", c.created_at, c.id)))
        .flatten();
    Ok(axum::Json(json!({
        "calls": calls.iter().map(call_summary_json).collect::<Vec<_>>(),
        "next_after": next,
    }))
    .into_response())
}

/// `1764750000123_<call id>` → (created_at, id).
fn parse_call_cursor(v: &str) -> Option<(i64, String)> {
    let (at, id) = v.split_once('_')?;
    (!id.is_empty()).then(|| Some((at.parse().ok()?, id.to_owned())))?
}

/// A call in a listing: the record without variables, result or trace.
pub fn call_summary_json(c: &CallRecord) -> Value {
    let duration_ms = match (c.answered_at, c.ended_at) {
        (Some(a), Some(e)) => Some((e - a).max(0)),
        _ => None,
    };
    json!({
        "id": c.id,
        "direction": c.direction.as_str(),
        "state": c.state.as_str(),
        "scenario": c.scenario,
        "to": c.to,
        "from": c.from,
        "campaign": c.dial.campaign,
        "outcome": c.outcome,
        "failure": c.failure_reason.as_ref().map(|r| json!({"reason": r, "sip_code": c.sip_code})),
        "dial_attempts": c.dial_attempts,
        "sip_call_id": c.sip_call_id,
        "node": c.node,
        "not_before": c.not_before.map(rfc3339),
        "created_at": rfc3339(c.created_at),
        "started_at": c.started_at.map(rfc3339),
        "answered_at": c.answered_at.map(rfc3339),
        "ended_at": c.ended_at.map(rfc3339),
        "duration_ms": duration_ms,
    })
}

/// `GET /v1/status`: the node as it last reported itself (every 2 s, and on every
/// change): the calls up with their scenario and current graph node, the trunks, whether
/// it is draining, overloaded or cannot store.
async fn node_status(State(st): State<ApiState>) -> ApiResult {
    let now = SystemTime::now();
    let (s, at) = match st.status.get_dated() {
        Some((s, at)) => (Some(s), Some(at)),
        None => (None, None),
    };
    // The calls' durations as of now, not as of the report.
    let since = at
        .and_then(|at| now.duration_since(at).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let calls: Vec<Value> = s
        .as_ref()
        .map(|s| {
            s.calls
                .iter()
                .map(|c| {
                    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
                    v["duration_ms"] = json!(c.duration_ms + since);
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(axum::Json(json!({
        "node": &*st.node_name,
        "version": env!("CARGO_PKG_VERSION"),
        "reported_at": at.map(|t| rfc3339(unix_ms(t))),
        "store_error": s.as_ref().and_then(|s| s.store_error.clone()),
        "overloaded": s.as_ref().is_some_and(|s| s.overloaded),
        "draining": s.as_ref().is_some_and(|s| s.draining),
        "trunks": s.as_ref().map(|s| s.trunks.clone()).unwrap_or_default(),
        "calls": calls,
    }))
    .into_response())
}

/// `GET /v1/scenarios`: the loaded scenarios and their nodes.
async fn list_scenarios(State(st): State<ApiState>) -> ApiResult {
    let list: Vec<Value> = st
        .scenarios
        .get()
        .iter()
        .map(|(name, s)| {
            json!({
                "name": name,
                "description": s.description,
                "languages": s.languages,
                "start": s.nodes.get(s.start.0 as usize).map(|n| n.qualified.clone()),
                "nodes": s.nodes.iter().map(|n| json!({"name": n.qualified, "kind": n.kind_name()})).collect::<Vec<_>>(),
                "graph": format!("/v1/scenarios/{name}/graph.svg"),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "scenarios": list })).into_response())
}

/// `POST /v1/scenarios/reload`: re-read the scenario files and prompts (as SIGHUP does).
/// 200 with the report when every file loaded; 422 with the same report when some did not
/// (each keeps its previous version, if it had one); 503 when this process cannot reload.
async fn reload_scenarios(State(st): State<ApiState>) -> ApiResult {
    let unavailable = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this process cannot reload its scenarios",
            None,
        )
    };
    let tx = st.reload.as_ref().ok_or_else(unavailable)?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    tx.send(reply).map_err(|_| unavailable())?;
    let report = answer.await.map_err(|_| unavailable())?;
    let status = if report.ok() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, axum::Json(report)).into_response())
}

/// `GET /v1/scenarios/{name}/graph.svg?path=a,b,c`: the scenario drawn by Graphviz, with
/// the path (a call's `trace.nodes`) drawn on it. 503 when Graphviz is not installed.
async fn scenario_graph(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let scenario = st.scenarios.get().get(&name).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no scenario {name:?}"),
            Some("name"),
        )
    })?;
    let mut path = Vec::new();
    for (k, v) in parse_query(q.as_deref().unwrap_or("")) {
        match k.as_str() {
            "path" => path.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_owned)),
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown query parameter {other:?}; expected path"),
                ));
            }
        }
    }
    if path.len() > 10_000 {
        return Err(ApiError::invalid("path", "at most 10000 steps"));
    }
    let dot = graph::dot_with_path(&scenario, &path);
    let svg = tokio::task::spawn_blocking(move || graph::render_svg(&dot, graph::RENDER_DEADLINE))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))?;
    match svg {
        Ok(svg) => Ok((
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                // Opened on its own, the picture may not run anything.
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CACHE_CONTROL, "private, max-age=60"),
            ],
            svg,
        )
            .into_response()),
        Err(e @ graph::RenderError::Missing(_)) => {
            tracing::warn!(error = %e, "cannot draw a scenario graph");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                e.to_string(),
                None,
            ))
        }
        Err(e) => {
            tracing::warn!(error = %e, scenario = %name, "cannot draw a scenario graph");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
                None,
            ))
        }
    }
}

/// The API's reference (docs/openapi.yaml), as JSON.
pub const OPENAPI_YAML: &str = include_str!("../../docs/openapi.yaml");

/// [`OPENAPI_YAML`] as a JSON value (parsed once).
pub fn openapi() -> &'static Value {
    static DOC: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        serde_saphyr::from_str::<Value>(OPENAPI_YAML).unwrap_or_else(|e| {
            tracing::error!(error = %e, "docs/openapi.yaml does not parse");
            Value::Null
        })
    })
}

/// `GET /openapi.json`.
async fn openapi_json() -> Response {
    axum::Json(openapi().clone()).into_response()
}

/// The call resource (`GET /v1/calls/{id}`): the record, and its trace built from the
/// `call.completed` record, the call's events and their delivery attempts.
pub fn call_json(c: &CallRecord, evs: &[EventRecord], attempts: &[Attempt]) -> Value {
    let trace_events = c
        .trace
        .as_ref()
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut prompts: Vec<Value> = Vec::new();
    // Whether each play's end was reported (finished or stopped).
    let mut ended: Vec<bool> = Vec::new();
    let mut inputs: Vec<Value> = Vec::new();
    let mut other: Vec<Value> = Vec::new();
    for t in &trace_events {
        match t["type"].as_str().unwrap_or("") {
            "play" => {
                prompts.push(json!({
                    "id": t["id"],
                    "prompts": t["prompts"],
                    "at_ms": t["at_ms"],
                    "duration_ms": t["duration_ms"],
                    "heard_ms": t["duration_ms"],
                    "completed": false,
                }));
                ended.push(false);
            }
            "play_finished" => {
                if let Some(i) = prompts.iter().rposition(|p| p["id"] == t["id"]) {
                    prompts[i]["completed"] = json!(true);
                    prompts[i]["heard_ms"] = prompts[i]["duration_ms"].clone();
                    ended[i] = true;
                }
            }
            "play_stopped" => {
                if let Some(i) = prompts.iter().rposition(|p| p["id"] == t["id"]) {
                    prompts[i]["heard_ms"] = t["heard_ms"].clone();
                    ended[i] = true;
                }
            }
            "missing_prompt" | "robot_hangup" | "caller_hangup" => other.push(t.clone()),
            _ => inputs.push(t.clone()),
        }
    }
    // A play whose end was never reported was cut by the next play or by the end of the
    // call (a hang-up): it was heard until then.
    let call_end = c
        .result
        .as_ref()
        .and_then(|r| r["duration_ms"].as_u64())
        .or_else(|| {
            trace_events
                .iter()
                .filter_map(|t| t["at_ms"].as_u64())
                .max()
        });
    for i in 0..prompts.len() {
        if ended[i] {
            continue;
        }
        let at = prompts[i]["at_ms"].as_u64().unwrap_or(0);
        let dur = prompts[i]["duration_ms"].as_u64().unwrap_or(0);
        let until = prompts
            .get(i + 1)
            .and_then(|p| p["at_ms"].as_u64())
            .or(call_end)
            .unwrap_or(at + dur);
        prompts[i]["heard_ms"] = json!(dur.min(until.saturating_sub(at)));
    }
    let sip: Vec<Value> = evs
        .iter()
        .filter_map(|e| {
            let body: Value = serde_json::from_str(&e.payload).ok()?;
            let at = body["occurred_at"].clone();
            Some(match e.kind.as_str() {
                events::CALL_STARTED => json!({"at": at, "what": "invite"}),
                events::CALL_ANSWERED => json!({"at": at, "what": "answered", "code": 200}),
                events::CALL_COMPLETED => {
                    json!({"at": at, "what": "bye", "by": body["hangup_by"]})
                }
                events::CALL_FAILED => json!({
                    "at": at, "what": "failed", "code": body["sip_code"], "reason": body["reason"]
                }),
                _ => return None,
            })
        })
        .collect();
    let webhooks: Vec<Value> = evs
        .iter()
        .map(|e| {
            let tries: Vec<Value> = attempts
                .iter()
                .filter(|a| a.event_id == e.id)
                .map(|a| {
                    json!({
                        "attempt": a.attempt,
                        "at": rfc3339(a.started_at),
                        "status_code": a.status_code,
                        "latency_ms": a.duration_ms,
                        "result": a.result,
                        "error": a.error,
                    })
                })
                .collect();
            json!({
                "event_id": e.id,
                "type": e.kind,
                "seq": e.seq,
                "status": e.status.as_str(),
                "last_error": e.last_error,
                "attempts": tries,
            })
        })
        .collect();
    let nodes = c
        .result
        .as_ref()
        .and_then(|r| r.get("path"))
        .cloned()
        .unwrap_or(json!([]));
    // What the caller answered at each question: keys, speech with its transcript and
    // confidence, recordings (the trace has the timings, the answers have the words).
    let answers: Vec<Value> = c
        .result
        .as_ref()
        .and_then(|r| r.get("answers"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(node, a)| {
                    let mut a = a.clone();
                    if let Value::Object(o) = &mut a {
                        o.insert("node".to_owned(), json!(node));
                    }
                    a
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "id": c.id,
        "direction": c.direction.as_str(),
        "state": c.state.as_str(),
        "scenario": c.scenario,
        "to": c.to,
        "from": c.from,
        "variables": c.variables,
        "not_before": c.not_before.map(rfc3339),
        "campaign": c.dial.campaign,
        "timezone": c.dial.timezone,
        "consent": c.dial.consent,
        "dial_attempts": c.dial_attempts,
        "idempotency_key": c.idempotency_key,
        "sip_call_id": c.sip_call_id,
        "node": c.node,
        "outcome": c.outcome,
        "failure": c.failure_reason.as_ref().map(|r| json!({"reason": r, "sip_code": c.sip_code})),
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
        "started_at": c.started_at.map(rfc3339),
        "answered_at": c.answered_at.map(rfc3339),
        "ended_at": c.ended_at.map(rfc3339),
        "result": c.result,
        "trace": {
            "nodes": nodes,
            "prompts": prompts,
            "inputs": inputs,
            "events": other,
            "answers": answers,
            "sip": sip,
            "webhooks": webhooks,
        },
    })
}

#[cfg(test)]
mod tests;
