//! Request validation and resource shapes (the HTTP surface is tested against the real
//! binary in tests/api_control.rs).

use super::*;

fn scenarios() -> BTreeSet<String> {
    BTreeSet::from(["order-confirmation".to_owned()])
}

fn campaigns() -> BTreeSet<String> {
    BTreeSet::from(["cart".to_owned()])
}

#[test]
fn dialer_fields_are_checked() {
    let r = parse_call_request(
        br#"{"to":"100","scenario":"order-confirmation","campaign":"cart","timezone":"Europe/Moscow","consent":true}"#,
        None,
        &scenarios(),
        &campaigns(),
    )
    .unwrap();
    assert_eq!(r.dial.campaign.as_deref(), Some("cart"));
    assert_eq!(r.dial.timezone.as_deref(), Some("Europe/Moscow"));
    assert_eq!(r.dial.consent, Some(true));
    let e = err(r#"{"to":"100","scenario":"order-confirmation","campaign":"nope"}"#);
    assert_eq!(e.field.as_deref(), Some("campaign"));
    assert!(e.error.contains("cart"), "{}", e.error);
    let e = err(r#"{"to":"100","scenario":"order-confirmation","timezone":"Mars/Olympus"}"#);
    assert_eq!(e.field.as_deref(), Some("timezone"));
    let e = err(r#"{"to":"100","scenario":"order-confirmation","consent":"yes"}"#);
    assert_eq!(e.field.as_deref(), Some("consent"));
}

fn err(body: &str) -> ApiError {
    parse_call_request(body.as_bytes(), None, &scenarios(), &campaigns()).unwrap_err()
}

#[test]
fn a_good_request_parses() {
    let r = parse_call_request(
        br#"{"to":"+15551230000","scenario":"order-confirmation","variables":{"order_id":4711,"vip":true,"name":"Ann"},"not_before":"2026-11-22T09:30:00Z","idempotency_key":"order-4711"}"#,
        None,
        &scenarios(),
        &campaigns(),
    )
    .unwrap();
    assert_eq!(r.to, "+15551230000");
    assert_eq!(r.variables["order_id"], "4711");
    assert_eq!(r.variables["vip"], "true");
    assert_eq!(r.not_before, events::parse_rfc3339("2026-11-22T09:30:00Z"));
    assert_eq!(r.idempotency_key.as_deref(), Some("order-4711"));
    // The key is not part of the fingerprint; the request is.
    let mut same = r.clone();
    same.idempotency_key = None;
    assert_eq!(r.hash(), same.hash());
    let mut other = r.clone();
    other.to = "100".into();
    assert_ne!(r.hash(), other.hash());
}

#[test]
fn every_error_names_its_field() {
    let cases = [
        (r#"{"scenario":"order-confirmation"}"#, "to", 422),
        (r#"{"to":5,"scenario":"order-confirmation"}"#, "to", 422),
        (r#"{"to":"1 2","scenario":"order-confirmation"}"#, "to", 422),
        (r#"{"to":"100"}"#, "scenario", 422),
        (r#"{"to":"100","scenario":"nope"}"#, "scenario", 422),
        (
            r#"{"to":"100","scenario":"order-confirmation","variables":[1]}"#,
            "variables",
            422,
        ),
        (
            r#"{"to":"100","scenario":"order-confirmation","variables":{"a":{"b":1}}}"#,
            "variables.a",
            422,
        ),
        (
            r#"{"to":"100","scenario":"order-confirmation","variables":{"Bad-Name":"x"}}"#,
            "variables.Bad-Name",
            422,
        ),
        (
            r#"{"to":"100","scenario":"order-confirmation","not_before":"tomorrow"}"#,
            "not_before",
            422,
        ),
        (
            r#"{"to":"100","scenario":"order-confirmation","idempotency_key":"a b"}"#,
            "idempotency_key",
            422,
        ),
        (
            r#"{"to":"100","scenario":"order-confirmation","colour":"red"}"#,
            "colour",
            422,
        ),
    ];
    for (body, field, status) in cases {
        let e = err(body);
        assert_eq!(e.field.as_deref(), Some(field), "{body}: {e:?}");
        assert_eq!(e.status.as_u16(), status, "{body}: {e:?}");
        assert!(!e.error.is_empty());
    }
    for body in ["", "{", "[1]", "\"x\""] {
        let e = err(body);
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(e.field, None);
    }
}

#[test]
fn header_key_and_body_key_must_agree() {
    let b = br#"{"to":"100","scenario":"order-confirmation","idempotency_key":"k1"}"#;
    assert!(parse_call_request(b, Some("k1"), &scenarios(), &campaigns()).is_ok());
    let e = parse_call_request(b, Some("k2"), &scenarios(), &campaigns()).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("idempotency_key"));
    let r = parse_call_request(
        br#"{"to":"100","scenario":"order-confirmation"}"#,
        Some("k3"),
        &scenarios(),
        &campaigns(),
    )
    .unwrap();
    assert_eq!(r.idempotency_key.as_deref(), Some("k3"));
}

#[test]
fn query_strings_decode() {
    assert_eq!(
        parse_query("status=dead&call=a%2Db+c&x&%zz=%4"),
        vec![
            ("status".to_owned(), "dead".to_owned()),
            ("call".to_owned(), "a-b c".to_owned()),
            ("x".to_owned(), String::new()),
            ("%zz".to_owned(), "%4".to_owned()),
        ]
    );
    // Multi-byte characters next to a '%' do not panic.
    assert_eq!(parse_query("a=%é"), vec![("a".to_owned(), "%é".to_owned())]);
}

#[test]
fn call_resource_builds_the_trace() {
    let c = CallRecord {
        id: "c1".into(),
        direction: Direction::Inbound,
        state: crate::store::CallState::Completed,
        scenario: "s".into(),
        to: Some("100".into()),
        from: Some("1555".into()),
        variables: BTreeMap::new(),
        not_before: None,
        idempotency_key: None,
        request_hash: None,
        sip_call_id: Some("sip".into()),
        dial: Default::default(),
        dial_attempts: 0,
        node: "local".into(),
        outcome: Some("confirmed".into()),
        failure_reason: None,
        sip_code: None,
        result: Some(
            json!({"path": ["greet", "confirm"], "outcome": "confirmed", "duration_ms": 2800}),
        ),
        trace: Some(json!([
            {"type": "play", "at_ms": 0, "id": 1, "prompts": ["en/hello"], "duration_ms": 900},
            {"type": "play_finished", "at_ms": 900, "id": 1},
            {"type": "play", "at_ms": 900, "id": 2, "prompts": ["en/press"], "duration_ms": 2000},
            {"type": "dtmf", "at_ms": 1500, "digit": "1"},
            {"type": "play_stopped", "at_ms": 1500, "id": 2, "heard_ms": 600},
            {"type": "play", "at_ms": 2500, "id": 3, "prompts": ["en/bye"], "duration_ms": 1000},
            {"type": "caller_hangup", "at_ms": 2800},
        ])),
        created_at: 0,
        updated_at: 0,
        started_at: Some(0),
        answered_at: Some(0),
        ended_at: Some(3000),
    };
    let ev = EventRecord {
        id: "m1".into(),
        call_id: "c1".into(),
        seq: 1,
        kind: "call.started".into(),
        payload: r#"{"occurred_at":"1970-01-01T00:00:00.000Z"}"#.into(),
        status: EventStatus::Delivered,
        attempts: 2,
        next_attempt_at: 0,
        last_error: None,
        created_at: 0,
        updated_at: 0,
        delivered_at: Some(0),
        position: 1,
    };
    let att = Attempt {
        event_id: "m1".into(),
        attempt: 1,
        started_at: 0,
        duration_ms: 4,
        status_code: Some(500),
        error: Some("HTTP 500".into()),
        result: "refused".into(),
    };
    let j = call_json(&c, &[ev], &[att]);
    assert_eq!(j["trace"]["nodes"], json!(["greet", "confirm"]));
    let p = &j["trace"]["prompts"];
    assert_eq!(p[0]["completed"], true);
    assert_eq!(p[0]["heard_ms"], 900);
    assert_eq!(p[1]["completed"], false);
    assert_eq!(p[1]["heard_ms"], 600);
    assert_eq!(p[2]["heard_ms"], 300, "cut by the caller's hang-up");
    assert_eq!(j["trace"]["inputs"][0]["digit"], "1");
    assert_eq!(j["trace"]["sip"][0]["what"], "invite");
    assert_eq!(j["trace"]["webhooks"][0]["attempts"][0]["status_code"], 500);
    assert_eq!(j["failure"], Value::Null);
    assert_eq!(j["ended_at"], "1970-01-01T00:00:03.000Z");
}
