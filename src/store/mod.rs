//! Persistence: call records (inbound and outbound), the webhook outbox, the log of
//! delivery attempts, and the work several nodes share (claims on due outbound calls, outbox
//! leases with owners, the nodes table, campaign pauses), behind the [`Store`] trait.
//!
//! [`Store`] is synchronous and is called from one dedicated thread (`rt::store`), never
//! from the task that paces RTP. Its methods are business operations ("record these call
//! changes and their events", "lease the events due now", "claim the calls due now"), not
//! SQL. Two implementations satisfy it with the same semantics, checked by one conformance
//! suite (`tests/store_conformance.rs`): [`sqlite::SqliteStore`], the embedded default (one
//! file in `--data-dir`, WAL, `synchronous=FULL`, versioned migrations), and
//! [`postgres::PgStore`], the store several nodes share. [`open`] picks one from a URL.
//!
//! Atomicity: each method is one transaction. [`Store::record`] takes a batch — the
//! runtime's group commit — and applies each record under its own savepoint, so one bad
//! record (an update of an unknown call, a start without a claim) does not roll back the
//! others.
//!
//! Several nodes (docs/store.md): due outbound calls are *claimed* ([`Store::claim_due`]:
//! an owner and an expiry per call, DNC and trunk limits checked in the same transaction);
//! a call moves from `queued` to `started` only under a live claim of the recording node
//! (fencing, [`StoreError::NotClaimed`]); outbox leases carry their owner
//! ([`Store::lease_due_for`]); nodes announce themselves ([`Store::heartbeat`]) and a
//! survivor takes a dead node's work over ([`Store::take_over`]) in one transaction that
//! exactly one survivor wins.
//!
//! Deliberately not here: delivery (rt::webhook), the retry arithmetic (crm::outbox),
//! payload shapes (crm::events), calling windows and retry policies (the dialer: they need
//! the IANA time-zone database and the campaign configuration).

pub mod admin;
mod claims;
pub mod handle;
mod migrations;
pub mod postgres;
pub mod sqlite;

pub use handle::StoreHandle;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::crm::outbox::{Transition, UnixMs};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A PostgreSQL error: the server refused a statement, or the connection is gone (the
    /// next call reconnects; nothing of the failed transaction was committed).
    #[error("postgres: {0}")]
    Pg(#[from] self::postgres::PgError),
    #[error("{path}: {msg}")]
    Open { path: String, msg: String },
    #[error(
        "database schema version {found} is newer than this ivrflow knows ({known}); upgrade ivrflow"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("no call {0}")]
    NoSuchCall(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Fencing: a call may move from `queued` to `started`/`answered` only while the
    /// recording node holds a live claim on it ([`Store::claim_due`]). Another node may be
    /// dialling it: this node must not.
    #[error("call {0} is not claimed by this node (its claim expired or another node holds it)")]
    NotClaimed(String),
    /// A store URL [`open`] does not understand.
    #[error("store URL {url}: {msg}")]
    BadUrl { url: String, msg: String },
}

/// The campaign of outbound calls that name none: the same name as the node's
/// `DEFAULT_CAMPAIGN` (a unit test keeps them equal).
pub const DEFAULT_CAMPAIGN: &str = "default";

/// Open the store a URL names, with `node` as this process's name in call records, claims
/// and leases:
/// - `None`, `sqlite:` or `sqlite://` → `ivrflow.sqlite3` in `data_dir` (the default);
/// - `sqlite://PATH` or `sqlite:PATH` → that SQLite file;
/// - `postgres://USER:PASS@HOST:PORT/DB` (or `postgresql://…`) → PostgreSQL.
///
/// Either way the schema is migrated to this build's version, and a start needs a claim
/// ([`StoreError::NotClaimed`]): the node claims due calls with [`Store::claim_due`]. Errors
/// never show the password.
pub fn open(
    url: Option<&str>,
    data_dir: &Path,
    node: &str,
) -> Result<Box<dyn Store + Send>, StoreError> {
    let url = url.map(str::trim).filter(|u| !u.is_empty());
    match url {
        None => Ok(Box::new(
            sqlite::SqliteStore::open_in_dir(data_dir, node)?.require_claims(true),
        )),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            Ok(Box::new(postgres::PgStore::connect(u, node)?))
        }
        Some(u) if u.starts_with("sqlite:") => {
            let path = u.trim_start_matches("sqlite:").trim_start_matches("//");
            let store = if path.is_empty() {
                sqlite::SqliteStore::open_in_dir(data_dir, node)?
            } else {
                let path = Path::new(path);
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                        path: parent.display().to_string(),
                        msg: format!("cannot create the directory: {e}"),
                    })?;
                }
                sqlite::SqliteStore::open(path, node)?
            };
            Ok(Box::new(store.require_claims(true)))
        }
        Some(u) => Err(StoreError::BadUrl {
            url: postgres::redact_url(u),
            msg: "expected sqlite:PATH, sqlite://PATH or postgres://USER:PASS@HOST:PORT/DB"
                .to_owned(),
        }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "inbound" => Some(Direction::Inbound),
            "outbound" => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// A call's life: `queued` (outbound, waiting for the dialer) → `started` (inbound: INVITE
/// routed; outbound: INVITE sent) → `answered` → `completed`; or `failed` from any live
/// state; or `cancelled` from `queued`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    Queued,
    Started,
    Answered,
    Completed,
    Failed,
    Cancelled,
}

impl CallState {
    pub const ALL: [CallState; 6] = [
        CallState::Queued,
        CallState::Started,
        CallState::Answered,
        CallState::Completed,
        CallState::Failed,
        CallState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Queued => "queued",
            CallState::Started => "started",
            CallState::Answered => "answered",
            CallState::Completed => "completed",
            CallState::Failed => "failed",
            CallState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<CallState> {
        CallState::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The call is up (or about to be) on some node.
    pub fn is_live(self) -> bool {
        matches!(self, CallState::Started | CallState::Answered)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Pending,
    Delivered,
    Dead,
}

impl EventStatus {
    pub const ALL: [EventStatus; 3] = [
        EventStatus::Pending,
        EventStatus::Delivered,
        EventStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Delivered => "delivered",
            EventStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<EventStatus> {
        EventStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// How the dialer treats an outbound call: its campaign (calling windows, retries), the
/// callee's time zone, and whether the callee consented to calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// IANA time zone of the callee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consent: Option<bool>,
}

/// A call the store has not seen yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    /// ivrflow's call id (UUID), the `call_ref` of its events.
    pub id: String,
    pub direction: Direction,
    pub state: CallState,
    pub scenario: String,
    /// Personal data.
    pub to: Option<String>,
    /// Personal data.
    pub from: Option<String>,
    pub variables: BTreeMap<String, String>,
    pub not_before: Option<UnixMs>,
    /// Unique among all calls when set (`POST /v1/calls`).
    pub idempotency_key: Option<String>,
    /// Fingerprint of the request that created the call, to tell a retry of the same
    /// request from a different request reusing the key.
    pub request_hash: Option<String>,
    pub sip_call_id: Option<String>,
    /// Outbound calls: dialer options.
    pub dial: DialOptions,
}

/// A call as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub id: String,
    pub direction: Direction,
    pub state: CallState,
    pub scenario: String,
    pub to: Option<String>,
    pub from: Option<String>,
    pub variables: BTreeMap<String, String>,
    pub not_before: Option<UnixMs>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub sip_call_id: Option<String>,
    pub dial: DialOptions,
    /// Dial attempts made so far (outbound).
    pub dial_attempts: u32,
    /// The node (process) that carries or carried the call.
    pub node: String,
    pub outcome: Option<String>,
    pub failure_reason: Option<String>,
    pub sip_code: Option<u16>,
    /// The `call.completed` record without its trace.
    pub result: Option<Value>,
    /// The call's trace (prompts, inputs, timings).
    pub trace: Option<Value>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    pub started_at: Option<UnixMs>,
    pub answered_at: Option<UnixMs>,
    pub ended_at: Option<UnixMs>,
}

/// An event to append to a call's outbox stream.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Message id (`msg_…`), the `webhook-id`.
    pub id: String,
    pub kind: String,
    pub occurred_at: UnixMs,
    /// The event's own fields; the store adds the envelope (`crm::events::compose_body`).
    pub data: Value,
}

/// A change to a call's row.
#[derive(Debug, Clone, PartialEq)]
pub enum CallChange {
    /// A call the store has not seen (inbound calls, at `call.started` or `call.failed`).
    Insert(NewCall),
    /// Fields to set on an existing call; `None` leaves a field as it is. Moving to
    /// `started`/`answered` sets `started_at`/`answered_at`; to `completed`, `failed` or
    /// `cancelled` sets `ended_at`.
    Update(CallUpdate),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallUpdate {
    pub state: Option<CallState>,
    pub sip_call_id: Option<String>,
    pub outcome: Option<String>,
    pub failure: Option<(String, Option<u16>)>,
    pub result: Option<Value>,
    pub trace: Option<Value>,
    /// Outbound retry: when to dial again (with `state: Queued`).
    pub not_before: Option<UnixMs>,
    pub dial_attempts: Option<u32>,
}

/// One thing that happened to a call, with the event it produces (if any), applied
/// atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub call_id: String,
    pub at: UnixMs,
    pub change: CallChange,
    pub event: Option<NewEvent>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub id: String,
    pub call_id: String,
    /// 1, 2, 3… within the call.
    pub seq: i64,
    pub kind: String,
    /// The exact body sent to the CRM.
    pub payload: String,
    pub status: EventStatus,
    /// Attempts in the current series (a replay starts a new series).
    pub attempts: u32,
    pub next_attempt_at: UnixMs,
    pub last_error: Option<String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    pub delivered_at: Option<UnixMs>,
    /// Position in the global outbox order (a cursor for listings).
    pub position: i64,
}

/// One HTTP attempt, for the deliveries log.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub event_id: String,
    /// 1-based within the current series.
    pub attempt: u32,
    pub started_at: UnixMs,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// `delivered`, `refused`, `timeout`, `network`, `gone`.
    pub result: String,
}

/// An attempt and what it did to the event.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptDone {
    pub attempt: Attempt,
    pub transition: Transition,
}

/// `create_call`'s answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new call, with its `call.queued` event committed.
    New(CallRecord),
    /// The idempotency key names an existing call made by the same request.
    Existing(CallRecord),
    /// The idempotency key names a call made by a different request.
    Conflict(CallRecord),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    Done(CallRecord),
    NotFound,
    /// Only queued calls can be cancelled.
    NotQueued(CallRecord),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Replayed {
    /// The event is pending again with a fresh series of attempts.
    Done(EventRecord),
    NotFound,
    /// It is pending already.
    AlreadyPending(EventRecord),
}

/// Which events to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub call_id: Option<String>,
    /// Only events after this position (the previous page's last `position`).
    pub after: Option<i64>,
    pub limit: u32,
}

/// Which calls to list, newest first (`GET /v1/calls`, the console).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallFilter {
    pub state: Option<CallState>,
    pub direction: Option<Direction>,
    pub scenario: Option<String>,
    /// Only outbound calls of this campaign (the name given in `POST /v1/calls`)…
    pub campaign: Option<String>,
    /// …or that name no campaign at all (the dialer's default campaign).
    pub campaign_or_none: bool,
    /// Only calls listed after this one: the previous page's last `(created_at, id)`.
    pub after: Option<(UnixMs, String)>,
    pub limit: u32,
}

/// Outbound calls the dialer has not finished with, by campaign and where they are
/// (`GET /metrics`: the dialer queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueCount {
    /// `None`: calls that name no campaign.
    pub campaign: Option<String>,
    /// `waiting` (queued, `not_before` in the future), `due` (queued, may be dialled now),
    /// `started` (INVITE sent, ringing) or `answered`.
    pub state: String,
    pub calls: u64,
}

/// Counts for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub calls_by_state: BTreeMap<String, u64>,
    pub events_by_status: BTreeMap<String, u64>,
    /// Creation time of the oldest pending event.
    pub oldest_pending: Option<UnixMs>,
}

/// A trunk's limits, which [`Store::claim_due`] holds across every node sharing the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrunkQuota {
    pub name: String,
    /// Calls up at once on this trunk (ringing or answered, and claimed to be dialled now),
    /// counted over all nodes. `None`: no limit.
    pub max_concurrent: Option<u32>,
    /// Calls started within any one second, over all nodes. `None`: no limit. As the
    /// dialer counts it: a call may start while fewer than this many started in the last
    /// 1000 ms (so 0.5 lets one through per second).
    pub calls_per_second: Option<f64>,
    /// Campaigns whose calls go out through this trunk (a campaign's `trunk:` in the
    /// configuration). A call of a campaign no trunk lists (the `default` campaign among
    /// them) goes through the first trunk of the slice, as the node routes it.
    pub campaigns: Vec<String>,
}

/// A call [`Store::claim_due`] handed to this node: no other node will take it before
/// `claim_until` (unless this node releases it).
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub call: CallRecord,
    /// The number is on the do-not-call list: finish the call as blocked, do not dial.
    pub dnc: bool,
    /// The campaign requires consent and the call has none: finish it, do not dial.
    pub no_consent: bool,
    /// The trunk the call was counted against (`None` for calls not to be dialled, or when
    /// no trunk was given).
    pub trunk: Option<String>,
    pub claim_until: UnixMs,
}

/// What [`Store::take_over`] moved to the survivor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TakeOver {
    /// Calls that were up on the dead node, now the survivor's: it records their end
    /// (`call.failed`, reason `interrupted`) through [`Store::record`].
    pub live_calls: Vec<CallRecord>,
    /// Claims on queued calls given back: any node may claim them now.
    pub claims_released: u64,
    /// Outbox leases given back: any node may deliver those events now.
    pub leases_released: u64,
}

/// What [`Store::leave`] gave back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Left {
    pub claims_released: u64,
    pub leases_released: u64,
    /// Calls still up on the node as it left (should be 0 after a drain; nobody takes
    /// them over, since the node is no longer in the nodes table).
    pub live_calls: u64,
}

/// A row of the nodes table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub last_seen: UnixMs,
    /// After this instant without a heartbeat the node is dead ([`Store::dead_nodes`]).
    pub expires_at: UnixMs,
    /// The node is draining ([`Store::mark_leaving`]): it claims nothing new.
    pub leaving: bool,
}

/// One campaign's calls (`GET /v1/campaigns`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CampaignSummary {
    pub name: String,
    pub paused: bool,
    /// Outbound calls waiting for the dialer (due or not).
    pub queued: u64,
    /// Of `queued`, those due at `now` (`not_before` reached).
    pub due: u64,
    /// Calls ringing or up.
    pub dialling: u64,
    /// Completed calls by outcome (`unknown` when the call had none).
    pub completed: BTreeMap<String, u64>,
    /// Failed calls by reason (`unknown` when none was recorded).
    pub failed: BTreeMap<String, u64>,
    pub cancelled: u64,
}

/// Storage for calls and the outbox. One transaction per method.
pub trait Store: Send {
    /// The node this store records as (call records, claims, leases).
    fn node(&self) -> &str;

    /// The schema version the database is at.
    fn schema_version(&mut self) -> Result<i64, StoreError>;
    /// Store a new outbound call and its `call.queued` event, or find the call an
    /// idempotency key already names.
    fn create_call(
        &mut self,
        call: &NewCall,
        event: &NewEvent,
        now: UnixMs,
    ) -> Result<Created, StoreError>;

    fn get_call(&mut self, id: &str) -> Result<Option<CallRecord>, StoreError>;

    /// Cancel a queued call (no event is emitted: the CRM asked for it).
    fn cancel_call(&mut self, id: &str, now: UnixMs) -> Result<Cancelled, StoreError>;

    /// Apply call changes and append their events, in order, in one transaction. The
    /// result has one entry per record: a record that fails is rolled back alone.
    fn record(
        &mut self,
        records: &[Record],
        now: UnixMs,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError>;

    /// Calls this node had up (`started`/`answered`) — after a crash, the ones it lost.
    fn live_calls(&mut self, node: &str) -> Result<Vec<CallRecord>, StoreError>;

    /// Events due at `now`, at most one per call (the oldest pending one: delivery order
    /// per call, across nodes: a later event of a call is never leased while an earlier one
    /// is pending or leased anywhere), not leased or with an expired lease, leased to
    /// `node` until `lease_until` so no other poll — of any node — takes them.
    fn lease_due_for(
        &mut self,
        node: &str,
        now: UnixMs,
        lease_until: UnixMs,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// [`Store::lease_due_for`] this store's own node.
    fn lease_due(
        &mut self,
        now: UnixMs,
        lease_until: UnixMs,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let node = self.node().to_owned();
        self.lease_due_for(&node, now, lease_until, limit)
    }

    /// When the next event becomes due (considering order and leases), if any is pending.
    fn next_due(&mut self) -> Result<Option<UnixMs>, StoreError>;

    /// Log attempts and move their events on.
    fn finish_attempts(&mut self, done: &[AttemptDone], now: UnixMs) -> Result<(), StoreError>;

    /// Give back the outbox leases `node` holds (and leases without an owner, which only
    /// a version before owners could have taken). Other nodes' leases are left alone.
    fn release_leases_of(&mut self, node: &str) -> Result<u64, StoreError>;

    /// [`Store::release_leases_of`] this store's own node (at start-up: what this node
    /// leased before it restarted is due again at once).
    fn release_leases(&mut self) -> Result<u64, StoreError> {
        let node = self.node().to_owned();
        self.release_leases_of(&node)
    }

    fn list_events(&mut self, filter: &EventFilter) -> Result<Vec<EventRecord>, StoreError>;

    fn get_event(&mut self, id: &str) -> Result<Option<EventRecord>, StoreError>;

    /// Every event of a call, in `seq` order.
    fn call_events(&mut self, call_id: &str) -> Result<Vec<EventRecord>, StoreError>;

    /// Every attempt to deliver any event of a call, oldest first.
    fn call_attempts(&mut self, call_id: &str) -> Result<Vec<Attempt>, StoreError>;

    /// Make a dead or delivered event pending again, due at `now`, attempts reset.
    fn replay_event(&mut self, id: &str, now: UnixMs) -> Result<Replayed, StoreError>;

    /// Outbound calls waiting for the dialer, earliest `not_before` first.
    fn queued_calls(&mut self) -> Result<Vec<CallRecord>, StoreError>;

    /// The do-not-call list (normalised numbers).
    fn dnc_numbers(&mut self) -> Result<Vec<String>, StoreError>;

    /// Add a number to the do-not-call list (`source`: `api`, `call`, …), normalised as
    /// the dialer does (`dialer::normalize_number`); false if it was already there.
    fn add_dnc(&mut self, number: &str, source: &str, now: UnixMs) -> Result<bool, StoreError>;

    /// Remove a number (normalised) from the do-not-call list; false if it was not there.
    fn remove_dnc(&mut self, number: &str) -> Result<bool, StoreError>;

    fn stats(&mut self) -> Result<Stats, StoreError>;

    /// Calls matching `filter`, newest first (by creation, then id), at most `limit`; each
    /// without its `trace` (a listing does not need it; [`Store::get_call`] has it).
    fn list_calls(&mut self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError>;

    /// The dialer's queue at `now`: outbound calls queued, ringing or up, counted by
    /// campaign and [`QueueCount::state`].
    fn dialer_queue(&mut self, now: UnixMs) -> Result<Vec<QueueCount>, StoreError>;

    // ───────────── several nodes ─────────────

    /// `node` is alive at `now` and will be taken for dead after `now + ttl_ms` without
    /// another heartbeat. Creates its row in the nodes table (not leaving) or refreshes it.
    fn heartbeat(&mut self, node: &str, now: UnixMs, ttl_ms: u64) -> Result<(), StoreError>;

    /// `node` is draining: it finishes its calls and claims nothing new. Still alive (it
    /// keeps its heartbeat); false if it has no row.
    fn mark_leaving(&mut self, node: &str, now: UnixMs) -> Result<bool, StoreError>;

    /// The nodes table, by name.
    fn nodes(&mut self) -> Result<Vec<NodeInfo>, StoreError>;

    /// Nodes whose heartbeat expired at `now` (`expires_at <= now`), by name.
    fn dead_nodes(&mut self, now: UnixMs) -> Result<Vec<String>, StoreError>;

    /// In one transaction: if `dead` is still dead at `now`, remove its row, move its live
    /// calls to `by` (returned: `by` records their end), give back its claims and outbox
    /// leases. `None` when `dead` is not dead (any more), or another survivor took it
    /// over first: of survivors racing, exactly one gets `Some`.
    fn take_over(
        &mut self,
        dead: &str,
        by: &str,
        now: UnixMs,
    ) -> Result<Option<TakeOver>, StoreError>;

    /// Graceful exit: give back `node`'s claims and outbox leases and remove its row.
    fn leave(&mut self, node: &str) -> Result<Left, StoreError>;

    /// Claim up to `limit` due outbound calls for `node` until `now + lease_ms`: queued,
    /// `not_before <= now`, not claimed (or the claim expired), campaign not paused, the
    /// number not busy with another outbound call (up or claimed), within each trunk's
    /// limits counted over all nodes in the same transaction. Earliest `not_before` first.
    /// Calls on the do-not-call list (joined in SQL) and calls of a campaign in
    /// `consent_required` without consent are claimed too, flagged, and count against no
    /// trunk: the node finishes them without dialling. Two nodes claiming at once never
    /// get the same call.
    fn claim_due(
        &mut self,
        node: &str,
        now: UnixMs,
        limit: u32,
        lease_ms: u64,
        trunks: &[TrunkQuota],
        consent_required: &[String],
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Give a claim back (the node will not dial the call now: outside its calling window,
    /// draining). False when `node` does not hold a claim on the call. A call's claim also
    /// ends when a record changes its state or `not_before`.
    fn release_claim(&mut self, call_id: &str, node: &str) -> Result<bool, StoreError>;

    /// Pause or resume a campaign on every node: [`Store::claim_due`] skips a paused
    /// campaign's calls.
    fn set_campaign_paused(
        &mut self,
        name: &str,
        paused: bool,
        now: UnixMs,
    ) -> Result<(), StoreError>;

    /// Every campaign that has outbound calls or a pause setting, by name. Calls that name
    /// no campaign count under [`DEFAULT_CAMPAIGN`].
    fn campaign_summaries(&mut self, now: UnixMs) -> Result<Vec<CampaignSummary>, StoreError>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_campaign_is_the_nodes() {
        assert_eq!(super::DEFAULT_CAMPAIGN, crate::node::DEFAULT_CAMPAIGN);
    }

    #[test]
    fn open_refuses_unknown_urls_without_showing_a_password() {
        let dir = std::env::temp_dir();
        let err = super::open(Some("mysql://u:secret@h/db"), &dir, "n")
            .err()
            .expect("refused");
        let text = err.to_string();
        assert!(text.contains("mysql://u:***@h/db"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
