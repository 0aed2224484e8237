//! The events the CRM receives and the exact JSON body of each (docs/webhooks.md is the
//! reference for CRM developers; this module is the one place that writes those bodies).
//!
//! Every body is one flat JSON object: the envelope (`event`, `event_id`, `call_ref`, `seq`,
//! `occurred_at`) plus the event's own fields. The body is composed once, when the event is
//! committed to the outbox, and sent byte for byte on every attempt, so the signature and
//! any de-duplication by the receiver see the same message.
//!
//! Pure data; not here: when events are emitted (engine, runtime) or delivered (rt::webhook).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::CallCompleted;
use super::outbox::UnixMs;
pub use crate::call::FailReason;

pub const CALL_QUEUED: &str = "call.queued";
pub const CALL_STARTED: &str = "call.started";
pub const CALL_ANSWERED: &str = "call.answered";
pub const CALL_COMPLETED: &str = "call.completed";
pub const CALL_FAILED: &str = "call.failed";
pub const CALLBACK_REQUESTED: &str = "callback.requested";
pub const DNC_REQUESTED: &str = "dnc.requested";
pub const SMS_REQUESTED: &str = "sms.requested";

/// Every event type ivrflow itself emits; scenarios may name others in `notify` nodes.
pub const KNOWN: [&str; 8] = [
    CALL_QUEUED,
    CALL_STARTED,
    CALL_ANSWERED,
    CALL_COMPLETED,
    CALL_FAILED,
    CALLBACK_REQUESTED,
    DNC_REQUESTED,
    SMS_REQUESTED,
];

/// Whether a scenario's `notify` event name is acceptable: `word(.word)*`, lower case,
/// at most 64 characters, and not one of the `call.*` lifecycle events ivrflow owns.
pub fn valid_notify_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with("call.")
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// A new message id (`webhook-id`): `msg_` and 32 hex digits from a v4 UUID.
pub fn new_message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// A new call id (`call_ref`, the id in `/v1/calls/{id}`): a hyphenated v4 UUID.
pub fn new_call_ref() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// `SystemTime` → Unix milliseconds (0 before 1970).
pub fn unix_ms(t: SystemTime) -> UnixMs {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds → RFC 3339 UTC with milliseconds (`2026-11-22T09:30:00.120Z`).
pub fn rfc3339(ms: UnixMs) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// RFC 3339 → Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<UnixMs> {
    humantime::parse_rfc3339_weak(s).ok().map(unix_ms)
}

/// The fields every body starts with.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The message id: `webhook-id` and the idempotency key.
    pub event_id: &'a str,
    pub kind: &'a str,
    /// ivrflow's id of the call (`GET /v1/calls/{call_ref}`).
    pub call_ref: &'a str,
    /// 1, 2, 3… per call, in the order the events happened and are delivered.
    pub seq: i64,
    pub occurred_at: UnixMs,
}

/// The body sent to the CRM: the envelope, then the event's fields (an envelope field of
/// the same name wins; a non-object `data` goes under `"data"`).
pub fn compose_body(env: &Envelope<'_>, data: &Value) -> String {
    let mut m = Map::new();
    m.insert("event".into(), Value::from(env.kind));
    m.insert("event_id".into(), Value::from(env.event_id));
    m.insert("call_ref".into(), Value::from(env.call_ref));
    m.insert("seq".into(), Value::from(env.seq));
    m.insert("occurred_at".into(), Value::from(rfc3339(env.occurred_at)));
    match data {
        Value::Object(d) => {
            for (k, v) in d {
                if !m.contains_key(k) {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Null => {}
        other => {
            m.insert("data".into(), other.clone());
        }
    }
    Value::Object(m).to_string()
}

/// Who and what a call is, as every per-call event reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallIdentity {
    /// The SIP Call-ID (`null` before an outbound call is dialled).
    pub call_id: Option<String>,
    pub scenario: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// Caller number (inbound: the From user part).
    pub from: String,
    /// Dialled number (inbound: the Request-URI user part; outbound: the callee).
    pub to: String,
    /// The customer's number is theirs: asserted by a trusted proxy (inbound), or dialled
    /// by the robot (outbound). An inbound `from` without it is only what the caller sent.
    pub customer_verified: bool,
}

/// `call.queued`: an outbound call was accepted by `POST /v1/calls`.
pub fn queued_data(
    scenario: &str,
    to: &str,
    variables: &BTreeMap<String, String>,
    not_before: Option<UnixMs>,
) -> Value {
    json!({
        "call_id": null,
        "scenario": scenario,
        "direction": "outbound",
        "to": to,
        "variables": variables,
        "not_before": not_before.map(rfc3339),
    })
}

/// `call.started`: the call was accepted for a scenario (inbound: the INVITE was routed,
/// before it is answered).
pub fn started_data(id: &CallIdentity, variables: &BTreeMap<String, String>) -> Value {
    let mut v = serde_json::to_value(id).unwrap_or(Value::Null);
    v["variables"] = json!(variables);
    v
}

/// `call.answered`: media is up and the scenario starts (inbound: ivrflow sent 200 OK).
pub fn answered_data(id: &CallIdentity) -> Value {
    serde_json::to_value(id).unwrap_or(Value::Null)
}

/// `call.completed`: the record the engine built when an answered call ended.
pub fn completed_data(rec: &CallCompleted) -> Value {
    serde_json::to_value(rec).unwrap_or(Value::Null)
}

/// `call.failed`.
pub fn failed_data(
    id: &CallIdentity,
    variables: &BTreeMap<String, String>,
    reason: FailReason,
    sip_code: Option<u16>,
    detail: &str,
) -> Value {
    let mut v = started_data(id, variables);
    v["reason"] = json!(reason);
    v["sip_code"] = json!(sip_code);
    v["detail"] = json!(detail);
    v
}

/// `callback.requested`, `dnc.requested`, `sms.requested` and other `notify` events: the
/// call's identity plus the scenario's `data` under `"data"`.
pub fn notify_data(id: &CallIdentity, data: &Value) -> Value {
    let mut v = serde_json::to_value(id).unwrap_or(Value::Null);
    v["data"] = data.clone();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident() -> CallIdentity {
        CallIdentity {
            call_id: Some("1-1@h".into()),
            scenario: "s".into(),
            direction: "inbound",
            from: "15551230000".into(),
            to: "100".into(),
            customer_verified: false,
        }
    }

    #[test]
    fn body_is_envelope_plus_fields() {
        let env = Envelope {
            event_id: "msg_1",
            kind: CALL_FAILED,
            call_ref: "c-1",
            seq: 2,
            occurred_at: 1_700_000_000_123,
        };
        let mut vars = BTreeMap::new();
        vars.insert("order_id".to_owned(), "4711".to_owned());
        let data = failed_data(
            &ident(),
            &vars,
            FailReason::Rejected,
            Some(503),
            "at capacity",
        );
        let body: Value = serde_json::from_str(&compose_body(&env, &data)).unwrap();
        assert_eq!(body["event"], "call.failed");
        assert_eq!(body["event_id"], "msg_1");
        assert_eq!(body["call_ref"], "c-1");
        assert_eq!(body["seq"], 2);
        assert_eq!(body["occurred_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(body["reason"], "rejected");
        assert_eq!(body["sip_code"], 503);
        assert_eq!(body["variables"]["order_id"], "4711");
        assert_eq!(body["call_id"], "1-1@h");
    }

    #[test]
    fn envelope_wins_and_scalars_nest() {
        let env = Envelope {
            event_id: "msg_1",
            kind: "x.y",
            call_ref: "c",
            seq: 1,
            occurred_at: 0,
        };
        let b: Value =
            serde_json::from_str(&compose_body(&env, &json!({"seq": 99, "a": 1}))).unwrap();
        assert_eq!(b["seq"], 1);
        assert_eq!(b["a"], 1);
        let b: Value = serde_json::from_str(&compose_body(&env, &json!(5))).unwrap();
        assert_eq!(b["data"], 5);
    }

    #[test]
    fn notify_names() {
        assert!(valid_notify_name("sms.requested"));
        assert!(valid_notify_name("survey.answer_2"));
        assert!(
            !valid_notify_name("call.completed"),
            "lifecycle is ivrflow's"
        );
        assert!(!valid_notify_name("Sms"));
        assert!(!valid_notify_name("a..b"));
        assert!(!valid_notify_name(""));
    }

    #[test]
    fn ids_and_times() {
        let m = new_message_id();
        assert!(m.starts_with("msg_") && m.len() == 36, "{m}");
        assert_eq!(new_call_ref().len(), 36);
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
