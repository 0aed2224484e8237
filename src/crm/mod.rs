//! What the shop's CRM receives: event payloads ([`events`]), the outbox's delivery state
//! machine and retry schedule ([`outbox`]), and Standard Webhooks signatures ([`signing`]).
//!
//! Pure data and arithmetic, with time as an argument. Persistence is `store`'s; the HTTP
//! client that delivers events and the clock live in `rt::webhook`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::call::TraceEvent;
use crate::dialogue::{Answer, HangupBy};

pub mod delivery;
pub mod events;
pub mod outbox;
pub mod signing;

/// `call.completed`: one per answered call, sent when it ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallCompleted {
    /// Always `"call.completed"`.
    pub event: &'static str,
    /// The SIP Call-ID.
    pub call_id: String,
    pub scenario: String,
    pub direction: &'static str,
    pub outcome: Option<String>,
    pub answers: BTreeMap<String, Answer>,
    pub variables: BTreeMap<String, String>,
    /// Nodes visited, in order.
    pub path: Vec<String>,
    /// RFC 3339 UTC timestamps.
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    pub hangup_by: HangupBy,
    /// Prompts played, inputs and timings.
    pub trace: Vec<TraceEvent>,
    /// Set when the call was answered but ivrflow had to end it (no ACK, the maximum call
    /// duration): the CRM then gets `call.failed` with this reason and detail, and the
    /// rest of this record (answers, path, trace so far), instead of `call.completed`.
    #[serde(skip)]
    pub failure: Option<(events::FailReason, String)>,
}
