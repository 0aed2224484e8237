//! The embedded [`Store`]: one SQLite file (`ivrflow.sqlite3` in the data directory).
//!
//! `journal_mode=WAL` with `synchronous=FULL`: a transaction is on disk (the WAL fsynced)
//! when `COMMIT` returns, so a `kill -9` or a power cut after that loses nothing; readers
//! (the CLI, the API) never block the writer. `busy_timeout` lets the CLI and a running
//! server share the file. Write transactions are `BEGIN IMMEDIATE` so two writers queue
//! instead of failing on a lock upgrade.
//!
//! Several nodes on one SQLite file (two processes on one machine, or the conformance
//! suite's "two nodes"): every write transaction takes the database's one write lock, so
//! claims, take-overs and leases are serialised — the same semantics as PostgreSQL's row
//! locks, with no concurrency.
//!
//! Not here: a connection pool (one connection, owned by the store thread, is the design),
//! or locking the data directory against a second server (`rt::serve` does that).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use std::collections::{BTreeMap, HashSet};

use super::claims::{self, Candidate, Load};
use super::*;
use crate::crm::events::{Envelope, compose_body};
use crate::dialer::normalize_number;

/// The database file name inside the data directory.
pub const FILE_NAME: &str = "ivrflow.sqlite3";

pub struct SqliteStore {
    conn: Connection,
    node: String,
    path: PathBuf,
    /// Fencing on: a call starts only under this node's live claim.
    claims_required: bool,
}

const CALL_COLS: &str = "id, direction, state, scenario, to_number, from_number, variables, not_before, \
     idempotency_key, request_hash, sip_call_id, node, outcome, failure_reason, sip_code, result, trace, \
     created_at, updated_at, started_at, answered_at, ended_at, dial, dial_attempts";

const EVENT_COLS: &str = "e.id, e.call_id, e.seq, e.type, e.payload, e.status, e.attempts, e.next_attempt_at, \
     e.last_error, e.created_at, e.updated_at, e.delivered_at, e.position";

/// No earlier event of the same call is still pending (delivery order per call).
const HEAD_OF_CALL: &str = "NOT EXISTS (SELECT 1 FROM events p \
     WHERE p.call_id = e.call_id AND p.status = 'pending' AND p.seq < e.seq)";

impl SqliteStore {
    /// Open (creating if needed) `data_dir/ivrflow.sqlite3` and bring its schema up to date.
    /// `node` names this process in call records (see [`Store::live_calls`]).
    pub fn open_in_dir(data_dir: &Path, node: &str) -> Result<SqliteStore, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Open {
            path: data_dir.display().to_string(),
            msg: format!("cannot create the data directory: {e}"),
        })?;
        Self::open(&data_dir.join(FILE_NAME), node)
    }

    pub fn open(path: &Path, node: &str) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), %mode, "SQLite refused WAL mode");
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Each record of a group commit has its savepoint (one refused record does not
        // undo the others); their sub-journals need not touch the disk: the WAL is what
        // makes a commit durable.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // Every statement of the commit path and the claim loop stays prepared.
        conn.set_prepared_statement_cache_capacity(64);
        let mut store = SqliteStore {
            conn,
            node: node.to_owned(),
            path: path.to_owned(),
            claims_required: false,
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fencing: with `true`, moving a call from `queued` to `started`/`answered` needs this
    /// node's live claim ([`Store::claim_due`]), else the record fails with
    /// [`StoreError::NotClaimed`]. Off by default for the node that loads the whole queue
    /// (one process, no claims); [`crate::store::open`] turns it on.
    pub fn require_claims(mut self, on: bool) -> SqliteStore {
        self.claims_required = on;
        self
    }

    /// The schema version now in the file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )?)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                 version INTEGER PRIMARY KEY,
                 description TEXT NOT NULL,
                 applied_at INTEGER NOT NULL)",
        )?;
        let current = self.schema_version()?;
        let known = migrations::latest();
        if current > known {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known,
            });
        }
        for (version, description, sql) in migrations::MIGRATIONS {
            if *version <= current {
                continue;
            }
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Another process may have migrated while we waited for the lock.
            let now_current: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )?;
            if now_current >= *version {
                continue;
            }
            tx.execute_batch(sql)?;
            if *version == migrations::NORMALISE_NUMBERS {
                normalise_numbers(&tx)?;
            }
            tx.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?1, ?2, ?3)",
                params![
                    version,
                    description,
                    crate::crm::events::unix_ms(std::time::SystemTime::now())
                ],
            )?;
            tx.commit()?;
            tracing::info!(path = %self.path.display(), version, description, "database migrated");
        }
        Ok(())
    }
}

/// Fill `to_norm` of calls stored before it existed.
fn normalise_numbers(conn: &Connection) -> Result<(), StoreError> {
    let rows: Vec<(String, String)> = {
        let mut st = conn.prepare(
            "SELECT id, to_number FROM calls WHERE to_norm IS NULL AND to_number IS NOT NULL",
        )?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut up = conn.prepare("UPDATE calls SET to_norm = ?1 WHERE id = ?2")?;
    for (id, number) in rows {
        up.execute(params![normalize_number(&number), id])?;
    }
    Ok(())
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn call_from_row(r: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let direction: String = r.get(1)?;
    let state: String = r.get(2)?;
    let variables: String = r.get(6)?;
    let result: Option<String> = r.get(15)?;
    let trace: Option<String> = r.get(16)?;
    let bad = |what: &str, v: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what} {v:?}").into(),
        )
    };
    Ok(CallRecord {
        id: r.get(0)?,
        direction: Direction::parse(&direction).ok_or_else(|| bad("direction", &direction))?,
        state: CallState::parse(&state).ok_or_else(|| bad("state", &state))?,
        scenario: r.get(3)?,
        to: r.get(4)?,
        from: r.get(5)?,
        variables: serde_json::from_str(&variables).unwrap_or_default(),
        not_before: r.get(7)?,
        idempotency_key: r.get(8)?,
        request_hash: r.get(9)?,
        sip_call_id: r.get(10)?,
        node: r.get(11)?,
        outcome: r.get(12)?,
        failure_reason: r.get(13)?,
        sip_code: r.get::<_, Option<i64>>(14)?.map(|c| c as u16),
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        trace: trace.and_then(|s| serde_json::from_str(&s).ok()),
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        started_at: r.get(19)?,
        answered_at: r.get(20)?,
        ended_at: r.get(21)?,
        dial: r
            .get::<_, Option<String>>(22)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        dial_attempts: r.get::<_, i64>(23)?.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    let status: String = r.get(5)?;
    Ok(EventRecord {
        id: r.get(0)?,
        call_id: r.get(1)?,
        seq: r.get(2)?,
        kind: r.get(3)?,
        payload: r.get(4)?,
        status: EventStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("status {status:?}").into(),
            )
        })?,
        attempts: r.get::<_, i64>(6)? as u32,
        next_attempt_at: r.get(7)?,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        delivered_at: r.get(11)?,
        position: r.get(12)?,
    })
}

fn get_call_in(conn: &Connection, id: &str) -> Result<Option<CallRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {CALL_COLS} FROM calls WHERE id = ?1"),
            [id],
            call_from_row,
        )
        .optional()?)
}

fn get_event_in(conn: &Connection, id: &str) -> Result<Option<EventRecord>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {EVENT_COLS} FROM events e WHERE e.id = ?1"),
            [id],
            event_from_row,
        )
        .optional()?)
}

fn insert_call(
    conn: &Connection,
    c: &NewCall,
    node: &str,
    at: UnixMs,
    now: UnixMs,
) -> Result<(), StoreError> {
    let started = c.state.is_live().then_some(at);
    let answered = (c.state == CallState::Answered).then_some(at);
    let ended = matches!(
        c.state,
        CallState::Completed | CallState::Failed | CallState::Cancelled
    )
    .then_some(at);
    conn.prepare_cached(
        "INSERT INTO calls (id, direction, state, scenario, to_number, from_number, variables, not_before, \
         idempotency_key, request_hash, sip_call_id, node, created_at, updated_at, started_at, answered_at, ended_at, dial, \
         campaign, to_norm) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16, ?17, ?18, ?19)")?
        .execute(
        params![
            c.id,
            c.direction.as_str(),
            c.state.as_str(),
            c.scenario,
            c.to,
            c.from,
            json_text(&c.variables),
            c.not_before,
            c.idempotency_key,
            c.request_hash,
            c.sip_call_id,
            node,
            now,
            started.or(ended),
            answered,
            ended,
            (c.dial != DialOptions::default()).then(|| json_text(&c.dial)),
            c.dial.campaign,
            c.to.as_deref().map(normalize_number),
        ],
    )?;
    Ok(())
}

/// Who records, and whether a start needs a claim.
#[derive(Clone, Copy)]
struct Recorder<'a> {
    node: &'a str,
    claims_required: bool,
}

/// Fencing (see [`StoreError::NotClaimed`]): a call that is not up yet moves to
/// `started`/`answered` only under `node`'s live claim.
fn check_claim(
    conn: &Connection,
    id: &str,
    u: &CallUpdate,
    who: Recorder<'_>,
    now: UnixMs,
) -> Result<(), StoreError> {
    if !who.claims_required || !u.state.is_some_and(CallState::is_live) {
        return Ok(());
    }
    let row: Option<(String, Option<String>, Option<i64>)> = conn
        .prepare_cached("SELECT state, claim_owner, claim_until FROM calls WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((state, owner, until)) = row else {
        return Err(StoreError::NoSuchCall(id.to_owned()));
    };
    if CallState::parse(&state).is_some_and(CallState::is_live) {
        return Ok(());
    }
    let claimed = state == CallState::Queued.as_str()
        && owner.as_deref() == Some(who.node)
        && until.is_some_and(|t| t > now);
    if claimed {
        Ok(())
    } else {
        Err(StoreError::NotClaimed(id.to_owned()))
    }
}

fn update_call(
    conn: &Connection,
    id: &str,
    u: &CallUpdate,
    at: UnixMs,
    now: UnixMs,
    who: Recorder<'_>,
) -> Result<(), StoreError> {
    check_claim(conn, id, u, who, now)?;
    let (reason, code) = match &u.failure {
        Some((r, c)) => (Some(r.as_str()), c.map(i64::from)),
        None => (None, None),
    };
    let n = conn.prepare_cached(
        "UPDATE calls SET \
           state = COALESCE(?1, state), \
           sip_call_id = COALESCE(?2, sip_call_id), \
           outcome = COALESCE(?3, outcome), \
           failure_reason = COALESCE(?4, failure_reason), \
           sip_code = COALESCE(?5, sip_code), \
           result = COALESCE(?6, result), \
           trace = COALESCE(?7, trace), \
           not_before = COALESCE(?11, not_before), \
           dial_attempts = COALESCE(?12, dial_attempts), \
           updated_at = ?8, \
           started_at = CASE WHEN ?1 IN ('started', 'answered') THEN COALESCE(started_at, ?9) ELSE started_at END, \
           answered_at = CASE WHEN ?1 = 'answered' THEN COALESCE(answered_at, ?9) ELSE answered_at END, \
           ended_at = CASE WHEN ?1 IN ('completed', 'failed', 'cancelled') THEN COALESCE(ended_at, ?9) WHEN ?1 = 'queued' THEN NULL ELSE ended_at END, \
           node = CASE WHEN ?1 IN ('started', 'answered') AND state NOT IN ('started', 'answered') THEN ?13 ELSE node END, \
           claim_owner = CASE WHEN ?1 IS NOT NULL OR ?11 IS NOT NULL THEN NULL ELSE claim_owner END, \
           claim_until = CASE WHEN ?1 IS NOT NULL OR ?11 IS NOT NULL THEN NULL ELSE claim_until END \
         WHERE id = ?10")?
        .execute(
        params![
            u.state.map(CallState::as_str),
            u.sip_call_id,
            u.outcome,
            reason,
            code,
            u.result.as_ref().map(json_text),
            u.trace.as_ref().map(json_text),
            now,
            at,
            id,
            u.not_before,
            u.dial_attempts.map(i64::from),
            who.node,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchCall(id.to_owned()));
    }
    Ok(())
}

fn insert_event(
    conn: &Connection,
    call_id: &str,
    ev: &NewEvent,
    now: UnixMs,
) -> Result<(), StoreError> {
    let seq: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE call_id = ?1")?
        .query_row([call_id], |r| r.get(0))?;
    let body = compose_body(
        &Envelope {
            event_id: &ev.id,
            kind: &ev.kind,
            call_ref: call_id,
            seq,
            occurred_at: ev.occurred_at,
        },
        &ev.data,
    );
    conn.prepare_cached(
        "INSERT INTO events (id, call_id, seq, type, payload, status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?6, ?6)")?
        .execute(
        params![ev.id, call_id, seq, ev.kind, body, now],
    )?;
    Ok(())
}

fn apply_record(
    conn: &Connection,
    who: Recorder<'_>,
    rec: &Record,
    now: UnixMs,
) -> Result<(), StoreError> {
    match &rec.change {
        CallChange::Insert(c) => insert_call(conn, c, who.node, rec.at, now)?,
        CallChange::Update(u) => update_call(conn, &rec.call_id, u, rec.at, now, who)?,
    }
    if let Some(ev) = &rec.event {
        insert_event(conn, &rec.call_id, ev, now)?;
    }
    Ok(())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

/// A trunk's load over all nodes (see [`claims::Load`]).
fn trunk_load(conn: &Connection, trunk: &str, now: UnixMs) -> Result<Load, StoreError> {
    let in_use: i64 = conn.query_row(
        "SELECT COUNT(*) FROM calls WHERE trunk = ?1 AND state IN ('queued', 'started', 'answered') \
           AND (state <> 'queued' OR claim_until > ?2)",
        params![trunk, now],
        |r| r.get(0),
    )?;
    let recent: i64 = conn.query_row(
        "SELECT COUNT(*) FROM calls WHERE trunk = ?1 AND claimed_at > ?2",
        params![trunk, now.saturating_sub(claims::CPS_WINDOW_MS)],
        |r| r.get(0),
    )?;
    Ok(Load {
        in_use: in_use.max(0) as u64,
        recent: recent.max(0) as u64,
    })
}

impl Store for SqliteStore {
    fn node(&self) -> &str {
        &self.node
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        SqliteStore::schema_version(self)
    }

    fn heartbeat(&mut self, node: &str, now: UnixMs, ttl_ms: u64) -> Result<(), StoreError> {
        let expires = now.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
        self.conn.execute(
            "INSERT INTO nodes (name, last_seen, expires_at, leaving) VALUES (?1, ?2, ?3, 0) \
             ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, expires_at = excluded.expires_at",
            params![node, now, expires],
        )?;
        Ok(())
    }

    fn mark_leaving(&mut self, node: &str, now: UnixMs) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE nodes SET leaving = 1, last_seen = MAX(last_seen, ?2) WHERE name = ?1",
            params![node, now],
        )? == 1)
    }

    fn nodes(&mut self) -> Result<Vec<NodeInfo>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT name, last_seen, expires_at, leaving FROM nodes ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(NodeInfo {
                name: r.get(0)?,
                last_seen: r.get(1)?,
                expires_at: r.get(2)?,
                leaving: r.get::<_, i64>(3)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn dead_nodes(&mut self, now: UnixMs) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT name FROM nodes WHERE expires_at <= ?1 ORDER BY name")?;
        let rows = st.query_map([now], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn take_over(
        &mut self,
        dead: &str,
        by: &str,
        now: UnixMs,
    ) -> Result<Option<TakeOver>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let won = tx.execute(
            "DELETE FROM nodes WHERE name = ?1 AND expires_at <= ?2",
            params![dead, now],
        )?;
        if won == 0 {
            return Ok(None);
        }
        let live_calls: Vec<CallRecord> = {
            let mut st = tx.prepare_cached(&format!(
                "UPDATE calls SET node = ?2, updated_at = ?3 \
                 WHERE node = ?1 AND state IN ('started', 'answered') RETURNING {CALL_COLS}"
            ))?;
            st.query_map(params![dead, by, now], call_from_row)?
                .collect::<Result<_, _>>()?
        };
        let mut live_calls = live_calls;
        live_calls.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let claims_released = tx.execute(
            "UPDATE calls SET claim_owner = NULL, claim_until = NULL WHERE claim_owner = ?1",
            [dead],
        )? as u64;
        let leases_released = tx.execute(
            "UPDATE events SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1",
            [dead],
        )? as u64;
        tx.commit()?;
        Ok(Some(TakeOver {
            live_calls,
            claims_released,
            leases_released,
        }))
    }

    fn leave(&mut self, node: &str) -> Result<Left, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let claims_released = tx.execute(
            "UPDATE calls SET claim_owner = NULL, claim_until = NULL WHERE claim_owner = ?1",
            [node],
        )? as u64;
        let leases_released = tx.execute(
            "UPDATE events SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1",
            [node],
        )? as u64;
        let live: i64 = tx.query_row(
            "SELECT COUNT(*) FROM calls WHERE node = ?1 AND state IN ('started', 'answered')",
            [node],
            |r| r.get(0),
        )?;
        tx.execute("DELETE FROM nodes WHERE name = ?1", [node])?;
        tx.commit()?;
        Ok(Left {
            claims_released,
            leases_released,
            live_calls: live.max(0) as u64,
        })
    }

    fn claim_due(
        &mut self,
        node: &str,
        now: UnixMs,
        limit: u32,
        lease_ms: u64,
        trunks: &[TrunkQuota],
        consent_required: &[String],
    ) -> Result<Vec<Claimed>, StoreError> {
        let claim_until = now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX));
        // The write lock first: every count and candidate below sees every other node's
        // committed claims, and none can claim until this transaction ends.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let leaving: Option<i64> = tx
            .query_row("SELECT leaving FROM nodes WHERE name = ?1", [node], |r| {
                r.get(0)
            })
            .optional()?;
        if leaving.is_some_and(|l| l != 0) || limit == 0 {
            return Ok(Vec::new());
        }
        let mut loads = BTreeMap::new();
        for t in trunks.iter().filter(|t| claims::is_limited(t)) {
            if !loads.contains_key(&t.name) {
                loads.insert(t.name.clone(), trunk_load(&tx, &t.name, now)?);
            }
        }
        let f = claims::filter(trunks, &loads);
        let candidates: Vec<Candidate> = {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {CALL_COLS}, to_norm, EXISTS (SELECT 1 FROM dnc d WHERE d.number = c.to_norm) \
                 FROM calls c \
                 WHERE c.state = 'queued' AND c.direction = 'outbound' AND COALESCE(c.not_before, 0) <= ?1 \
                   AND (c.claim_until IS NULL OR c.claim_until <= ?1) \
                   AND NOT EXISTS (SELECT 1 FROM campaigns p \
                       WHERE p.name = COALESCE(c.campaign, '{DEFAULT_CAMPAIGN}') AND p.paused <> 0) \
                   AND NOT EXISTS (SELECT 1 FROM calls o \
                       WHERE o.to_norm = c.to_norm AND o.id <> c.id AND o.direction = 'outbound' \
                         AND o.state IN ('queued', 'started', 'answered') \
                         AND (o.state <> 'queued' OR o.claim_until > ?1)) \
                   AND COALESCE(c.campaign, '{DEFAULT_CAMPAIGN}') NOT IN (SELECT value FROM json_each(?2)) \
                   AND NOT (?3 AND COALESCE(c.campaign, '{DEFAULT_CAMPAIGN}') NOT IN (SELECT value FROM json_each(?4))) \
                 ORDER BY COALESCE(c.not_before, 0), c.created_at, c.id LIMIT ?5"
            ))?;
            st.query_map(
                params![
                    now,
                    json_text(&f.blocked),
                    f.default_blocked,
                    json_text(&f.mapped),
                    limit
                ],
                |r| {
                    Ok(Candidate {
                        call: call_from_row(r)?,
                        number: r.get(24)?,
                        dnc: r.get(25)?,
                    })
                },
            )?
            .collect::<Result<_, _>>()?
        };
        let chosen = claims::choose(
            candidates,
            trunks,
            consent_required,
            &mut loads,
            &HashSet::new(),
            limit,
            claim_until,
        );
        {
            let mut up = tx.prepare_cached(
                "UPDATE calls SET claim_owner = ?2, claim_until = ?3, trunk = ?4, \
                   claimed_at = CASE WHEN ?4 IS NOT NULL THEN ?5 ELSE claimed_at END \
                 WHERE id = ?1",
            )?;
            for c in &chosen {
                up.execute(params![c.call.id, node, claim_until, c.trunk, now])?;
            }
        }
        tx.commit()?;
        Ok(chosen)
    }

    fn release_claim(&mut self, call_id: &str, node: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE calls SET claim_owner = NULL, claim_until = NULL \
             WHERE id = ?1 AND claim_owner = ?2 AND state = 'queued'",
            params![call_id, node],
        )? == 1)
    }

    fn set_campaign_paused(
        &mut self,
        name: &str,
        paused: bool,
        now: UnixMs,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO campaigns (name, paused, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
            params![name, paused, now],
        )?;
        Ok(())
    }

    fn campaign_summaries(&mut self, now: UnixMs) -> Result<Vec<CampaignSummary>, StoreError> {
        let mut out: BTreeMap<String, CampaignSummary> = BTreeMap::new();
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT name, paused FROM campaigns")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (name, paused) = row?;
                out.entry(name.clone()).or_default().paused = paused != 0;
            }
        }
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT COALESCE(campaign, '{DEFAULT_CAMPAIGN}'), state, \
               CASE WHEN state = 'completed' THEN COALESCE(outcome, 'unknown') \
                    WHEN state = 'failed' THEN COALESCE(failure_reason, 'unknown') ELSE '' END, \
               SUM(CASE WHEN state = 'queued' AND COALESCE(not_before, 0) <= ?1 THEN 1 ELSE 0 END), \
               COUNT(*) \
             FROM calls WHERE direction = 'outbound' GROUP BY 1, 2, 3"
        ))?;
        let rows = st.query_map([now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            let (name, state, key, due, n) = row?;
            claims::add_to_summary(out.entry(name).or_default(), &state, key, due, n);
        }
        Ok(out
            .into_iter()
            .map(|(name, s)| CampaignSummary { name, ..s })
            .collect())
    }

    fn create_call(
        &mut self,
        call: &NewCall,
        event: &NewEvent,
        now: UnixMs,
    ) -> Result<Created, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing = |tx: &Connection| -> Result<Option<Created>, StoreError> {
            let Some(key) = &call.idempotency_key else {
                return Ok(None);
            };
            let found = tx
                .query_row(
                    &format!("SELECT {CALL_COLS} FROM calls WHERE idempotency_key = ?1"),
                    [key],
                    call_from_row,
                )
                .optional()?;
            Ok(found.map(|c| {
                if c.request_hash == call.request_hash {
                    Created::Existing(c)
                } else {
                    Created::Conflict(c)
                }
            }))
        };
        if let Some(found) = existing(&tx)? {
            return Ok(found);
        }
        match insert_call(&tx, call, &self.node, now, now) {
            Ok(()) => {}
            Err(StoreError::Db(e)) if is_unique_violation(&e) => {
                // Another writer (another node sharing the database) won the key.
                if let Some(found) = existing(&tx)? {
                    return Ok(found);
                }
                return Err(StoreError::Db(e));
            }
            Err(e) => return Err(e),
        }
        insert_event(&tx, &call.id, event, now)?;
        let rec = get_call_in(&tx, &call.id)?
            .ok_or_else(|| StoreError::Corrupt(format!("call {} vanished", call.id)))?;
        tx.commit()?;
        Ok(Created::New(rec))
    }

    fn get_call(&mut self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        get_call_in(&self.conn, id)
    }

    fn cancel_call(&mut self, id: &str, now: UnixMs) -> Result<Cancelled, StoreError> {
        let who = Recorder {
            node: &self.node,
            claims_required: self.claims_required,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(c) = get_call_in(&tx, id)? else {
            return Ok(Cancelled::NotFound);
        };
        if c.state != CallState::Queued {
            return Ok(Cancelled::NotQueued(c));
        }
        update_call(
            &tx,
            id,
            &CallUpdate {
                state: Some(CallState::Cancelled),
                ..CallUpdate::default()
            },
            now,
            now,
            who,
        )?;
        let c = get_call_in(&tx, id)?.ok_or_else(|| StoreError::NoSuchCall(id.to_owned()))?;
        tx.commit()?;
        Ok(Cancelled::Done(c))
    }

    fn record(
        &mut self,
        records: &[Record],
        now: UnixMs,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let who = Recorder {
            node: &self.node,
            claims_required: self.claims_required,
        };
        // Almost always every record applies: one transaction, no savepoints (a savepoint
        // per record cost two more statements each, a tenth of the store's time at 2,000
        // call set-ups a second). When one is refused, it is all done again below, record
        // by record.
        {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            if records
                .iter()
                .all(|rec| apply_record(&tx, who, rec, now).is_ok())
            {
                tx.commit()?;
                return Ok(records.iter().map(|_| Ok(())).collect());
            }
            // Dropping `tx` rolls everything back.
        }
        let mut tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut results = Vec::with_capacity(records.len());
        for rec in records {
            let sp = tx.savepoint()?;
            let who = Recorder {
                node: &self.node,
                claims_required: self.claims_required,
            };
            match apply_record(&sp, who, rec, now) {
                Ok(()) => {
                    sp.commit()?;
                    results.push(Ok(()));
                }
                Err(e) => {
                    drop(sp); // rolls this record back
                    results.push(Err(e));
                }
            }
        }
        tx.commit()?;
        Ok(results)
    }

    fn queued_calls(&mut self) -> Result<Vec<CallRecord>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CALL_COLS} FROM calls WHERE state = 'queued' AND direction = 'outbound' \
             ORDER BY COALESCE(not_before, 0), created_at"
        ))?;
        let rows = st.query_map([], call_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn dnc_numbers(&mut self) -> Result<Vec<String>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT number FROM dnc ORDER BY number")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn add_dnc(&mut self, number: &str, source: &str, now: UnixMs) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO dnc (number, source, created_at) VALUES (?1, ?2, ?3)",
            params![normalize_number(number), source, now],
        )?;
        Ok(n == 1)
    }

    fn remove_dnc(&mut self, number: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM dnc WHERE number = ?1",
            [normalize_number(number)],
        )? == 1)
    }

    fn live_calls(&mut self, node: &str) -> Result<Vec<CallRecord>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {CALL_COLS} FROM calls WHERE node = ?1 AND state IN ('started', 'answered') ORDER BY created_at"
        ))?;
        let rows = st.query_map([node], call_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn lease_due_for(
        &mut self,
        node: &str,
        now: UnixMs,
        lease_until: UnixMs,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let due: Vec<EventRecord> = {
            let mut st = tx.prepare_cached(&format!(
                "SELECT {EVENT_COLS} FROM events e \
                 WHERE e.status = 'pending' AND e.next_attempt_at <= ?1 \
                   AND (e.lease_until IS NULL OR e.lease_until <= ?1) AND {HEAD_OF_CALL} \
                 ORDER BY e.next_attempt_at, e.position LIMIT ?2"
            ))?;
            st.query_map(params![now, limit], event_from_row)?
                .collect::<Result<_, _>>()?
        };
        {
            let mut up = tx.prepare_cached(
                "UPDATE events SET lease_until = ?1, lease_owner = ?3 WHERE position = ?2",
            )?;
            for e in &due {
                up.execute(params![lease_until, e.position, node])?;
            }
        }
        tx.commit()?;
        Ok(due)
    }

    fn next_due(&mut self) -> Result<Option<UnixMs>, StoreError> {
        Ok(self.conn.query_row(
            &format!(
                "SELECT MIN(MAX(e.next_attempt_at, COALESCE(e.lease_until, 0))) FROM events e \
                 WHERE e.status = 'pending' AND {HEAD_OF_CALL}"
            ),
            [],
            |r| r.get(0),
        )?)
    }

    fn finish_attempts(&mut self, done: &[AttemptDone], now: UnixMs) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut log = tx.prepare_cached(
                "INSERT INTO deliveries (event_id, attempt, started_at, duration_ms, status_code, error, result) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut delivered = tx.prepare_cached(
                "UPDATE events SET status = 'delivered', attempts = attempts + 1, delivered_at = ?2, \
                 lease_until = NULL, lease_owner = NULL, last_error = NULL, updated_at = ?2 WHERE id = ?1 AND status = 'pending'",
            )?;
            let mut retry = tx.prepare_cached(
                "UPDATE events SET attempts = attempts + 1, next_attempt_at = ?3, lease_until = NULL, \
                 lease_owner = NULL, last_error = ?4, updated_at = ?2 WHERE id = ?1 AND status = 'pending'",
            )?;
            let mut dead = tx.prepare_cached(
                "UPDATE events SET status = 'dead', attempts = attempts + 1, lease_until = NULL, \
                 lease_owner = NULL, last_error = ?3, updated_at = ?2 WHERE id = ?1 AND status = 'pending'",
            )?;
            for d in done {
                let a = &d.attempt;
                log.execute(params![
                    a.event_id,
                    a.attempt,
                    a.started_at,
                    i64::try_from(a.duration_ms).unwrap_or(i64::MAX),
                    a.status_code,
                    a.error,
                    a.result
                ])?;
                match &d.transition {
                    Transition::Delivered => delivered.execute(params![a.event_id, now])?,
                    Transition::Retry { at, error } => {
                        retry.execute(params![a.event_id, now, at, error])?
                    }
                    Transition::Dead { error } => dead.execute(params![a.event_id, now, error])?,
                };
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn release_leases_of(&mut self, node: &str) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE events SET lease_until = NULL, lease_owner = NULL \
             WHERE lease_until IS NOT NULL AND (lease_owner = ?1 OR lease_owner IS NULL)",
            [node],
        )? as u64)
    }

    fn list_events(&mut self, f: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLS} FROM events e \
             WHERE (?1 IS NULL OR e.status = ?1) AND (?2 IS NULL OR e.call_id = ?2) AND e.position > ?3 \
             ORDER BY e.position LIMIT ?4"
        ))?;
        let rows = st.query_map(
            params![
                f.status.map(EventStatus::as_str),
                f.call_id,
                f.after.unwrap_or(0),
                f.limit
            ],
            event_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn get_event(&mut self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        get_event_in(&self.conn, id)
    }

    fn call_events(&mut self, call_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLS} FROM events e WHERE e.call_id = ?1 ORDER BY e.seq"
        ))?;
        let rows = st.query_map([call_id], event_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn call_attempts(&mut self, call_id: &str) -> Result<Vec<Attempt>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT d.event_id, d.attempt, d.started_at, d.duration_ms, d.status_code, d.error, d.result \
             FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.call_id = ?1 ORDER BY d.id",
        )?;
        let rows = st.query_map([call_id], |r| {
            Ok(Attempt {
                event_id: r.get(0)?,
                attempt: r.get::<_, i64>(1)? as u32,
                started_at: r.get(2)?,
                duration_ms: r.get::<_, i64>(3)?.max(0) as u64,
                status_code: r.get::<_, Option<i64>>(4)?.map(|c| c as u16),
                error: r.get(5)?,
                result: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn replay_event(&mut self, id: &str, now: UnixMs) -> Result<Replayed, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let Some(e) = get_event_in(&tx, id)? else {
            return Ok(Replayed::NotFound);
        };
        if e.status == EventStatus::Pending {
            return Ok(Replayed::AlreadyPending(e));
        }
        tx.execute(
            "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = ?2, lease_until = NULL, \
             lease_owner = NULL, delivered_at = NULL, updated_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        let e = get_event_in(&tx, id)?
            .ok_or_else(|| StoreError::Corrupt(format!("event {id} vanished")))?;
        tx.commit()?;
        Ok(Replayed::Done(e))
    }

    fn stats(&mut self) -> Result<Stats, StoreError> {
        let mut s = Stats::default();
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT state, COUNT(*) FROM calls GROUP BY state")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (k, n) = row?;
                s.calls_by_state.insert(k, n as u64);
            }
        }
        {
            let mut st = self
                .conn
                .prepare_cached("SELECT status, COUNT(*) FROM events GROUP BY status")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            for row in rows {
                let (k, n) = row?;
                s.events_by_status.insert(k, n as u64);
            }
        }
        s.oldest_pending = self.conn.query_row(
            "SELECT MIN(created_at) FROM events WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(s)
    }

    fn list_calls(&mut self, f: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        // The trace is left out (NULL in its place): a page of calls does not need it.
        let cols = CALL_COLS.replace(" trace,", " NULL,");
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {cols} FROM calls \
             WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR direction = ?2) \
               AND (?3 IS NULL OR scenario = ?3) \
               AND (?4 IS NULL OR (direction = 'outbound' AND (campaign = ?4 OR (?5 = 1 AND campaign IS NULL)))) \
               AND (?6 IS NULL OR created_at < ?6 OR (created_at = ?6 AND id < ?7)) \
             ORDER BY created_at DESC, id DESC LIMIT ?8"
        ))?;
        let (after_at, after_id) = match &f.after {
            Some((at, id)) => (Some(*at), Some(id.as_str())),
            None => (None, None),
        };
        let rows = st.query_map(
            params![
                f.state.map(CallState::as_str),
                f.direction.map(Direction::as_str),
                f.scenario,
                f.campaign,
                f.campaign_or_none,
                after_at,
                after_id,
                f.limit,
            ],
            call_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn dialer_queue(&mut self, now: UnixMs) -> Result<Vec<QueueCount>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT campaign, \
               CASE WHEN state = 'queued' AND COALESCE(not_before, 0) > ?1 THEN 'waiting' \
                    WHEN state = 'queued' THEN 'due' ELSE state END AS place, \
               COUNT(*) \
             FROM calls WHERE direction = 'outbound' AND state IN ('queued', 'started', 'answered') \
             GROUP BY campaign, place ORDER BY campaign, place",
        )?;
        let rows = st.query_map([now], |r| {
            Ok(QueueCount {
                campaign: r.get(0)?,
                state: r.get(1)?,
                calls: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests;
