//! The SQLite store against real files in a temporary directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ivrflow-store-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open_in_dir(&dir.0, "node-a").unwrap()
}

fn outbound(id: &str, key: Option<&str>, hash: &str) -> NewCall {
    NewCall {
        id: id.into(),
        direction: Direction::Outbound,
        state: CallState::Queued,
        scenario: "order-confirmation".into(),
        to: Some("15551230000".into()),
        from: None,
        variables: BTreeMap::from([("order_id".to_owned(), "4711".to_owned())]),
        not_before: Some(5_000),
        idempotency_key: key.map(str::to_owned),
        request_hash: Some(hash.into()),
        sip_call_id: None,
        dial: DialOptions {
            campaign: Some("cart".into()),
            timezone: Some("Europe/Moscow".into()),
            consent: Some(true),
        },
    }
}

fn ev(id: &str, kind: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        kind: kind.into(),
        occurred_at: 1_000,
        data: json!({ "k": kind }),
    }
}

fn inbound_started(call: &str, event: &str) -> Record {
    Record {
        call_id: call.into(),
        at: 100,
        change: CallChange::Insert(NewCall {
            id: call.into(),
            direction: Direction::Inbound,
            state: CallState::Started,
            scenario: "s".into(),
            to: Some("100".into()),
            from: Some("15551230000".into()),
            variables: BTreeMap::new(),
            not_before: None,
            idempotency_key: None,
            request_hash: None,
            sip_call_id: Some("sip-1".into()),
            dial: DialOptions::default(),
        }),
        event: Some(ev(event, "call.started")),
    }
}

fn update(call: &str, state: CallState, event: &str, kind: &str) -> Record {
    Record {
        call_id: call.into(),
        at: 200,
        change: CallChange::Update(CallUpdate {
            state: Some(state),
            ..CallUpdate::default()
        }),
        event: Some(ev(event, kind)),
    }
}

fn ids(v: &[EventRecord]) -> Vec<&str> {
    v.iter().map(|e| e.id.as_str()).collect()
}

fn done(id: &str, attempt: u32, transition: Transition) -> AttemptDone {
    AttemptDone {
        attempt: Attempt {
            event_id: id.into(),
            attempt,
            started_at: 0,
            duration_ms: 3,
            status_code: Some(200),
            error: None,
            result: "delivered".into(),
        },
        transition,
    }
}

#[test]
fn migrations_are_versioned_and_idempotent() {
    let dir = TempDir::new("migrate");
    let s = open(&dir);
    assert_eq!(s.schema_version().unwrap(), migrations::latest());
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = s
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    drop(s);
    // Opening again applies nothing and keeps the data.
    let s = open(&dir);
    assert_eq!(s.schema_version().unwrap(), migrations::latest());
    // A newer schema than this build knows is refused, not clobbered.
    s.conn
        .execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES (999, 'future', 0)",
            [],
        )
        .unwrap();
    drop(s);
    match SqliteStore::open_in_dir(&dir.0, "n") {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[test]
fn create_call_is_idempotent_by_key() {
    let dir = TempDir::new("idem");
    let mut s = open(&dir);
    let c = outbound("c1", Some("order-4711"), "h1");
    let Created::New(rec) = s.create_call(&c, &ev("m1", "call.queued"), 10).unwrap() else {
        panic!("first create is new")
    };
    assert_eq!(rec.state, CallState::Queued);
    assert_eq!(rec.node, "node-a");
    assert_eq!(rec.variables["order_id"], "4711");
    // Same key, same request: the same call, no second event.
    let again = outbound("c2", Some("order-4711"), "h1");
    match s.create_call(&again, &ev("m2", "call.queued"), 11).unwrap() {
        Created::Existing(r) => assert_eq!(r.id, "c1"),
        other => panic!("{other:?}"),
    }
    // Same key, different request: conflict.
    let other = outbound("c3", Some("order-4711"), "h2");
    assert!(matches!(
        s.create_call(&other, &ev("m3", "call.queued"), 12).unwrap(),
        Created::Conflict(r) if r.id == "c1"
    ));
    // No key: always new.
    assert!(matches!(
        s.create_call(&outbound("c4", None, "h1"), &ev("m4", "call.queued"), 13)
            .unwrap(),
        Created::New(_)
    ));
    let evs = s.list_events(&EventFilter {
        limit: 100,
        ..EventFilter::default()
    });
    assert_eq!(ids(&evs.unwrap()), vec!["m1", "m4"]);
    let e = s.get_event("m1").unwrap().unwrap();
    assert_eq!(e.seq, 1);
    let body: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
    assert_eq!(body["event"], "call.queued");
    assert_eq!(body["event_id"], "m1");
    assert_eq!(body["call_ref"], "c1");
    assert_eq!(body["seq"], 1);
    assert_eq!(body["k"], "call.queued");
}

#[test]
fn records_commit_in_order_and_a_bad_one_rolls_back_alone() {
    let dir = TempDir::new("record");
    let mut s = open(&dir);
    let res = s
        .record(
            &[
                inbound_started("a", "a1"),
                update("a", CallState::Answered, "a2", "call.answered"),
                update("nope", CallState::Answered, "x1", "call.answered"),
                Record {
                    call_id: "a".into(),
                    at: 300,
                    change: CallChange::Update(CallUpdate {
                        state: Some(CallState::Completed),
                        outcome: Some("confirmed".into()),
                        result: Some(json!({"outcome": "confirmed"})),
                        trace: Some(json!([{"type": "dtmf"}])),
                        ..CallUpdate::default()
                    }),
                    event: Some(ev("a3", "call.completed")),
                },
            ],
            1_000,
        )
        .unwrap();
    assert!(res[0].is_ok() && res[1].is_ok() && res[3].is_ok());
    assert!(matches!(res[2], Err(StoreError::NoSuchCall(_))));
    assert!(s.get_event("x1").unwrap().is_none(), "rolled back");
    drop(s);
    // Durable: a new connection sees it all.
    let mut s = open(&dir);
    let c = s.get_call("a").unwrap().unwrap();
    assert_eq!(c.state, CallState::Completed);
    assert_eq!(c.outcome.as_deref(), Some("confirmed"));
    assert_eq!(
        (c.started_at, c.answered_at, c.ended_at),
        (Some(100), Some(200), Some(300))
    );
    assert_eq!(c.trace, Some(json!([{"type": "dtmf"}])));
    let evs = s.call_events("a").unwrap();
    assert_eq!(ids(&evs), vec!["a1", "a2", "a3"]);
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(evs.iter().all(|e| e.status == EventStatus::Pending));
}

#[test]
fn leases_follow_per_call_order() {
    let dir = TempDir::new("order");
    let mut s = open(&dir);
    s.record(
        &[
            inbound_started("a", "a1"),
            update("a", CallState::Answered, "a2", "call.answered"),
            update("a", CallState::Completed, "a3", "call.completed"),
            inbound_started("b", "b1"),
        ],
        1_000,
    )
    .unwrap();
    let now = 2_000;
    let got = s.lease_due(now, now + 10_000, 10).unwrap();
    assert_eq!(ids(&got), vec!["a1", "b1"], "one head per call");
    assert!(
        s.lease_due(now, now + 10_000, 10).unwrap().is_empty(),
        "leased events are not handed out twice"
    );
    assert_eq!(s.next_due().unwrap(), Some(now + 10_000));

    s.finish_attempts(&[done("a1", 1, Transition::Delivered)], now)
        .unwrap();
    assert_eq!(
        ids(&s.lease_due(now, now + 10_000, 10).unwrap()),
        vec!["a2"]
    );
    // a2 fails; a3 must wait behind it, even though a3 is "due".
    s.finish_attempts(
        &[done(
            "a2",
            1,
            Transition::Retry {
                at: now + 5_000,
                error: "HTTP 500".into(),
            },
        )],
        now,
    )
    .unwrap();
    assert!(
        s.lease_due(now + 4_999, now + 20_000, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.next_due().unwrap(), Some(now + 5_000));
    let got = s.lease_due(now + 5_000, now + 20_000, 10).unwrap();
    assert_eq!(ids(&got), vec!["a2"]);
    assert_eq!(got[0].attempts, 1);
    assert_eq!(got[0].last_error.as_deref(), Some("HTTP 500"));
    // Dead releases the next one.
    s.finish_attempts(
        &[done(
            "a2",
            2,
            Transition::Dead {
                error: "410 Gone".into(),
            },
        )],
        now + 5_000,
    )
    .unwrap();
    assert_eq!(
        ids(&s.lease_due(now + 5_000, now + 20_000, 10).unwrap()),
        vec!["a3"]
    );
    let a2 = s.get_event("a2").unwrap().unwrap();
    assert_eq!(a2.status, EventStatus::Dead);
    assert_eq!(a2.attempts, 2);
    // The attempts log.
    let log = s.call_attempts("a").unwrap();
    assert_eq!(
        log.iter()
            .map(|a| (a.event_id.as_str(), a.attempt))
            .collect::<Vec<_>>(),
        vec![("a1", 1), ("a2", 1), ("a2", 2)]
    );
    // A restart forgets leases: b1 and a3 are due again at once.
    assert_eq!(s.release_leases().unwrap(), 2);
    assert_eq!(
        ids(&s.lease_due(now + 5_000, now + 20_000, 10).unwrap()),
        vec!["a3", "b1"],
        "oldest due first, then insertion order"
    );
}

#[test]
fn replay_and_cancel() {
    let dir = TempDir::new("replay");
    let mut s = open(&dir);
    s.record(&[inbound_started("a", "a1")], 1_000).unwrap();
    s.lease_due(1_000, 2_000, 10).unwrap();
    s.finish_attempts(
        &[done("a1", 1, Transition::Dead { error: "x".into() })],
        1_000,
    )
    .unwrap();
    let dead = s
        .list_events(&EventFilter {
            status: Some(EventStatus::Dead),
            limit: 10,
            ..EventFilter::default()
        })
        .unwrap();
    assert_eq!(ids(&dead), vec!["a1"]);
    match s.replay_event("a1", 5_000).unwrap() {
        Replayed::Done(e) => {
            assert_eq!(e.status, EventStatus::Pending);
            assert_eq!(e.attempts, 0);
            assert_eq!(e.next_attempt_at, 5_000);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.replay_event("a1", 5_000).unwrap(),
        Replayed::AlreadyPending(_)
    ));
    assert_eq!(s.replay_event("zz", 5_000).unwrap(), Replayed::NotFound);
    assert_eq!(ids(&s.lease_due(5_000, 6_000, 10).unwrap()), vec!["a1"]);

    s.create_call(&outbound("q", None, "h"), &ev("q1", "call.queued"), 1_000)
        .unwrap();
    match s.cancel_call("q", 2_000).unwrap() {
        Cancelled::Done(c) => {
            assert_eq!(c.state, CallState::Cancelled);
            assert_eq!(c.ended_at, Some(2_000));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.cancel_call("q", 2_000).unwrap(),
        Cancelled::NotQueued(_)
    ));
    assert!(matches!(
        s.cancel_call("a", 2_000).unwrap(),
        Cancelled::NotQueued(_)
    ));
    assert_eq!(s.cancel_call("zz", 2_000).unwrap(), Cancelled::NotFound);
}

#[test]
fn live_calls_stats_and_paging() {
    let dir = TempDir::new("stats");
    let mut s = open(&dir);
    s.record(
        &[
            inbound_started("a", "a1"),
            inbound_started("b", "b1"),
            update("b", CallState::Completed, "b2", "call.completed"),
        ],
        1_000,
    )
    .unwrap();
    s.create_call(&outbound("q", None, "h"), &ev("q1", "call.queued"), 500)
        .unwrap();
    let live = s.live_calls("node-a").unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].id, "a");
    assert!(s.live_calls("node-b").unwrap().is_empty());
    let st = s.stats().unwrap();
    assert_eq!(st.calls_by_state["started"], 1);
    assert_eq!(st.calls_by_state["completed"], 1);
    assert_eq!(st.calls_by_state["queued"], 1);
    assert_eq!(st.events_by_status["pending"], 4);
    assert_eq!(st.oldest_pending, Some(500));
    let page1 = s
        .list_events(&EventFilter {
            limit: 2,
            ..EventFilter::default()
        })
        .unwrap();
    let page2 = s
        .list_events(&EventFilter {
            limit: 2,
            after: Some(page1[1].position),
            ..EventFilter::default()
        })
        .unwrap();
    assert_eq!(ids(&page1), vec!["a1", "b1"]);
    assert_eq!(ids(&page2), vec!["b2", "q1"]);
    let only_b = s
        .list_events(&EventFilter {
            call_id: Some("b".into()),
            limit: 10,
            ..EventFilter::default()
        })
        .unwrap();
    assert_eq!(ids(&only_b), vec!["b1", "b2"]);
}

#[test]
fn two_connections_share_the_file() {
    // The CLI replays while the server runs: a second connection writes, the first sees it.
    let dir = TempDir::new("share");
    let mut server = open(&dir);
    server.record(&[inbound_started("a", "a1")], 1_000).unwrap();
    server.lease_due(1_000, 2_000, 10).unwrap();
    server
        .finish_attempts(
            &[done("a1", 1, Transition::Dead { error: "x".into() })],
            1_000,
        )
        .unwrap();
    let mut cli = open(&dir);
    assert!(matches!(
        cli.replay_event("a1", 3_000).unwrap(),
        Replayed::Done(_)
    ));
    assert_eq!(
        ids(&server.lease_due(3_000, 4_000, 10).unwrap()),
        vec!["a1"]
    );
}

#[test]
fn queued_calls_retry_fields_and_dnc_survive_a_reopen() {
    let dir = TempDir::new("queued");
    {
        let mut s = open(&dir);
        s.create_call(&outbound("q1", None, "h1"), &ev("m1", "call.queued"), 1_000)
            .unwrap();
        s.create_call(&outbound("q2", None, "h2"), &ev("m2", "call.queued"), 1_001)
            .unwrap();
        // q1 is dialled, gets no answer, and goes back to the queue for a retry.
        let started = Record {
            call_id: "q1".into(),
            at: 6_000,
            change: CallChange::Update(CallUpdate {
                state: Some(CallState::Started),
                sip_call_id: Some("sip-q1".into()),
                dial_attempts: Some(1),
                ..CallUpdate::default()
            }),
            event: None,
        };
        let retry = Record {
            call_id: "q1".into(),
            at: 36_000,
            change: CallChange::Update(CallUpdate {
                state: Some(CallState::Queued),
                failure: Some(("no_answer".into(), None)),
                not_before: Some(636_000),
                ..CallUpdate::default()
            }),
            event: Some(ev("m3", "call.failed")),
        };
        for r in s.record(&[started, retry], 40_000).unwrap() {
            r.unwrap();
        }
        assert!(s.add_dnc("15550001111", "api", 1).unwrap());
        assert!(!s.add_dnc("15550001111", "call", 2).unwrap());
        assert!(s.add_dnc("15550002222", "call", 3).unwrap());
        assert!(s.remove_dnc("15550002222").unwrap());
        assert!(!s.remove_dnc("15550002222").unwrap());
    }
    let mut s = open(&dir);
    let q = s.queued_calls().unwrap();
    let ids: Vec<&str> = q.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["q2", "q1"], "ordered by not_before");
    let q1 = &q[1];
    assert_eq!(q1.dial_attempts, 1);
    assert_eq!(q1.not_before, Some(636_000));
    assert_eq!(q1.ended_at, None, "a call queued for a retry has not ended");
    assert_eq!(q1.dial.campaign.as_deref(), Some("cart"));
    assert_eq!(q1.dial.timezone.as_deref(), Some("Europe/Moscow"));
    assert_eq!(q1.dial.consent, Some(true));
    assert_eq!(q[0].dial_attempts, 0);
    assert_eq!(s.dnc_numbers().unwrap(), ["15550001111"]);
}

#[test]
fn calls_list_newest_first_with_filters_and_pages() {
    let dir = TempDir::new("list");
    let mut s = open(&dir);
    // Five outbound calls (two of campaign cart, one of none, …) created at 10, 20, …
    for (i, campaign) in [Some("cart"), None, Some("cart"), Some("survey"), None]
        .into_iter()
        .enumerate()
    {
        let mut c = outbound(&format!("c{i}"), None, "h");
        c.dial.campaign = campaign.map(str::to_owned);
        let Created::New(_) = s
            .create_call(
                &c,
                &ev(&format!("q{i}"), "call.queued"),
                10 * (i as i64 + 1),
            )
            .unwrap()
        else {
            panic!("new call")
        };
    }
    s.record(&[inbound_started("in1", "s1")], 60).unwrap();
    let ids = |v: Vec<CallRecord>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let all = CallFilter {
        limit: 100,
        ..CallFilter::default()
    };
    assert_eq!(
        ids(s.list_calls(&all).unwrap()),
        ["in1", "c4", "c3", "c2", "c1", "c0"]
    );
    // A listing carries no trace.
    assert!(
        s.list_calls(&all)
            .unwrap()
            .iter()
            .all(|c| c.trace.is_none())
    );
    let cart = CallFilter {
        campaign: Some("cart".into()),
        ..all.clone()
    };
    assert_eq!(ids(s.list_calls(&cart).unwrap()), ["c2", "c0"]);
    let default = CallFilter {
        campaign: Some("default".into()),
        campaign_or_none: true,
        ..all.clone()
    };
    assert_eq!(ids(s.list_calls(&default).unwrap()), ["c4", "c1"]);
    let inbound = CallFilter {
        direction: Some(Direction::Inbound),
        state: Some(CallState::Started),
        ..all.clone()
    };
    assert_eq!(ids(s.list_calls(&inbound).unwrap()), ["in1"]);
    let other = CallFilter {
        scenario: Some("s".into()),
        ..all.clone()
    };
    assert_eq!(ids(s.list_calls(&other).unwrap()), ["in1"]);
    // Pages of two, following the cursor; calls created in the same millisecond are
    // ordered by id and none is skipped or repeated.
    let mut c = outbound("c5", None, "h");
    c.dial.campaign = None;
    s.create_call(&c, &ev("q5", "call.queued"), 50).unwrap();
    let mut seen = Vec::new();
    let mut page = CallFilter {
        limit: 2,
        ..CallFilter::default()
    };
    loop {
        let got = s.list_calls(&page).unwrap();
        if got.is_empty() {
            break;
        }
        let last = got.last().unwrap();
        page.after = Some((last.created_at, last.id.clone()));
        seen.extend(ids(got));
    }
    assert_eq!(seen, ["in1", "c5", "c4", "c3", "c2", "c1", "c0"]);
}

#[test]
fn the_dialer_queue_counts_by_campaign_and_place() {
    let dir = TempDir::new("queue");
    let mut s = open(&dir);
    // outbound() is due at 5 000.
    for (id, campaign) in [("a", Some("cart")), ("b", Some("cart")), ("c", None)] {
        let mut c = outbound(id, None, "h");
        c.dial.campaign = campaign.map(str::to_owned);
        s.create_call(&c, &ev(&format!("q{id}"), "call.queued"), 1)
            .unwrap();
    }
    s.record(&[update("b", CallState::Started, "sb", "call.started")], 10)
        .unwrap();
    let q = |s: &mut SqliteStore, now| {
        s.dialer_queue(now)
            .unwrap()
            .into_iter()
            .map(|q| (q.campaign, q.state, q.calls))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(&mut s, 1_000),
        [
            (None, "waiting".to_owned(), 1),
            (Some("cart".to_owned()), "started".to_owned(), 1),
            (Some("cart".to_owned()), "waiting".to_owned(), 1),
        ]
    );
    assert_eq!(q(&mut s, 6_000)[0], (None, "due".to_owned(), 1));
    // Finished calls leave the queue.
    s.record(
        &[update("b", CallState::Completed, "cb", "call.completed")],
        20,
    )
    .unwrap();
    s.cancel_call("a", 30).unwrap();
    assert_eq!(q(&mut s, 6_000), [(None, "due".to_owned(), 1)]);
}

#[test]
fn migration_3_fills_the_campaign_of_existing_calls() {
    let dir = TempDir::new("mig3");
    let mut s = open(&dir);
    s.create_call(&outbound("old", None, "h"), &ev("q", "call.queued"), 1)
        .unwrap();
    // As a version-2 database had it: the campaign only inside `dial`.
    undo_migration_4(&s.conn);
    s.conn
        .execute_batch(
            "UPDATE calls SET campaign = NULL; DROP INDEX calls_by_campaign; DROP INDEX calls_by_created; \
             ALTER TABLE calls DROP COLUMN campaign; DELETE FROM schema_version WHERE version = 3;",
        )
        .unwrap();
    drop(s);
    let mut s = open(&dir);
    let cart = CallFilter {
        campaign: Some("cart".into()),
        limit: 10,
        ..CallFilter::default()
    };
    assert_eq!(s.list_calls(&cart).unwrap().len(), 1);
}

/// Bring a database back to schema version 3.
fn undo_migration_4(conn: &Connection) {
    conn.execute_batch(
        "DROP INDEX calls_due; DROP INDEX calls_by_number; DROP INDEX calls_trunk_busy; \
             DROP INDEX calls_trunk_recent; DROP INDEX calls_by_claim_owner; DROP INDEX calls_live_by_node; \
             DROP INDEX events_by_lease_owner; DROP TABLE nodes; DROP TABLE campaigns; \
             ALTER TABLE calls DROP COLUMN to_norm; ALTER TABLE calls DROP COLUMN claim_owner; \
             ALTER TABLE calls DROP COLUMN claim_until; ALTER TABLE calls DROP COLUMN claimed_at; \
             ALTER TABLE calls DROP COLUMN trunk; ALTER TABLE events DROP COLUMN lease_owner; \
             DELETE FROM schema_version WHERE version = 4;",
    )
    .unwrap();
}

#[test]
fn migration_4_normalises_the_numbers_of_existing_calls() {
    let dir = TempDir::new("mig4");
    let mut s = open(&dir);
    let mut c = outbound("old", None, "h");
    c.to = Some("+7 (916) 123-45-67".into());
    c.not_before = Some(0);
    s.create_call(&c, &ev("q", "call.queued"), 1).unwrap();
    // As a version-3 database had it: no claims, owners, nodes or campaigns.
    undo_migration_4(&s.conn);
    drop(s);
    let mut s = open(&dir).require_claims(true);
    assert_eq!(s.schema_version().unwrap(), migrations::latest());
    assert!(s.add_dnc("+79161234567", "api", 2).unwrap());
    let got = s.claim_due("node-a", 10, 10, 1_000, &[], &[]).unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].dnc,
        "the old call's number was normalised and matched"
    );
}

#[test]
fn without_claims_required_a_single_node_starts_calls_as_before() {
    let dir = TempDir::new("legacy");
    let mut s = open(&dir);
    s.create_call(&outbound("q", None, "h"), &ev("q1", "call.queued"), 1)
        .unwrap();
    let res = s
        .record(&[update("q", CallState::Started, "s1", "call.started")], 10)
        .unwrap();
    assert!(res[0].is_ok());
    let mut strict = open(&dir).require_claims(true);
    strict
        .create_call(&outbound("r", None, "h"), &ev("r1", "call.queued"), 1)
        .unwrap();
    let res = strict
        .record(&[update("r", CallState::Started, "s2", "call.started")], 10)
        .unwrap();
    assert!(matches!(res[0], Err(StoreError::NotClaimed(_))));
}
