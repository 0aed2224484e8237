//! Turns the engine's call events into store records: a call row change plus the CRM event
//! it produces, with ids (the call's `call_ref`, each event's message id) minted here from
//! the node's [`Ids`].
//!
//! It remembers each live call by its [`CallHandle`] (the node's one internal identity of a
//! call) from `call.started` until its final event. No I/O: the node hands the records to
//! the store as commits.
//!
//! Outbound calls exist before their SIP leg (the API created them, with `call.queued`):
//! their origin carries that `call_ref`, and starting one updates its row instead of
//! inserting one. A failed attempt that the dialer will retry puts the row back in
//! `queued` with the retry time ([`Recorder::failed_attempt`]).
//!
//! Not here: when events are delivered.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde_json::Value;

use super::ids::Ids;
use crate::crm::CallCompleted;
use crate::crm::events::{self, CallIdentity, FailReason, unix_ms};
use crate::engine::{CallOrigin, EngineEvent};
use crate::sip::ua::CallHandle;
use crate::store::{
    CallChange, CallRecord, CallState, CallUpdate, Direction, NewCall, NewEvent, Record, UnixMs,
};

struct Live {
    call_ref: String,
    ident: CallIdentity,
}

#[derive(Default)]
pub struct Recorder {
    live: HashMap<CallHandle, Live>,
    /// The API's public address: a recording's answer gets
    /// `url: <base>/v1/calls/{call_ref}/recordings/{file}`.
    recordings_url: Option<String>,
}

/// Gives every answer that names a recording file its URL on the API.
fn link_recordings(data: &mut Value, base: &str, call_ref: &str) {
    let Some(answers) = data.get_mut("answers").and_then(Value::as_object_mut) else {
        return;
    };
    let base = base.trim_end_matches('/');
    for answer in answers.values_mut() {
        let Some(file) = answer.get("file").and_then(Value::as_str) else {
            continue;
        };
        let url = format!("{base}/v1/calls/{call_ref}/recordings/{file}");
        if let Some(m) = answer.as_object_mut() {
            m.insert("url".to_owned(), Value::from(url));
        }
    }
}

fn event(ids: &mut Ids, kind: &str, at: UnixMs, data: Value) -> Option<NewEvent> {
    Some(NewEvent {
        id: ids.message_id(),
        kind: kind.to_owned(),
        occurred_at: at,
        data,
    })
}

fn identity(o: &CallOrigin) -> CallIdentity {
    CallIdentity {
        call_id: Some(o.sip_call_id.clone()),
        scenario: o.scenario.clone(),
        direction: o.direction,
        from: o.from.clone(),
        to: o.to.clone(),
        customer_verified: verified(o.direction, &o.variables),
    }
}

/// Outbound calls are verified (we dialled); inbound ones when the built-in says so.
fn verified(direction: &str, vars: &BTreeMap<String, String>) -> bool {
    direction == "outbound"
        || vars
            .get(crate::scenario::builtins::CUSTOMER_VERIFIED)
            .is_some_and(|v| v == "true")
}

fn new_call(call_ref: &str, o: &CallOrigin, state: CallState) -> NewCall {
    NewCall {
        id: call_ref.to_owned(),
        direction: Direction::parse(o.direction).unwrap_or(Direction::Inbound),
        state,
        scenario: o.scenario.clone(),
        to: Some(o.to.clone()),
        from: Some(o.from.clone()),
        variables: o.variables.clone(),
        not_before: None,
        idempotency_key: None,
        request_hash: None,
        sip_call_id: Some(o.sip_call_id.clone()),
        dial: Default::default(),
    }
}

impl Recorder {
    /// `recordings_url`: the API's public base URL, for the recordings' links.
    pub fn new(recordings_url: Option<String>) -> Recorder {
        Recorder {
            recordings_url,
            ..Recorder::default()
        }
    }

    /// The `call_ref` of a live call.
    pub fn call_ref(&self, call: CallHandle) -> Option<&str> {
        self.live.get(&call).map(|l| l.call_ref.as_str())
    }

    /// Records for a lifecycle event (`Effect`s are not lifecycle events: see
    /// [`Recorder::notify`]).
    pub fn lifecycle(&mut self, ids: &mut Ids, ev: EngineEvent) -> Vec<Record> {
        match ev {
            EngineEvent::CallStarted { call, origin, at } => {
                let at = unix_ms(at);
                let call_ref = origin.call_ref.clone().unwrap_or_else(|| ids.call_ref());
                let ident = identity(&origin);
                let data = events::started_data(&ident, &origin.variables);
                if self
                    .live
                    .insert(
                        call,
                        Live {
                            call_ref: call_ref.clone(),
                            ident,
                        },
                    )
                    .is_some()
                {
                    tracing::warn!(call_id = %origin.sip_call_id, "a call handle started twice");
                }
                let change = if origin.call_ref.is_some() {
                    CallChange::Update(CallUpdate {
                        state: Some(CallState::Started),
                        sip_call_id: Some(origin.sip_call_id.clone()),
                        ..CallUpdate::default()
                    })
                } else {
                    CallChange::Insert(new_call(&call_ref, &origin, CallState::Started))
                };
                vec![Record {
                    call_id: call_ref.clone(),
                    at,
                    change,
                    event: event(ids, events::CALL_STARTED, at, data),
                }]
            }
            EngineEvent::CallAnswered {
                call,
                sip_call_id,
                at,
            } => {
                let at = unix_ms(at);
                let Some(live) = self.live.get(&call) else {
                    tracing::error!(call_id = %sip_call_id, "answered call was never started; no event");
                    return Vec::new();
                };
                vec![Record {
                    call_id: live.call_ref.clone(),
                    at,
                    change: CallChange::Update(CallUpdate {
                        state: Some(CallState::Answered),
                        ..CallUpdate::default()
                    }),
                    event: event(
                        ids,
                        events::CALL_ANSWERED,
                        at,
                        events::answered_data(&live.ident),
                    ),
                }]
            }
            EngineEvent::CallFailed {
                call,
                origin,
                reason,
                sip_code,
                detail,
                at,
            } => {
                let at = unix_ms(at);
                let ident = identity(&origin);
                let data =
                    events::failed_data(&ident, &origin.variables, reason, sip_code, &detail);
                let update = CallUpdate {
                    state: Some(CallState::Failed),
                    failure: Some((reason.as_str().to_owned(), sip_code)),
                    ..CallUpdate::default()
                };
                let mut out = Vec::new();
                let call_ref = match self.live.remove(&call) {
                    Some(l) => l.call_ref,
                    None if origin.call_ref.is_some() => {
                        origin.call_ref.clone().unwrap_or_default()
                    }
                    None => {
                        let call_ref = ids.call_ref();
                        out.push(Record {
                            call_id: call_ref.clone(),
                            at,
                            change: CallChange::Insert(new_call(
                                &call_ref,
                                &origin,
                                CallState::Failed,
                            )),
                            event: None,
                        });
                        call_ref
                    }
                };
                out.push(Record {
                    call_id: call_ref,
                    at,
                    change: CallChange::Update(update),
                    event: event(ids, events::CALL_FAILED, at, data),
                });
                out
            }
            EngineEvent::CallCompleted { call, record } => self.completed(ids, call, *record),
            EngineEvent::Effect { .. } | EngineEvent::Trunk(_) => Vec::new(),
        }
    }

    /// A failed outbound attempt (`ev` is its [`EngineEvent::CallFailed`]): `call.failed`
    /// says which attempt it was and, when the dialer will try again, `retry_at` — then the
    /// row goes back to `queued` with that time, not to `failed`.
    pub fn failed_attempt(
        &mut self,
        ids: &mut Ids,
        ev: EngineEvent,
        attempt: u32,
        retry_at: Option<UnixMs>,
    ) -> Vec<Record> {
        let mut out = self.lifecycle(ids, ev);
        if let Some(last) = out.last_mut() {
            if let CallChange::Update(u) = &mut last.change
                && let Some(at) = retry_at
            {
                u.state = Some(CallState::Queued);
                u.not_before = Some(at);
            }
            if let Some(Value::Object(m)) = last.event.as_mut().map(|e| &mut e.data) {
                m.insert("attempt".to_owned(), Value::from(attempt));
                m.insert("final".to_owned(), Value::from(retry_at.is_none()));
                if let Some(at) = retry_at {
                    m.insert("retry_at".to_owned(), Value::from(events::rfc3339(at)));
                }
            }
        }
        out
    }

    /// A queued call the dialer will never place (do-not-call, no consent, bad time zone):
    /// `call.failed` with reason `blocked`.
    pub fn refused(&mut self, ids: &mut Ids, call: &CallRecord, why: &str, now: UnixMs) -> Record {
        let ident = CallIdentity {
            call_id: None,
            scenario: call.scenario.clone(),
            direction: "outbound",
            from: call.from.clone().unwrap_or_default(),
            to: call.to.clone().unwrap_or_default(),
            customer_verified: true,
        };
        let mut data = events::failed_data(&ident, &call.variables, FailReason::Blocked, None, why);
        if let Value::Object(m) = &mut data {
            m.insert("attempt".to_owned(), Value::from(call.dial_attempts));
            m.insert("final".to_owned(), Value::from(true));
        }
        Record {
            call_id: call.id.clone(),
            at: now,
            change: CallChange::Update(CallUpdate {
                state: Some(CallState::Failed),
                failure: Some((FailReason::Blocked.as_str().to_owned(), None)),
                ..CallUpdate::default()
            }),
            event: event(ids, events::CALL_FAILED, now, data),
        }
    }

    fn completed(&mut self, ids: &mut Ids, call: CallHandle, rec: CallCompleted) -> Vec<Record> {
        let at = events::parse_rfc3339(&rec.ended_at).unwrap_or(0);
        let mut out = Vec::new();
        let call_ref = match self.live.remove(&call) {
            Some(l) => l.call_ref,
            None => {
                // Not seen starting (cannot happen with this engine): keep the record anyway.
                tracing::error!(call_id = %rec.call_id, "completed call was never started; recording it now");
                let call_ref = ids.call_ref();
                let origin = CallOrigin {
                    sip_call_id: rec.call_id.clone(),
                    call_ref: None,
                    scenario: rec.scenario.clone(),
                    direction: rec.direction,
                    from: rec.variables.get("caller").cloned().unwrap_or_default(),
                    to: rec.variables.get("dialled").cloned().unwrap_or_default(),
                    variables: rec.variables.clone(),
                };
                out.push(Record {
                    call_id: call_ref.clone(),
                    at,
                    change: CallChange::Insert(new_call(&call_ref, &origin, CallState::Answered)),
                    event: None,
                });
                call_ref
            }
        };
        let mut data = events::completed_data(&rec);
        if let Some(base) = &self.recordings_url {
            link_recordings(&mut data, base, &call_ref);
        }
        let (kind, state, failure) = match &rec.failure {
            None => (events::CALL_COMPLETED, CallState::Completed, None),
            Some((reason, detail)) => {
                if let Value::Object(m) = &mut data {
                    m.insert("event".to_owned(), Value::from(events::CALL_FAILED));
                    m.insert("reason".to_owned(), Value::from(reason.as_str()));
                    m.insert("sip_code".to_owned(), Value::Null);
                    m.insert("detail".to_owned(), Value::from(detail.as_str()));
                }
                (
                    events::CALL_FAILED,
                    CallState::Failed,
                    Some((reason.as_str().to_owned(), None)),
                )
            }
        };
        let mut result = data.clone();
        let trace = match result.as_object_mut() {
            Some(m) => {
                m.remove("event");
                m.remove("trace").unwrap_or(Value::Null)
            }
            None => Value::Null,
        };
        out.push(Record {
            call_id: call_ref,
            at,
            change: CallChange::Update(CallUpdate {
                state: Some(state),
                outcome: rec.outcome.clone(),
                result: Some(result),
                trace: Some(trace),
                failure,
                ..CallUpdate::default()
            }),
            event: event(ids, kind, at, data),
        });
        out
    }

    /// A scenario's `notify` (`sms.requested`, `dnc.requested`, `callback.requested`, …).
    pub fn notify(
        &mut self,
        ids: &mut Ids,
        call: CallHandle,
        name: &str,
        data: &Value,
        at: SystemTime,
    ) -> Option<Record> {
        if !events::valid_notify_name(name) {
            tracing::error!(%call, event = %name, "notify event name is not valid (lower-case words joined by dots, not call.*); not sent");
            return None;
        }
        let Some(live) = self.live.get(&call) else {
            tracing::error!(%call, event = %name, "notify from a call that is not live; not sent");
            return None;
        };
        Some(Record {
            call_id: live.call_ref.clone(),
            at: unix_ms(at),
            change: CallChange::Update(CallUpdate::default()),
            event: event(
                ids,
                name,
                unix_ms(at),
                events::notify_data(&live.ident, data),
            ),
        })
    }
}

impl Recorder {
    /// A claimed call that cannot be dialled before `not_before` (its calling window) goes
    /// back to the store with that time; no event (nothing happened to it yet).
    pub fn deferred(&self, call: &CallRecord, not_before: UnixMs, now: UnixMs) -> Record {
        Record {
            call_id: call.id.clone(),
            at: now,
            change: CallChange::Update(CallUpdate {
                state: Some(CallState::Queued),
                not_before: Some(not_before),
                ..CallUpdate::default()
            }),
            event: None,
        }
    }
}

/// The record that closes a call a node had up when it stopped: found at this node's start,
/// or taken over from a node that died. The detail names the node.
pub fn interrupted(ids: &mut Ids, call: &CallRecord, now: UnixMs) -> Record {
    let ident = CallIdentity {
        call_id: call.sip_call_id.clone(),
        scenario: call.scenario.clone(),
        direction: call.direction.as_str(),
        from: call.from.clone().unwrap_or_default(),
        to: call.to.clone().unwrap_or_default(),
        customer_verified: verified(call.direction.as_str(), &call.variables),
    };
    let vars: BTreeMap<String, String> = call.variables.clone();
    Record {
        call_id: call.id.clone(),
        at: now,
        change: CallChange::Update(CallUpdate {
            state: Some(CallState::Failed),
            failure: Some((FailReason::Interrupted.as_str().to_owned(), None)),
            ..CallUpdate::default()
        }),
        event: event(
            ids,
            events::CALL_FAILED,
            now,
            events::failed_data(
                &ident,
                &vars,
                FailReason::Interrupted,
                None,
                &format!(
                    "node {} stopped while the call was {}",
                    call.node,
                    call.state.as_str()
                ),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::ua::CallHandle;

    fn origin() -> Box<CallOrigin> {
        Box::new(CallOrigin {
            sip_call_id: "sip-1".into(),
            call_ref: None,
            scenario: "s".into(),
            direction: "inbound",
            from: "15551230000".into(),
            to: "100".into(),
            variables: BTreeMap::from([("order_id".to_owned(), "4711".to_owned())]),
        })
    }

    #[test]
    fn a_call_becomes_started_answered_then_notify() {
        let (mut r, mut ids) = (Recorder::new(None), Ids::new(1));
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
        let started = r.lifecycle(
            &mut ids,
            EngineEvent::CallStarted {
                call: CallHandle(1),
                origin: origin(),
                at: t,
            },
        );
        assert_eq!(started.len(), 1);
        let call_ref = started[0].call_id.clone();
        assert!(
            matches!(&started[0].change, CallChange::Insert(c) if c.state == CallState::Started)
        );
        assert_eq!(started[0].event.as_ref().unwrap().kind, "call.started");
        assert_eq!(started[0].at, 1_000);
        assert_eq!(r.call_ref(CallHandle(1)), Some(call_ref.as_str()));

        let answered = r.lifecycle(
            &mut ids,
            EngineEvent::CallAnswered {
                call: CallHandle(1),
                sip_call_id: "sip-1".into(),
                at: t,
            },
        );
        assert_eq!(answered[0].call_id, call_ref);
        let n = r
            .notify(
                &mut ids,
                CallHandle(1),
                "sms.requested",
                &serde_json::json!({"text": "hi"}),
                t,
            )
            .unwrap();
        assert_eq!(n.call_id, call_ref);
        let ev = n.event.unwrap();
        assert_eq!(ev.kind, "sms.requested");
        assert_eq!(ev.data["data"]["text"], "hi");
        assert_eq!(ev.data["from"], "15551230000");
        assert!(
            r.notify(&mut ids, CallHandle(1), "call.completed", &Value::Null, t)
                .is_none()
        );
        assert!(
            r.notify(&mut ids, CallHandle(9), "sms.requested", &Value::Null, t)
                .is_none()
        );
    }

    #[test]
    fn a_recordings_answer_gets_its_url_on_the_api() {
        let mut data = serde_json::json!({
            "answers": {
                "describe": { "input": "recording", "value": "broken", "file": "describe.wav" },
                "confirm": { "input": "dtmf", "value": "1" }
            }
        });
        link_recordings(&mut data, "https://ivr.example/", "c-1");
        assert_eq!(
            data["answers"]["describe"]["url"],
            "https://ivr.example/v1/calls/c-1/recordings/describe.wav"
        );
        assert!(data["answers"]["confirm"].get("url").is_none());
    }

    #[test]
    fn an_inbound_refusal_inserts_then_fails() {
        let (mut r, mut ids) = (Recorder::new(None), Ids::new(1));
        let recs = r.lifecycle(
            &mut ids,
            EngineEvent::CallFailed {
                call: CallHandle(1),
                origin: origin(),
                reason: FailReason::Rejected,
                sip_code: Some(503),
                detail: "at capacity".into(),
                at: SystemTime::UNIX_EPOCH,
            },
        );
        assert_eq!(recs.len(), 2);
        assert!(recs[0].event.is_none());
        let ev = recs[1].event.as_ref().unwrap();
        assert_eq!(ev.kind, "call.failed");
        assert_eq!(ev.data["sip_code"], 503);
        assert_eq!(ev.data["reason"], "rejected");
    }
}
