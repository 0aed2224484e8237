//! The store conformance suite: the same tests against SQLite (a file in a temporary
//! directory) and PostgreSQL (a throwaway cluster, `tests/common/pg.rs`, a fresh database
//! per test), both opened through `store::open` as a node opens them.
//!
//! "Two nodes" are two stores on one database, with different node names, and where it
//! matters they run from two threads at once. Time is always an argument; no test sleeps.
//! PostgreSQL missing fails these tests with the fix (`./scripts/setup.sh`), never skips.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::json;

use common::pg;
use ivrflow::store::{
    self, Attempt, AttemptDone, CallChange, CallFilter, CallRecord, CallState, CallUpdate,
    Cancelled, Created, DialOptions, Direction, EventFilter, EventRecord, EventStatus, NewCall,
    NewEvent, Record, Replayed, Store, StoreError, Transition, TrunkQuota,
};

type Boxed = Box<dyn Store + Send>;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ivrflow-conformance-{}-{}",
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

/// One database, of either kind.
struct Db {
    dir: TempDir,
    /// `None`: SQLite in `dir`.
    url: Option<String>,
}

impl Db {
    fn sqlite() -> Db {
        Db {
            dir: TempDir::new(),
            url: None,
        }
    }

    fn postgres() -> Db {
        Db {
            dir: TempDir::new(),
            url: Some(pg::fresh_database()),
        }
    }

    fn open(&self, node: &str) -> Boxed {
        store::open(self.url.as_deref(), &self.dir.0, node)
            .unwrap_or_else(|e| panic!("open the store: {e}"))
    }

    fn try_open(&self, node: &str) -> Result<Boxed, StoreError> {
        store::open(self.url.as_deref(), &self.dir.0, node)
    }

    /// Run SQL straight on the database (behind the store's back).
    fn raw(&self, sql: &str) {
        match &self.url {
            None => {
                let c = rusqlite::Connection::open(self.dir.0.join("ivrflow.sqlite3")).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Some(url) => {
                let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
                c.batch_execute(sql).unwrap();
            }
        }
    }
}

// ───────────────────────────── fixtures ─────────────────────────────

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

/// An outbound call to `number`, due at `due`, in `campaign`.
fn due_call(id: &str, number: &str, campaign: Option<&str>, due: i64) -> NewCall {
    let mut c = outbound(id, None, "h");
    c.to = Some(number.into());
    c.not_before = Some(due);
    c.dial.campaign = campaign.map(str::to_owned);
    c
}

fn ev(id: &str, kind: &str) -> NewEvent {
    NewEvent {
        id: id.into(),
        kind: kind.into(),
        occurred_at: 1_000,
        data: json!({ "k": kind }),
    }
}

fn queue(s: &mut Boxed, c: &NewCall, at: i64) {
    let msg = format!("q-{}", c.id);
    match s.create_call(c, &ev(&msg, "call.queued"), at).unwrap() {
        Created::New(_) => {}
        other => panic!("{other:?}"),
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

/// The one record's result.
fn record1(s: &mut Boxed, r: Record, now: i64) -> Result<(), StoreError> {
    s.record(&[r], now).unwrap().pop().unwrap()
}

fn start(s: &mut Boxed, call: &str, now: i64) -> Result<(), StoreError> {
    let r = Record {
        call_id: call.into(),
        at: now,
        change: CallChange::Update(CallUpdate {
            state: Some(CallState::Started),
            sip_call_id: Some(format!("sip-{call}")),
            dial_attempts: Some(1),
            ..CallUpdate::default()
        }),
        event: Some(ev(&format!("s-{call}"), "call.started")),
    };
    record1(s, r, now)
}

fn finish(s: &mut Boxed, call: &str, state: CallState, why: &str, now: i64) {
    let mut u = CallUpdate {
        state: Some(state),
        ..CallUpdate::default()
    };
    if state == CallState::Failed {
        u.failure = Some((why.into(), None));
    } else {
        u.outcome = Some(why.into());
    }
    let r = Record {
        call_id: call.into(),
        at: now,
        change: CallChange::Update(u),
        event: Some(ev(&format!("f-{call}"), "call.completed")),
    };
    record1(s, r, now).unwrap();
}

fn ids(v: &[EventRecord]) -> Vec<&str> {
    v.iter().map(|e| e.id.as_str()).collect()
}

fn call_ids(v: &[store::Claimed]) -> Vec<String> {
    v.iter().map(|c| c.call.id.clone()).collect()
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

fn trunk(name: &str, max: Option<u32>, cps: Option<f64>, campaigns: &[&str]) -> TrunkQuota {
    TrunkQuota {
        name: name.into(),
        max_concurrent: max,
        calls_per_second: cps,
        campaigns: campaigns.iter().map(|c| c.to_string()).collect(),
    }
}

fn claim(s: &mut Boxed, now: i64, limit: u32, trunks: &[TrunkQuota]) -> Vec<store::Claimed> {
    let node = s.node().to_owned();
    s.claim_due(&node, now, limit, 30_000, trunks, &[]).unwrap()
}

// ───────────────────────────── the tests ─────────────────────────────

fn migrations_from_empty_and_reopen(db: &Db) {
    let mut s = db.open("node-a");
    let v = s.schema_version().unwrap();
    assert!(v >= 1);
    queue(&mut s, &outbound("c1", Some("k"), "h"), 10);
    drop(s);
    // Opening again applies nothing and keeps the data.
    let mut s = db.open("node-b");
    assert_eq!(s.schema_version().unwrap(), v);
    assert_eq!(s.get_call("c1").unwrap().unwrap().node, "node-a");
    drop(s);
    // A newer schema than this build knows is refused, not clobbered.
    db.raw(
        "INSERT INTO schema_version (version, description, applied_at) VALUES (999, 'future', 0)",
    );
    match db.try_open("n") {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

fn create_call_is_idempotent_by_key(db: &Db) {
    let mut s = db.open("node-a");
    let c = outbound("c1", Some("order-4711"), "h1");
    let Created::New(rec) = s.create_call(&c, &ev("m1", "call.queued"), 10).unwrap() else {
        panic!("first create is new")
    };
    assert_eq!(rec.state, CallState::Queued);
    assert_eq!(rec.node, "node-a");
    assert_eq!(rec.variables["order_id"], "4711");
    assert_eq!(rec.dial.campaign.as_deref(), Some("cart"));
    // Same key, same request — even through another node: the same call, no second event.
    let mut other_node = db.open("node-b");
    let again = outbound("c2", Some("order-4711"), "h1");
    match other_node
        .create_call(&again, &ev("m2", "call.queued"), 11)
        .unwrap()
    {
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
    let evs = s
        .list_events(&EventFilter {
            limit: 100,
            ..EventFilter::default()
        })
        .unwrap();
    assert_eq!(ids(&evs), vec!["m1", "m4"]);
    let e = s.get_event("m1").unwrap().unwrap();
    assert_eq!(e.seq, 1);
    let body: serde_json::Value = serde_json::from_str(&e.payload).unwrap();
    assert_eq!(body["event"], "call.queued");
    assert_eq!(body["event_id"], "m1");
    assert_eq!(body["call_ref"], "c1");
    assert_eq!(body["seq"], 1);
    assert_eq!(body["k"], "call.queued");
}

fn records_commit_in_order_and_a_bad_one_rolls_back_alone(db: &Db) {
    let mut s = db.open("node-a");
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
    assert!(
        res[0].is_ok() && res[1].is_ok() && res[3].is_ok(),
        "{res:?}"
    );
    assert!(matches!(res[2], Err(StoreError::NoSuchCall(_))));
    assert!(s.get_event("x1").unwrap().is_none(), "rolled back");
    drop(s);
    // Durable: a new connection sees it all.
    let mut s = db.open("node-a");
    let c = s.get_call("a").unwrap().unwrap();
    assert_eq!(c.state, CallState::Completed);
    assert_eq!(c.outcome.as_deref(), Some("confirmed"));
    assert_eq!(
        (c.started_at, c.answered_at, c.ended_at),
        (Some(100), Some(200), Some(300))
    );
    assert_eq!(c.trace, Some(json!([{"type": "dtmf"}])));
    assert_eq!(c.result, Some(json!({"outcome": "confirmed"})));
    let evs = s.call_events("a").unwrap();
    assert_eq!(ids(&evs), vec!["a1", "a2", "a3"]);
    assert_eq!(evs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(evs.iter().all(|e| e.status == EventStatus::Pending));
}

fn leases_follow_per_call_order(db: &Db) {
    let mut s = db.open("node-a");
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
    let log = s.call_attempts("a").unwrap();
    assert_eq!(
        log.iter()
            .map(|a| (a.event_id.as_str(), a.attempt))
            .collect::<Vec<_>>(),
        vec![("a1", 1), ("a2", 1), ("a2", 2)]
    );
    // A restart gives this node's leases back: b1 and a3 are due again at once.
    assert_eq!(s.release_leases().unwrap(), 2);
    assert_eq!(
        ids(&s.lease_due(now + 5_000, now + 20_000, 10).unwrap()),
        vec!["a3", "b1"],
        "oldest due first, then insertion order"
    );
}

fn replay_and_cancel(db: &Db) {
    let mut s = db.open("node-a");
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

fn live_calls_stats_and_paging(db: &Db) {
    let mut s = db.open("node-a");
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

fn queued_calls_retry_fields_and_dnc_survive_a_reopen(db: &Db) {
    {
        let mut s = db.open("node-a");
        s.create_call(&outbound("q1", None, "h1"), &ev("m1", "call.queued"), 1_000)
            .unwrap();
        let mut q2 = outbound("q2", None, "h2");
        q2.to = Some("15559998888".into());
        s.create_call(&q2, &ev("m2", "call.queued"), 1_001).unwrap();
        // q1 is claimed, dialled, gets no answer, and goes back to the queue for a retry.
        let got = claim(&mut s, 6_000, 1, &[]);
        assert_eq!(call_ids(&got), ["q1"]);
        start(&mut s, "q1", 6_000).unwrap();
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
        record1(&mut s, retry, 40_000).unwrap();
        assert!(s.add_dnc("15550001111", "api", 1).unwrap());
        assert!(
            !s.add_dnc("1-555-000-1111", "call", 2).unwrap(),
            "normalised"
        );
        assert!(s.add_dnc("15550002222", "call", 3).unwrap());
        assert!(
            s.remove_dnc("+1 555 000 2222".trim_start_matches('+'))
                .unwrap()
        );
        assert!(!s.remove_dnc("15550002222").unwrap());
    }
    let mut s = db.open("node-a");
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
    // The retry gave the claim back: due again at 636 000, claimable then and not before.
    assert!(
        claim(&mut s, 635_999, 10, &[])
            .iter()
            .all(|c| c.call.id != "q1")
    );
    assert_eq!(call_ids(&claim(&mut s, 636_000, 10, &[])), ["q1"]);
}

fn calls_list_newest_first_with_filters_and_pages(db: &Db) {
    let mut s = db.open("node-a");
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
    // Pages of two; calls created in the same millisecond are ordered by id, bytewise on
    // both backends ("C5" < "c4" < "c5"), none skipped or repeated.
    for id in ["c5", "C5"] {
        let mut c = outbound(id, None, "h");
        c.dial.campaign = None;
        s.create_call(&c, &ev(&format!("q{id}"), "call.queued"), 50)
            .unwrap();
    }
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
    assert_eq!(seen, ["in1", "c5", "c4", "C5", "c3", "c2", "c1", "c0"]);
}

fn the_dialer_queue_counts_by_campaign_and_place(db: &Db) {
    let mut s = db.open("node-a");
    for (i, (id, campaign)) in [("a", Some("cart")), ("b", Some("cart")), ("c", None)]
        .into_iter()
        .enumerate()
    {
        let c = due_call(id, &format!("1555000000{i}"), campaign, 5_000);
        s.create_call(&c, &ev(&format!("q{id}"), "call.queued"), 1)
            .unwrap();
    }
    // b is claimed and dialled.
    let node = s.node().to_owned();
    let got = s.claim_due(&node, 5_000, 10, 30_000, &[], &[]).unwrap();
    assert_eq!(got.len(), 3);
    start(&mut s, "b", 5_000).unwrap();
    for c in ["a", "c"] {
        assert!(s.release_claim(c, &node).unwrap());
    }
    let q = |s: &mut Boxed, now| {
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
    finish(&mut s, "b", CallState::Completed, "confirmed", 20);
    s.cancel_call("a", 30).unwrap();
    assert_eq!(q(&mut s, 6_000), [(None, "due".to_owned(), 1)]);
}

/// Two nodes claim from two threads at once: every due call is claimed exactly once.
fn two_nodes_never_claim_the_same_call(db: &Db) {
    let mut s = db.open("node-a");
    let n = 120;
    for i in 0..n {
        queue(
            &mut s,
            &due_call(&format!("c{i:03}"), &format!("1555{i:07}"), None, 100),
            1,
        );
    }
    // One not yet due.
    queue(&mut s, &due_call("later", "15559999999", None, 10_000), 1);
    drop(s);
    let claimed = Mutex::new(Vec::<(String, String)>::new());
    std::thread::scope(|scope| {
        for node in ["node-a", "node-b"] {
            let claimed = &claimed;
            let mut s = db.open(node);
            scope.spawn(move || {
                loop {
                    let got = claim(&mut s, 1_000, 7, &[]);
                    if got.is_empty() {
                        break;
                    }
                    let mut all = claimed.lock().unwrap();
                    all.extend(got.into_iter().map(|c| (c.call.id, node.to_owned())));
                }
            });
        }
    });
    let claimed = claimed.into_inner().unwrap();
    let unique: BTreeSet<&str> = claimed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(claimed.len(), n, "no call twice: {claimed:?}");
    assert_eq!(unique.len(), n);
    assert!(!unique.contains("later"));
    // Each node can start what it holds, and only that.
    let mut a = db.open("node-a");
    let mut b = db.open("node-b");
    for (id, node) in claimed.iter().take(20) {
        let (mine, theirs) = if node == "node-a" {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        assert!(matches!(
            start(theirs, id, 1_500),
            Err(StoreError::NotClaimed(_))
        ));
        start(mine, id, 1_500).unwrap();
        assert_eq!(mine.get_call(id).unwrap().unwrap().node, *node);
    }
}

/// A trunk's concurrent-call and calls-per-second limits hold over both nodes.
fn trunk_limits_hold_across_nodes(db: &Db) {
    let mut s = db.open("node-a");
    for i in 0..40 {
        queue(
            &mut s,
            &due_call(&format!("m{i:02}"), &format!("1666{i:07}"), None, 0),
            1,
        );
        queue(
            &mut s,
            &due_call(
                &format!("p{i:02}"),
                &format!("1777{i:07}"),
                Some("promo"),
                0,
            ),
            1,
        );
    }
    drop(s);
    let trunks = vec![
        trunk("main", Some(5), None, &[]),
        trunk("promo", None, Some(3.0), &["promo"]),
    ];
    let claim_both = |now: i64| -> Vec<store::Claimed> {
        let out = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for node in ["node-a", "node-b"] {
                let (out, trunks) = (&out, &trunks);
                let mut s = db.open(node);
                scope.spawn(move || {
                    for _ in 0..3 {
                        let got = claim(&mut s, now, 4, trunks);
                        out.lock().unwrap().extend(got);
                    }
                });
            }
        });
        out.into_inner().unwrap()
    };
    let count =
        |v: &[store::Claimed], t: &str| v.iter().filter(|c| c.trunk.as_deref() == Some(t)).count();
    let first = claim_both(10_000);
    assert_eq!(count(&first, "main"), 5, "at most 5 at once on main");
    assert_eq!(count(&first, "promo"), 3, "at most 3 a second on promo");
    for c in &first {
        let expected = if c.call.id.starts_with('p') {
            "promo"
        } else {
            "main"
        };
        assert_eq!(c.trunk.as_deref(), Some(expected));
    }
    // Within the same second nothing more; main is still full.
    assert!(claim_both(10_999).is_empty());
    // A second later promo has room again; main does not until calls end.
    let second = claim_both(11_000);
    assert_eq!((count(&second, "main"), count(&second, "promo")), (0, 3));
    // Main's calls are dialled by the nodes that hold them; two end; two more may start.
    let mut a = db.open("node-a");
    let mut b = db.open("node-b");
    let mains: Vec<&store::Claimed> = first
        .iter()
        .filter(|c| c.trunk.as_deref() == Some("main"))
        .collect();
    for c in &mains {
        if start(&mut a, &c.call.id, 11_500).is_err() {
            start(&mut b, &c.call.id, 11_500).unwrap();
        }
    }
    finish(
        &mut a,
        &mains[0].call.id,
        CallState::Completed,
        "ok",
        12_000,
    );
    finish(&mut b, &mains[1].call.id, CallState::Failed, "busy", 12_000);
    let third = claim_both(12_000);
    assert_eq!(count(&third, "main"), 2, "two ended, two more");
}

/// DNC (with the number written differently) and consent are checked at claim time; such
/// calls come back flagged and use no trunk capacity.
fn dnc_and_consent_at_claim(db: &Db) {
    let mut s = db.open("node-a");
    assert!(s.add_dnc("+7 (916) 123-45-67", "api", 1).unwrap());
    queue(&mut s, &due_call("blocked", "+79161234567", None, 0), 1);
    let mut nc = due_call("no-consent", "+79160000001", Some("cart"), 0);
    nc.dial.consent = None;
    queue(&mut s, &nc, 2);
    queue(&mut s, &due_call("ok", "+79160000002", Some("cart"), 0), 3);
    queue(&mut s, &due_call("ok2", "+79160000003", None, 0), 4);
    let trunks = [trunk("main", Some(1), None, &[])];
    let got = s
        .claim_due("node-a", 1_000, 10, 30_000, &trunks, &["cart".to_owned()])
        .unwrap();
    let view: Vec<(&str, bool, bool, Option<&str>)> = got
        .iter()
        .map(|c| (c.call.id.as_str(), c.dnc, c.no_consent, c.trunk.as_deref()))
        .collect();
    assert_eq!(
        view,
        [
            ("blocked", true, false, None),
            ("no-consent", false, true, None),
            ("ok", false, false, Some("main")),
        ],
        "the trunk's one slot went to the first dialable call"
    );
    assert_eq!(got[0].claim_until, 31_000);
    // The node finishes the blocked call without dialling; it is never claimed again.
    finish(&mut s, "blocked", CallState::Failed, "dnc", 1_100);
    assert!(
        claim(&mut s, 100_000, 10, &[])
            .iter()
            .all(|c| c.call.id != "blocked")
    );
    // Off the list, a number is dialable again.
    assert!(s.remove_dnc("+79161234567").unwrap());
    queue(&mut s, &due_call("again", "+7 916 123 45 67", None, 0), 5);
    let got = claim(&mut s, 200_000, 10, &[]);
    assert!(got.iter().any(|c| c.call.id == "again" && !c.dnc));
}

/// One call per number over all nodes: a number with a call claimed or up is skipped.
fn one_call_per_number(db: &Db) {
    let mut s = db.open("node-a");
    queue(&mut s, &due_call("first", "15550001234", None, 0), 1);
    queue(&mut s, &due_call("second", "1-555-000-1234", None, 0), 2);
    let mut b = db.open("node-b");
    assert_eq!(call_ids(&claim(&mut s, 1_000, 10, &[])), ["first"]);
    assert!(claim(&mut b, 1_000, 10, &[]).is_empty(), "number busy");
    start(&mut s, "first", 1_000).unwrap();
    assert!(claim(&mut b, 2_000, 10, &[]).is_empty(), "number busy");
    finish(&mut s, "first", CallState::Completed, "ok", 3_000);
    assert_eq!(call_ids(&claim(&mut b, 3_000, 10, &[])), ["second"]);
}

/// Claims expire by themselves; fencing keeps a node whose claim expired from dialling.
fn claims_expire_and_fencing(db: &Db) {
    let mut a = db.open("node-a");
    let mut b = db.open("node-b");
    queue(&mut a, &due_call("c1", "15550000001", None, 0), 1);
    queue(&mut a, &due_call("c2", "15550000002", None, 0), 2);
    queue(&mut a, &due_call("c3", "15550000003", None, 0), 3);
    let got = a.claim_due("node-a", 10_000, 1, 1_000, &[], &[]).unwrap();
    assert_eq!(call_ids(&got), ["c1"]);
    assert_eq!(got[0].claim_until, 11_000);
    // Held until it expires.
    let got = b.claim_due("node-b", 10_999, 10, 1_000, &[], &[]).unwrap();
    assert_eq!(call_ids(&got), ["c2", "c3"]);
    assert!(
        b.claim_due("node-b", 10_999, 10, 1_000, &[], &[])
            .unwrap()
            .is_empty()
    );
    let got = b.claim_due("node-b", 11_000, 10, 1_000, &[], &[]).unwrap();
    assert_eq!(call_ids(&got), ["c1"], "an expired claim is claimable");
    // Node A wakes up late: it may not start c1 any more; B may.
    assert!(matches!(start(&mut a, "c1", 11_001), Err(StoreError::NotClaimed(id)) if id == "c1"));
    start(&mut b, "c1", 11_001).unwrap();
    let c1 = b.get_call("c1").unwrap().unwrap();
    assert_eq!((c1.state, c1.node.as_str()), (CallState::Started, "node-b"));
    // Nobody starts a call without a claim, nor after its own claim expired.
    queue(&mut a, &due_call("never", "15550000009", None, 0), 4);
    assert!(matches!(
        start(&mut a, "never", 20_000),
        Err(StoreError::NotClaimed(_))
    ));
    assert!(
        matches!(start(&mut b, "c2", 12_000), Err(StoreError::NotClaimed(_))),
        "expired at 11 999"
    );
    // A batch: the refused record is rolled back alone.
    let res = b
        .record(
            &[
                update("c1", CallState::Answered, "c1a", "call.answered"),
                update("c3", CallState::Started, "c3s", "call.started"),
            ],
            12_000,
        )
        .unwrap();
    assert!(res[0].is_ok());
    assert!(matches!(res[1], Err(StoreError::NotClaimed(_))));
    assert!(b.get_event("c3s").unwrap().is_none());
    // Releasing: only the holder can, and the call is claimable at once.
    let got = a.claim_due("node-a", 30_000, 10, 1_000, &[], &[]).unwrap();
    assert_eq!(call_ids(&got), ["c2", "c3", "never"]);
    assert!(!b.release_claim("c2", "node-b").unwrap());
    assert!(a.release_claim("c2", "node-a").unwrap());
    assert_eq!(
        call_ids(&b.claim_due("node-b", 30_000, 10, 1_000, &[], &[]).unwrap()),
        ["c2"]
    );
    // A cancelled call cannot be started by the node that had claimed it.
    assert!(matches!(
        a.cancel_call("c3", 30_001).unwrap(),
        Cancelled::Done(_)
    ));
    assert!(matches!(
        start(&mut a, "c3", 30_002),
        Err(StoreError::NotClaimed(_))
    ));
}

/// A dead node: its claims and leases are freed, its live calls move to exactly one of two
/// racing survivors, which records their end.
fn takeover_by_one_of_two_survivors(db: &Db) {
    let mut dead = db.open("node-a");
    dead.heartbeat("node-a", 0, 5_000).unwrap();
    queue(&mut dead, &due_call("live", "15550000001", None, 0), 1);
    queue(&mut dead, &due_call("held", "15550000002", None, 0), 2);
    let got = dead
        .claim_due("node-a", 1_000, 10, 60_000, &[], &[])
        .unwrap();
    assert_eq!(got.len(), 2);
    start(&mut dead, "live", 1_000).unwrap();
    let leased = dead.lease_due(1_000, 60_000, 10).unwrap();
    assert_eq!(leased.len(), 2, "the two call.queued events");
    drop(dead); // kill -9

    let mut b = db.open("node-b");
    let mut c = db.open("node-c");
    b.heartbeat("node-b", 4_000, 5_000).unwrap();
    c.heartbeat("node-c", 4_000, 5_000).unwrap();
    assert!(b.dead_nodes(4_999).unwrap().is_empty());
    assert!(
        b.take_over("node-a", "node-b", 4_999).unwrap().is_none(),
        "not dead yet"
    );
    assert_eq!(b.dead_nodes(5_000).unwrap(), ["node-a"]);

    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (mut s, by) in [(b, "node-b"), (c, "node-c")] {
            let results = &results;
            scope.spawn(move || {
                let t = s.take_over("node-a", by, 5_000).unwrap();
                results.lock().unwrap().push((by, t, s));
            });
        }
    });
    let results = results.into_inner().unwrap();
    let winners = results.iter().filter(|(_, t, _)| t.is_some()).count();
    assert_eq!(winners, 1, "exactly one survivor wins");
    let (by, t, mut s) = results.into_iter().find(|(_, t, _)| t.is_some()).unwrap();
    let t = t.unwrap();
    assert_eq!(
        t.live_calls
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["live"]
    );
    assert_eq!(t.live_calls[0].node, by);
    assert_eq!(t.claims_released, 1, "the claim on `held`");
    assert_eq!(t.leases_released, 2);
    assert!(s.dead_nodes(5_000).unwrap().is_empty());
    assert_eq!(
        s.nodes()
            .unwrap()
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["node-b", "node-c"]
    );
    assert!(
        s.take_over("node-a", by, 6_000).unwrap().is_none(),
        "done once"
    );
    assert_eq!(s.live_calls(by).unwrap().len(), 1);
    // The survivor ends the interrupted call through the normal path (no claim needed).
    let r = Record {
        call_id: "live".into(),
        at: 5_001,
        change: CallChange::Update(CallUpdate {
            state: Some(CallState::Failed),
            failure: Some(("interrupted".into(), None)),
            ..CallUpdate::default()
        }),
        event: Some(ev("live-failed", "call.failed")),
    };
    record1(&mut s, r, 5_001).unwrap();
    // The held call is claimable at once, the events deliverable at once.
    assert_eq!(call_ids(&claim(&mut s, 5_002, 10, &[])), ["held"]);
    let evs = s.lease_due(5_002, 65_000, 10).unwrap();
    assert_eq!(ids(&evs), ["q-live", "q-held"]);
}

/// Outbox leases carry their owner; per-call order holds across nodes.
fn outbox_leases_have_owners_and_keep_order_across_nodes(db: &Db) {
    let mut a = db.open("node-a");
    let mut b = db.open("node-b");
    a.record(
        &[
            inbound_started("x", "x1"),
            update("x", CallState::Answered, "x2", "call.answered"),
            inbound_started("y", "y1"),
        ],
        1_000,
    )
    .unwrap();
    assert_eq!(ids(&a.lease_due(2_000, 10_000, 1).unwrap()), ["x1"]);
    // B takes y1, never x2 while x1 is leased to A.
    assert_eq!(ids(&b.lease_due(2_000, 10_000, 10).unwrap()), ["y1"]);
    // B restarting gives back only B's leases.
    assert_eq!(b.release_leases().unwrap(), 1);
    assert!(
        a.lease_due(2_000, 10_000, 10)
            .unwrap()
            .iter()
            .all(|e| e.id != "x2")
    );
    // A's lease expires: B may deliver x1 (at least once), still not x2.
    let got = b.lease_due(10_000, 20_000, 10).unwrap();
    assert!(
        ids(&got).contains(&"x1") && !ids(&got).contains(&"x2"),
        "{:?}",
        ids(&got)
    );
    b.finish_attempts(&[done("x1", 1, Transition::Delivered)], 10_001)
        .unwrap();
    assert_eq!(ids(&a.lease_due(10_001, 20_000, 10).unwrap()), ["x2"]);
    assert_eq!(a.release_leases_of("node-a").unwrap(), 1);

    // Many calls, several events each, delivered by two nodes at once: every event once,
    // each call's in order.
    for i in 0..30 {
        let id = format!("c{i:02}");
        let mut recs = vec![inbound_started(&id, &format!("{id}-1"))];
        for k in 2..=4 {
            recs.push(update(
                &id,
                CallState::Answered,
                &format!("{id}-{k}"),
                "call.answered",
            ));
        }
        a.record(&recs, 30_000).unwrap();
    }
    drop((a, b));
    let log = Mutex::new(Vec::<(String, i64, &str)>::new());
    std::thread::scope(|scope| {
        for node in ["node-a", "node-b"] {
            let log = &log;
            let mut s = db.open(node);
            scope.spawn(move || {
                let mut idle = 0;
                while idle < 3 {
                    let got = s.lease_due(40_000, 1_000_000, 5).unwrap();
                    if got.is_empty() {
                        idle += 1;
                        std::thread::yield_now();
                        continue;
                    }
                    idle = 0;
                    for e in &got {
                        log.lock().unwrap().push((e.call_id.clone(), e.seq, node));
                    }
                    let acks: Vec<AttemptDone> = got
                        .iter()
                        .map(|e| done(&e.id, 1, Transition::Delivered))
                        .collect();
                    s.finish_attempts(&acks, 40_000).unwrap();
                }
            });
        }
    });
    let log = log.into_inner().unwrap();
    let mut s = db.open("node-a");
    // Whatever the threads left (both idle at once), finish now.
    loop {
        let got = s.lease_due(40_000, 1_000_000, 50).unwrap();
        if got.is_empty() {
            break;
        }
        let acks: Vec<AttemptDone> = got
            .iter()
            .map(|e| done(&e.id, 1, Transition::Delivered))
            .collect();
        s.finish_attempts(&acks, 40_000).unwrap();
    }
    let mut per_call: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (call, seq, _) in &log {
        per_call.entry(call.as_str()).or_default().push(*seq);
    }
    for (call, seqs) in &per_call {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            seqs, &sorted,
            "call {call}: delivered out of order or twice"
        );
    }
    let st = s.stats().unwrap();
    assert_eq!(st.events_by_status.get("pending"), None);
}

fn leave_hands_back_claims_and_leases(db: &Db) {
    let mut a = db.open("node-a");
    let mut b = db.open("node-b");
    a.heartbeat("node-a", 0, 10_000).unwrap();
    b.heartbeat("node-b", 0, 10_000).unwrap();
    queue(&mut a, &due_call("c1", "15550000001", None, 0), 1);
    queue(&mut a, &due_call("c2", "15550000002", None, 0), 2);
    assert_eq!(claim(&mut a, 1_000, 10, &[]).len(), 2);
    assert_eq!(a.lease_due(1_000, 60_000, 1).unwrap().len(), 1);
    // Draining: A claims nothing new but stays alive.
    assert!(a.mark_leaving("node-a", 1_500).unwrap());
    queue(&mut b, &due_call("c3", "15550000003", None, 0), 3);
    assert!(
        claim(&mut a, 2_000, 10, &[]).is_empty(),
        "a leaving node claims nothing"
    );
    let nodes = a.nodes().unwrap();
    assert!(nodes.iter().any(|n| n.name == "node-a" && n.leaving));
    assert!(a.dead_nodes(2_000).unwrap().is_empty());
    let left = a.leave("node-a").unwrap();
    assert_eq!(
        (left.claims_released, left.leases_released, left.live_calls),
        (2, 1, 0)
    );
    assert_eq!(
        b.nodes()
            .unwrap()
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["node-b"]
    );
    assert_eq!(call_ids(&claim(&mut b, 2_000, 10, &[])), ["c1", "c2", "c3"]);
    assert_eq!(b.lease_due(2_000, 60_000, 10).unwrap().len(), 3);
}

fn campaigns_pause_and_summaries(db: &Db) {
    let mut s = db.open("node-a");
    queue(&mut s, &due_call("c1", "15550000001", Some("cart"), 0), 1);
    queue(&mut s, &due_call("c2", "15550000002", Some("cart"), 0), 2);
    queue(
        &mut s,
        &due_call("c3", "15550000003", Some("cart"), 50_000),
        3,
    );
    queue(&mut s, &due_call("d1", "15550000004", None, 0), 4);
    queue(&mut s, &due_call("d2", "15550000005", None, 0), 5);
    s.set_campaign_paused("cart", true, 10).unwrap();
    s.set_campaign_paused("survey", true, 10).unwrap();
    // Paused on every node: another node's claims skip cart too.
    let mut b = db.open("node-b");
    assert_eq!(call_ids(&claim(&mut b, 1_000, 10, &[])), ["d1", "d2"]);
    start(&mut b, "d1", 1_000).unwrap();
    finish(&mut b, "d2", CallState::Failed, "dnc", 1_001);
    s.set_campaign_paused("cart", false, 20).unwrap();
    assert_eq!(call_ids(&claim(&mut s, 1_000, 10, &[])), ["c1", "c2"]);
    start(&mut s, "c1", 1_100).unwrap();
    finish(&mut s, "c1", CallState::Completed, "confirmed", 1_200);
    start(&mut s, "c2", 1_100).unwrap();
    let r = Record {
        call_id: "c2".into(),
        at: 1_300,
        change: CallChange::Update(CallUpdate {
            state: Some(CallState::Failed),
            failure: Some(("busy".into(), Some(486))),
            ..CallUpdate::default()
        }),
        event: None,
    };
    record1(&mut s, r, 1_300).unwrap();
    let sum = s.campaign_summaries(2_000).unwrap();
    let names: Vec<&str> = sum.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["cart", "default", "survey"]);
    let cart = &sum[0];
    assert!(!cart.paused);
    assert_eq!(
        (cart.queued, cart.due, cart.dialling, cart.cancelled),
        (1, 0, 0, 0)
    );
    assert_eq!(
        cart.completed,
        BTreeMap::from([("confirmed".to_owned(), 1)])
    );
    assert_eq!(cart.failed, BTreeMap::from([("busy".to_owned(), 1)]));
    let default = &sum[1];
    assert_eq!((default.queued, default.dialling), (0, 1));
    assert_eq!(default.failed, BTreeMap::from([("dnc".to_owned(), 1)]));
    assert!(sum[2].paused);
    assert_eq!(sum[2].queued, 0);
    let json = serde_json::to_value(cart).unwrap();
    assert_eq!(json["completed"]["confirmed"], 1);
    assert_eq!(json["name"], "cart");
    assert_eq!(s.campaign_summaries(60_000).unwrap()[0].due, 1);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Db::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(&super::Db::postgres()) } )*
        }
    };
}

conformance!(
    migrations_from_empty_and_reopen,
    create_call_is_idempotent_by_key,
    records_commit_in_order_and_a_bad_one_rolls_back_alone,
    leases_follow_per_call_order,
    replay_and_cancel,
    live_calls_stats_and_paging,
    queued_calls_retry_fields_and_dnc_survive_a_reopen,
    calls_list_newest_first_with_filters_and_pages,
    the_dialer_queue_counts_by_campaign_and_place,
    two_nodes_never_claim_the_same_call,
    trunk_limits_hold_across_nodes,
    dnc_and_consent_at_claim,
    one_call_per_number,
    claims_expire_and_fencing,
    takeover_by_one_of_two_survivors,
    outbox_leases_have_owners_and_keep_order_across_nodes,
    leave_hands_back_claims_and_leases,
    campaigns_pause_and_summaries,
);

// ───────────────────────── PostgreSQL only ─────────────────────────

/// A lost connection is an error (fail closed), never a panic; the next call reconnects.
#[test]
fn postgres_connection_loss_fails_closed_and_recovers() {
    let db = Db::postgres();
    let mut s = db.open("node-a");
    queue(&mut s, &due_call("c1", "15550000001", None, 0), 1);
    // Kill every other session on this database, as a server restart would.
    let url = db.url.clone().unwrap();
    let mut admin = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    let err = s.get_call("c1").expect_err("the connection is gone");
    assert!(matches!(err, StoreError::Pg(_)), "{err}");
    assert!(!err.to_string().contains(pg::PASSWORD));
    let c = s.get_call("c1").unwrap().expect("reconnected");
    assert_eq!(c.id, "c1");
    // And through a batch: the whole batch fails, nothing half-done.
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    assert!(s.record(&[inbound_started("in", "in1")], 2_000).is_err());
    assert!(s.get_call("in").unwrap().is_none());
}

/// A refused statement is reported by its message and code, never PostgreSQL's DETAIL
/// (which quotes the row: phone numbers are personal data).
#[test]
fn postgres_errors_leave_out_the_rows_they_quote() {
    let db = Db::postgres();
    let mut s = db.open("node-a");
    let mut twice = inbound_started("dup", "d1");
    record1(&mut s, twice.clone(), 1_000).unwrap();
    twice.event = Some(ev("d2", "call.started"));
    let err = record1(&mut s, twice, 1_000).expect_err("the id is taken");
    let text = err.to_string();
    assert!(text.contains("23505"), "{text}");
    assert!(!text.contains("Key (") && !text.contains("(dup)"), "{text}");
    // The refused record was rolled back alone; the store goes on.
    assert!(s.get_event("d2").unwrap().is_none());
    assert!(s.get_call("dup").unwrap().is_some());
}

#[test]
fn postgres_errors_never_show_the_password() {
    let db = Db::postgres();
    let url = db.url.clone().unwrap();
    let wrong = url.replace(pg::PASSWORD, "not-the-password");
    let err = store::open(Some(&wrong), &db.dir.0, "n")
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(!text.contains("not-the-password"), "{text}");
    assert!(text.contains(":***@127.0.0.1"), "{text}");
}

/// Two nodes starting at once against an empty database migrate it once.
#[test]
fn postgres_concurrent_first_start_migrates_once() {
    let db = Db::postgres();
    let versions: Vec<i64> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..3)
            .map(|i| {
                let db = &db;
                scope.spawn(move || db.open(&format!("n{i}")).schema_version().unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(versions.windows(2).all(|w| w[0] == w[1]), "{versions:?}");
    let mut c = ::postgres::Client::connect(db.url.as_ref().unwrap(), ::postgres::NoTls).unwrap();
    let rows: i64 = c
        .query_one("SELECT COUNT(*) FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, versions[0]);
}

/// `sqlite:PATH` opens that file.
#[test]
fn sqlite_url_names_a_file() {
    let dir = TempDir::new();
    let file = dir.0.join("sub").join("x.sqlite3");
    let url = format!("sqlite://{}", file.display());
    let mut s = store::open(Some(&url), &dir.0, "n").unwrap();
    queue(&mut s, &due_call("c", "1", None, 0), 1);
    assert!(file.exists());
    assert!(!dir.0.join("ivrflow.sqlite3").exists());
    let seen: HashSet<String> = claim(&mut s, 1, 10, &[])
        .into_iter()
        .map(|c| c.call.id)
        .collect();
    assert!(seen.contains("c"));
}
