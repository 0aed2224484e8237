//! Persistence: call records (inbound and outbound), the webhook outbox, and the log of
//! delivery attempts, behind the [`Store`] trait.
//!
//! [`Store`] is synchronous and is called from one dedicated thread (`rt::store`), never
//! from the task that paces RTP. Its methods are business operations ("record these call
//! changes and their events", "lease the events due now"), not SQL, so a PostgreSQL
//! implementation can satisfy the same trait; [`sqlite::SqliteStore`] is the embedded
//! default (one file in `--data-dir`, WAL, `synchronous=FULL`, versioned migrations).
//!
//! Atomicity: each method is one transaction. [`Store::record`] takes a batch — the
//! runtime's group commit — and applies each record under its own savepoint, so one bad
//! record (an update of an unknown call) does not roll back the others.
//!
//! Deliberately not here: delivery (rt::webhook), the retry arithmetic (crm::outbox),
//! payload shapes (crm::events), dialing outbound calls (the dialer, issue 6).

pub mod admin;
pub mod handle;
mod migrations;
pub mod sqlite;

pub use handle::StoreHandle;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::crm::outbox::{Transition, UnixMs};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
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

/// Storage for calls and the outbox. One transaction per method.
pub trait Store: Send {
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
    /// per call), leased until `lease_until` so no other poll takes them.
    fn lease_due(
        &mut self,
        now: UnixMs,
        lease_until: UnixMs,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// When the next event becomes due (considering order and leases), if any is pending.
    fn next_due(&mut self) -> Result<Option<UnixMs>, StoreError>;

    /// Log attempts and move their events on.
    fn finish_attempts(&mut self, done: &[AttemptDone], now: UnixMs) -> Result<(), StoreError>;

    /// Forget every lease (at start-up: this process is the only deliverer of this store).
    fn release_leases(&mut self) -> Result<u64, StoreError>;

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

    /// Add a number to the do-not-call list (`source`: `api`, `call`, …); false if it
    /// was already there.
    fn add_dnc(&mut self, number: &str, source: &str, now: UnixMs) -> Result<bool, StoreError>;

    /// Remove a number from the do-not-call list; false if it was not there.
    fn remove_dnc(&mut self, number: &str) -> Result<bool, StoreError>;

    fn stats(&mut self) -> Result<Stats, StoreError>;

    /// Calls matching `filter`, newest first (by creation, then id), at most `limit`; each
    /// without its `trace` (a listing does not need it; [`Store::get_call`] has it).
    fn list_calls(&mut self, filter: &CallFilter) -> Result<Vec<CallRecord>, StoreError>;

    /// The dialer's queue at `now`: outbound calls queued, ringing or up, counted by
    /// campaign and [`QueueCount::state`].
    fn dialer_queue(&mut self, now: UnixMs) -> Result<Vec<QueueCount>, StoreError>;
}
