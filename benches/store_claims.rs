//! Store benchmark: claims of due calls and outbox lease+ack, SQLite (one claimer, the
//! embedded default) against PostgreSQL with 1, 2 and 3 concurrent claimers (one
//! connection each, as nodes have), measured in the same run; and how long a take-over of
//! a dead node takes on each.
//!
//! ```text
//! cargo bench --bench store_claims -- [--calls 2000] [--events 2000] [--batch 10]
//!     [--live 200]
//! ```
//! PostgreSQL is a throwaway cluster on 127.0.0.1 (`tests/common/pg.rs`), durable like
//! production (fsync and synchronous commit on), as SQLite runs with `synchronous=FULL`.
//! Setup (queueing the calls, committing the events) is not timed. Claims go through
//! `claim_due` (batch `--batch`, a trunk without limits unless stated); lease+ack is
//! `lease_due` + `finish_attempts` of each leased batch. Ratios are against SQLite.

#[path = "../tests/common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ivrflow::store::{
    self, Attempt, AttemptDone, CallChange, CallState, CallUpdate, DialOptions, Direction, NewCall,
    NewEvent, Record, Store, Transition, TrunkQuota,
};

type Boxed = Box<dyn Store + Send>;

struct Args {
    calls: usize,
    events: usize,
    batch: u32,
    live: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        calls: 2000,
        events: 2000,
        batch: 10,
        live: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match k.as_str() {
            "--calls" => a.calls = num("--calls"),
            "--events" => a.events = num("--events"),
            "--batch" => a.batch = num("--batch") as u32,
            "--live" => a.live = num("--live"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "ivrflow-bench-store-{}-{}",
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

/// Where a store comes from.
enum Kind<'a> {
    Sqlite,
    Postgres(&'a pg::Cluster),
}

struct Db {
    dir: TempDir,
    url: Option<String>,
}

impl Db {
    fn new(kind: &Kind<'_>) -> Db {
        Db {
            dir: TempDir::new(),
            url: match kind {
                Kind::Sqlite => None,
                Kind::Postgres(c) => Some(c.fresh_database()),
            },
        }
    }

    fn open(&self, node: &str) -> Boxed {
        store::open(self.url.as_deref(), &self.dir.0, node).expect("open the store")
    }
}

fn queued(i: usize) -> Record {
    let id = format!("call-{i:06}");
    Record {
        call_id: id.clone(),
        at: 1,
        change: CallChange::Insert(NewCall {
            id,
            direction: Direction::Outbound,
            state: CallState::Queued,
            scenario: "bench".into(),
            to: Some(format!("1555{i:07}")),
            from: None,
            variables: BTreeMap::new(),
            not_before: Some(0),
            idempotency_key: None,
            request_hash: None,
            sip_call_id: None,
            dial: DialOptions::default(),
        }),
        event: None,
    }
}

fn inbound_with_event(i: usize) -> Record {
    let id = format!("in-{i:06}");
    Record {
        call_id: id.clone(),
        at: 1,
        change: CallChange::Insert(NewCall {
            id: id.clone(),
            direction: Direction::Inbound,
            state: CallState::Started,
            scenario: "bench".into(),
            to: Some("100".into()),
            from: Some("15550000000".into()),
            variables: BTreeMap::new(),
            not_before: None,
            idempotency_key: None,
            request_hash: None,
            sip_call_id: Some(format!("sip-{i}")),
            dial: DialOptions::default(),
        }),
        event: Some(NewEvent {
            id: format!("msg-{i:06}"),
            kind: "call.started".into(),
            occurred_at: 1,
            data: serde_json::json!({ "bench": i }),
        }),
    }
}

fn setup(s: &mut Boxed, records: Vec<Record>) {
    for chunk in records.chunks(500) {
        for r in s.record(chunk, 1).expect("setup commit") {
            r.expect("setup record");
        }
    }
}

/// `claimers` stores claim everything due, each from its own thread; calls per second.
fn claims(db: &Db, claimers: usize, n: usize, batch: u32, trunks: &[TrunkQuota]) -> f64 {
    setup(&mut db.open("setup"), (0..n).map(queued).collect());
    let mut stores: Vec<Boxed> = (0..claimers)
        .map(|i| db.open(&format!("node-{i}")))
        .collect();
    let t0 = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let hs: Vec<_> = stores
            .iter_mut()
            .map(|s| {
                scope.spawn(move || {
                    let node = s.node().to_owned();
                    let mut got = 0;
                    loop {
                        let c = s
                            .claim_due(&node, 1_000, batch, 600_000, trunks, &[])
                            .expect("claim");
                        if c.is_empty() {
                            return got;
                        }
                        got += c.len();
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let dt = t0.elapsed();
    assert_eq!(total, n, "every call claimed exactly once");
    n as f64 / dt.as_secs_f64()
}

/// `workers` stores lease and acknowledge every event; events per second.
fn outbox(db: &Db, workers: usize, n: usize, batch: u32) -> f64 {
    setup(
        &mut db.open("setup"),
        (0..n).map(inbound_with_event).collect(),
    );
    let mut stores: Vec<Boxed> = (0..workers)
        .map(|i| db.open(&format!("node-{i}")))
        .collect();
    let t0 = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let hs: Vec<_> = stores
            .iter_mut()
            .map(|s| {
                scope.spawn(move || {
                    let mut got = 0;
                    loop {
                        let due = s.lease_due(1_000, 600_000, batch).expect("lease");
                        if due.is_empty() {
                            return got;
                        }
                        got += due.len();
                        let acks: Vec<AttemptDone> = due
                            .iter()
                            .map(|e| AttemptDone {
                                attempt: Attempt {
                                    event_id: e.id.clone(),
                                    attempt: 1,
                                    started_at: 1_000,
                                    duration_ms: 1,
                                    status_code: Some(200),
                                    error: None,
                                    result: "delivered".into(),
                                },
                                transition: Transition::Delivered,
                            })
                            .collect();
                        s.finish_attempts(&acks, 1_000).expect("ack");
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let dt = t0.elapsed();
    assert_eq!(total, n, "every event delivered exactly once");
    n as f64 / dt.as_secs_f64()
}

/// A dead node with `live` calls up, as many claims and as many leased events: how long the
/// survivor's take-over transaction takes.
fn takeover(db: &Db, live: usize) -> Duration {
    let mut dead = db.open("dead");
    dead.heartbeat("dead", 0, 1_000).unwrap();
    setup(&mut dead, (0..2 * live).map(queued).collect());
    // Events of calls another node carried, leased by the node that dies.
    setup(
        &mut db.open("other"),
        (0..live).map(inbound_with_event).collect(),
    );
    let claimed = dead
        .claim_due("dead", 1_000, (2 * live) as u32, 600_000, &[], &[])
        .unwrap();
    assert_eq!(claimed.len(), 2 * live);
    let starts: Vec<Record> = claimed[..live]
        .iter()
        .map(|c| Record {
            call_id: c.call.id.clone(),
            at: 1_000,
            change: CallChange::Update(CallUpdate {
                state: Some(CallState::Started),
                ..CallUpdate::default()
            }),
            event: None,
        })
        .collect();
    for r in dead.record(&starts, 1_000).unwrap() {
        r.unwrap();
    }
    assert_eq!(
        dead.lease_due(1_000, 600_000, live as u32).unwrap().len(),
        live
    );
    drop(dead);
    let mut survivor = db.open("survivor");
    let t0 = Instant::now();
    let t = survivor
        .take_over("dead", "survivor", 2_000)
        .unwrap()
        .expect("dead");
    let dt = t0.elapsed();
    assert_eq!(
        (
            t.live_calls.len(),
            t.claims_released as usize,
            t.leases_released as usize
        ),
        (live, live, live)
    );
    dt
}

fn main() {
    let a = parse_args();
    let cluster = pg::Cluster::start(true);
    let pgk = Kind::Postgres(&cluster);
    let unlimited = [TrunkQuota {
        name: "main".into(),
        ..TrunkQuota::default()
    }];
    let limited = [TrunkQuota {
        name: "main".into(),
        max_concurrent: Some(1_000_000),
        calls_per_second: Some(1e9),
        campaigns: vec![],
    }];

    println!(
        "store_claims: {} calls, {} events, batch {}, PostgreSQL 15 on 127.0.0.1 (fsync on), \
         SQLite WAL synchronous=FULL, {} CPUs",
        a.calls,
        a.events,
        a.batch,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let sq_claims = claims(&Db::new(&Kind::Sqlite), 1, a.calls, a.batch, &unlimited);
    let sq_outbox = outbox(&Db::new(&Kind::Sqlite), 1, a.events, a.batch);
    println!(
        "{:<44} {:>10} {:>7} {:>13} {:>7}",
        "", "claims/s", "ratio", "lease+ack/s", "ratio"
    );
    println!(
        "{:<44} {:>10.0} {:>7.2} {:>13.0} {:>7.2}",
        "sqlite, 1 claimer", sq_claims, 1.0, sq_outbox, 1.0
    );
    for k in 1..=3 {
        let c = claims(&Db::new(&pgk), k, a.calls, a.batch, &unlimited);
        let o = outbox(&Db::new(&pgk), k, a.events, a.batch);
        println!(
            "{:<44} {:>10.0} {:>7.2} {:>13.0} {:>7.2}",
            format!("postgres, {k} claimer{}", if k > 1 { "s" } else { "" }),
            c,
            c / sq_claims,
            o,
            o / sq_outbox
        );
    }
    let sq_limited = claims(&Db::new(&Kind::Sqlite), 1, a.calls, a.batch, &limited);
    println!(
        "{:<44} {:>10.0} {:>7.2}",
        "sqlite, 1 claimer, trunk with limits",
        sq_limited,
        sq_limited / sq_claims
    );
    for k in [1, 3] {
        let c = claims(&Db::new(&pgk), k, a.calls, a.batch, &limited);
        println!(
            "{:<44} {:>10.0} {:>7.2}",
            format!(
                "postgres, {k} claimer{}, trunk with limits",
                if k > 1 { "s" } else { "" }
            ),
            c,
            c / sq_claims
        );
    }
    let sq_take = takeover(&Db::new(&Kind::Sqlite), a.live);
    let pg_take = takeover(&Db::new(&pgk), a.live);
    println!(
        "take-over of a dead node ({} live calls, {} claims, {} leases): sqlite {:.1} ms, postgres {:.1} ms",
        a.live,
        a.live,
        a.live,
        sq_take.as_secs_f64() * 1e3,
        pg_take.as_secs_f64() * 1e3
    );
}
