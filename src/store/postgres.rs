//! The shared [`Store`]: PostgreSQL (Debian 12's 15 or newer), for several nodes.
//!
//! Why the blocking `postgres` crate: the store already runs on its own OS thread
//! (`rt::store`), one command at a time, so a synchronous client is the natural fit — each
//! trait method is a plain sequence of statements in one transaction, exactly like the
//! SQLite store, with no async plumbing, no pool and no second executor to reason about
//! (the crate drives `tokio-postgres` on a small private runtime). `sqlx` would bring its
//! async runtime integration and compile-time query machinery for nothing we need here;
//! `tokio-postgres` directly would force the store thread to block on futures itself.
//!
//! Semantics are SQLite's, checked by `tests/store_conformance.rs`; concurrency is what
//! differs. Every method is one READ COMMITTED transaction, and where nodes compete:
//! - claims ([`Store::claim_due`]): due rows are taken `FOR UPDATE SKIP LOCKED`, so
//!   claimers never wait on each other's rows and never get the same call; a trunk with
//!   limits is serialised by a transaction-scoped advisory lock taken before its load is
//!   counted (trunks locked in name order: no deadlock); a number is locked with a *try*
//!   advisory lock and re-checked in a later statement, so two nodes never dial one number
//!   at once;
//! - outbox leases: the head event of each call, `FOR UPDATE SKIP LOCKED`;
//! - take-over: `DELETE` of the dead node's row decides the one winner;
//! - migrations: one advisory lock, so nodes starting together migrate once.
//!
//! Failure: a lost connection is a [`StoreError::Pg`] from the method that hit it (fail
//! closed: nothing of that transaction is committed); the next call reconnects. Statements
//! time out server-side (`statement_timeout`, `lock_timeout`), so a hung server cannot
//! block the store thread for ever. Errors and logs name the server by its URL with the
//! password replaced by `***`; a database error is shown as its code and message only
//! (PostgreSQL's DETAIL may quote a row: phone numbers are personal data).
//!
//! Not here: TLS (connect over loopback, a private network or a local socket; `NoTls`),
//! connection pooling (one connection, owned by the store thread, is the design).

mod migrations;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::ToSql;
use ::postgres::{Client, Config, GenericClient, NoTls, Row, Statement};

use super::claims::{self, Candidate, Load};
use super::*;
use crate::crm::events::{Envelope, compose_body};
use crate::dialer::normalize_number;

/// A PostgreSQL error, shown without the server's DETAIL (which may quote personal data).
pub struct PgError(::postgres::Error);

impl PgError {
    /// The SQLSTATE, when the server answered with an error.
    pub fn code(&self) -> Option<&SqlState> {
        self.0.code()
    }

    /// The connection failed or is gone (not an error the server reported).
    pub fn is_connection(&self) -> bool {
        self.0.as_db_error().is_none()
    }

    /// After this error the connection cannot be used any more: an I/O or protocol error,
    /// a FATAL from the server (terminated, shutting down), a connection exception (08…)
    /// or operator intervention (57P…).
    pub fn breaks_connection(&self) -> bool {
        match self.0.as_db_error() {
            None => true,
            Some(db) => {
                let code = db.code().code();
                matches!(db.severity(), "FATAL" | "PANIC")
                    || code.starts_with("08")
                    || code.starts_with("57P")
            }
        }
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(db) = self.0.as_db_error() {
            return write!(f, "{} ({})", db.message(), db.code().code());
        }
        write!(f, "{}", self.0)?;
        let mut source = std::error::Error::source(&self.0);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl fmt::Debug for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgError({self})")
    }
}

impl std::error::Error for PgError {}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> StoreError {
        StoreError::Pg(PgError(e))
    }
}

/// `url` with its password replaced by `***` (in the user part and in a `password=`
/// query parameter), for errors and logs.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), url),
    };
    let q = rest.find('?').unwrap_or(rest.len());
    let (pre, query) = rest.split_at(q);
    let pre = match pre.rfind('@') {
        Some(at) => {
            let user = pre[..at].split(':').next().unwrap_or("");
            let had_password = pre[..at].contains(':');
            let host = &pre[at + 1..];
            if had_password {
                format!("{user}:***@{host}")
            } else {
                format!("{user}@{host}")
            }
        }
        None => pre.to_owned(),
    };
    let query = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.trim_start_matches('?').eq_ignore_ascii_case("password") => {
                format!("{k}=***")
            }
            _ => kv.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}{pre}{query}")
}

type Cache = HashMap<String, Statement>;

pub struct PgStore {
    config: Config,
    client: Option<Client>,
    /// Prepared statements of the current connection.
    stmts: Cache,
    node: String,
    /// The URL without its password.
    target: String,
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

/// Statements and the idle part of a transaction are bounded server-side.
const SESSION: &str = "SET statement_timeout = '30s'; SET lock_timeout = '10s'; \
     SET idle_in_transaction_session_timeout = '60s'";

/// The advisory lock migrations run under.
const MIGRATION_LOCK: &str = "migrations";

fn prep<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
) -> Result<Statement, StoreError> {
    if let Some(s) = cache.get(sql) {
        return Ok(s.clone());
    }
    let s = c.prepare(sql)?;
    cache.insert(sql.to_owned(), s.clone());
    Ok(s)
}

fn query<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let st = prep(c, cache, sql)?;
    Ok(c.query(&st, params)?)
}

fn query_opt<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>, StoreError> {
    let st = prep(c, cache, sql)?;
    Ok(c.query_opt(&st, params)?)
}

fn query_one<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row, StoreError> {
    let st = prep(c, cache, sql)?;
    Ok(c.query_one(&st, params)?)
}

fn execute<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let st = prep(c, cache, sql)?;
    Ok(c.execute(&st, params)?)
}

fn json_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn call_from_row(r: &Row) -> Result<CallRecord, StoreError> {
    let direction: String = r.try_get(1)?;
    let state: String = r.try_get(2)?;
    let variables: String = r.try_get(6)?;
    let result: Option<String> = r.try_get(15)?;
    let trace: Option<String> = r.try_get(16)?;
    let id: String = r.try_get(0)?;
    let bad = |what: &str, v: &str| StoreError::Corrupt(format!("call {id}: {what} {v:?}"));
    Ok(CallRecord {
        direction: Direction::parse(&direction).ok_or_else(|| bad("direction", &direction))?,
        state: CallState::parse(&state).ok_or_else(|| bad("state", &state))?,
        scenario: r.try_get(3)?,
        to: r.try_get(4)?,
        from: r.try_get(5)?,
        variables: serde_json::from_str(&variables).unwrap_or_default(),
        not_before: r.try_get(7)?,
        idempotency_key: r.try_get(8)?,
        request_hash: r.try_get(9)?,
        sip_call_id: r.try_get(10)?,
        node: r.try_get(11)?,
        outcome: r.try_get(12)?,
        failure_reason: r.try_get(13)?,
        sip_code: r
            .try_get::<_, Option<i64>>(14)?
            .and_then(|c| u16::try_from(c).ok()),
        result: result.and_then(|s| serde_json::from_str(&s).ok()),
        trace: trace.and_then(|s| serde_json::from_str(&s).ok()),
        created_at: r.try_get(17)?,
        updated_at: r.try_get(18)?,
        started_at: r.try_get(19)?,
        answered_at: r.try_get(20)?,
        ended_at: r.try_get(21)?,
        dial: r
            .try_get::<_, Option<String>>(22)?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        dial_attempts: r.try_get::<_, i64>(23)?.clamp(0, i64::from(u32::MAX)) as u32,
        id,
    })
}

fn event_from_row(r: &Row) -> Result<EventRecord, StoreError> {
    let status: String = r.try_get(5)?;
    let id: String = r.try_get(0)?;
    Ok(EventRecord {
        status: EventStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("event {id}: status {status:?}")))?,
        id,
        call_id: r.try_get(1)?,
        seq: r.try_get(2)?,
        kind: r.try_get(3)?,
        payload: r.try_get(4)?,
        attempts: r.try_get::<_, i64>(6)?.clamp(0, i64::from(u32::MAX)) as u32,
        next_attempt_at: r.try_get(7)?,
        last_error: r.try_get(8)?,
        created_at: r.try_get(9)?,
        updated_at: r.try_get(10)?,
        delivered_at: r.try_get(11)?,
        position: r.try_get(12)?,
    })
}

fn calls_from(rows: &[Row]) -> Result<Vec<CallRecord>, StoreError> {
    rows.iter().map(call_from_row).collect()
}

fn events_from(rows: &[Row]) -> Result<Vec<EventRecord>, StoreError> {
    rows.iter().map(event_from_row).collect()
}

fn get_call_in<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    id: &str,
) -> Result<Option<CallRecord>, StoreError> {
    let sql = format!("SELECT {CALL_COLS} FROM calls WHERE id = $1");
    query_opt(c, cache, &sql, &[&id])?
        .as_ref()
        .map(call_from_row)
        .transpose()
}

fn get_event_in<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    id: &str,
) -> Result<Option<EventRecord>, StoreError> {
    let sql = format!("SELECT {EVENT_COLS} FROM events e WHERE e.id = $1");
    query_opt(c, cache, &sql, &[&id])?
        .as_ref()
        .map(event_from_row)
        .transpose()
}

/// Insert a call; false when its idempotency key is taken (by a concurrent request).
fn insert_call<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    call: &NewCall,
    node: &str,
    at: UnixMs,
    now: UnixMs,
) -> Result<bool, StoreError> {
    let started = call.state.is_live().then_some(at);
    let answered = (call.state == CallState::Answered).then_some(at);
    let ended = matches!(
        call.state,
        CallState::Completed | CallState::Failed | CallState::Cancelled
    )
    .then_some(at);
    let n = execute(
        c,
        cache,
        "INSERT INTO calls (id, direction, state, scenario, to_number, from_number, variables, not_before, \
         idempotency_key, request_hash, sip_call_id, node, created_at, updated_at, started_at, answered_at, ended_at, dial, \
         campaign, to_norm) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[
            &call.id,
            &call.direction.as_str(),
            &call.state.as_str(),
            &call.scenario,
            &call.to,
            &call.from,
            &json_text(&call.variables),
            &call.not_before,
            &call.idempotency_key,
            &call.request_hash,
            &call.sip_call_id,
            &node,
            &now,
            &started.or(ended),
            &answered,
            &ended,
            &(call.dial != DialOptions::default()).then(|| json_text(&call.dial)),
            &call.dial.campaign,
            &call.to.as_deref().map(normalize_number),
        ],
    )?;
    Ok(n == 1)
}

/// Who records, and whether a start needs a claim.
#[derive(Clone, Copy)]
struct Recorder<'a> {
    node: &'a str,
    claims_required: bool,
}

/// Fencing (see [`StoreError::NotClaimed`]), with the call's row locked so no claim
/// changes under it.
fn check_claim<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    id: &str,
    u: &CallUpdate,
    who: Recorder<'_>,
    now: UnixMs,
) -> Result<(), StoreError> {
    if !who.claims_required || !u.state.is_some_and(CallState::is_live) {
        return Ok(());
    }
    let row = query_opt(
        c,
        cache,
        "SELECT state, claim_owner, claim_until FROM calls WHERE id = $1 FOR UPDATE",
        &[&id],
    )?;
    let Some(row) = row else {
        return Err(StoreError::NoSuchCall(id.to_owned()));
    };
    let state: String = row.try_get(0)?;
    let owner: Option<String> = row.try_get(1)?;
    let until: Option<i64> = row.try_get(2)?;
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

fn update_call<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    id: &str,
    u: &CallUpdate,
    at: UnixMs,
    now: UnixMs,
    who: Recorder<'_>,
) -> Result<(), StoreError> {
    check_claim(c, cache, id, u, who, now)?;
    let (reason, code) = match &u.failure {
        Some((r, c)) => (Some(r.as_str()), c.map(i64::from)),
        None => (None, None),
    };
    let n = execute(
        c,
        cache,
        "UPDATE calls SET \
           state = COALESCE($1, state), \
           sip_call_id = COALESCE($2, sip_call_id), \
           outcome = COALESCE($3, outcome), \
           failure_reason = COALESCE($4, failure_reason), \
           sip_code = COALESCE($5, sip_code), \
           result = COALESCE($6, result), \
           trace = COALESCE($7, trace), \
           not_before = COALESCE($11, not_before), \
           dial_attempts = COALESCE($12, dial_attempts), \
           updated_at = $8, \
           started_at = CASE WHEN $1 IN ('started', 'answered') THEN COALESCE(started_at, $9) ELSE started_at END, \
           answered_at = CASE WHEN $1 = 'answered' THEN COALESCE(answered_at, $9) ELSE answered_at END, \
           ended_at = CASE WHEN $1 IN ('completed', 'failed', 'cancelled') THEN COALESCE(ended_at, $9) \
                           WHEN $1 = 'queued' THEN NULL ELSE ended_at END, \
           node = CASE WHEN $1 IN ('started', 'answered') AND state NOT IN ('started', 'answered') THEN $13 ELSE node END, \
           claim_owner = CASE WHEN $1 IS NOT NULL OR $11 IS NOT NULL THEN NULL ELSE claim_owner END, \
           claim_until = CASE WHEN $1 IS NOT NULL OR $11 IS NOT NULL THEN NULL ELSE claim_until END \
         WHERE id = $10",
        &[
            &u.state.map(CallState::as_str),
            &u.sip_call_id,
            &u.outcome,
            &reason,
            &code,
            &u.result.as_ref().map(json_text),
            &u.trace.as_ref().map(json_text),
            &now,
            &at,
            &id,
            &u.not_before,
            &u.dial_attempts.map(i64::from),
            &who.node,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchCall(id.to_owned()));
    }
    Ok(())
}

fn insert_event<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    call_id: &str,
    ev: &NewEvent,
    now: UnixMs,
) -> Result<(), StoreError> {
    let seq: i64 = query_one(
        c,
        cache,
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE call_id = $1",
        &[&call_id],
    )?
    .try_get(0)?;
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
    execute(
        c,
        cache,
        "INSERT INTO events (id, call_id, seq, type, payload, status, attempts, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
        &[&ev.id, &call_id, &seq, &ev.kind, &body, &now],
    )?;
    Ok(())
}

fn apply_record<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    who: Recorder<'_>,
    rec: &Record,
    now: UnixMs,
) -> Result<(), StoreError> {
    match &rec.change {
        CallChange::Insert(call) => {
            // A record has no idempotency race to lose: a taken key is an error here.
            if !insert_call(c, cache, call, who.node, rec.at, now)? {
                return Err(StoreError::Corrupt(format!(
                    "call {}: idempotency key already used",
                    rec.call_id
                )));
            }
        }
        CallChange::Update(u) => update_call(c, cache, &rec.call_id, u, rec.at, now, who)?,
    }
    if let Some(ev) = &rec.event {
        insert_event(c, cache, &rec.call_id, ev, now)?;
    }
    Ok(())
}

fn trunk_load<C: GenericClient>(
    c: &mut C,
    cache: &mut Cache,
    trunk: &str,
    now: UnixMs,
) -> Result<Load, StoreError> {
    let row = query_one(
        c,
        cache,
        "SELECT \
           (SELECT COUNT(*) FROM calls WHERE trunk = $1 AND state IN ('queued', 'started', 'answered') \
              AND (state <> 'queued' OR claim_until > $2)), \
           (SELECT COUNT(*) FROM calls WHERE trunk = $1 AND claimed_at > $3)",
        &[&trunk, &now, &(now.saturating_sub(claims::CPS_WINDOW_MS))],
    )?;
    Ok(Load {
        in_use: row.try_get::<_, i64>(0)?.max(0) as u64,
        recent: row.try_get::<_, i64>(1)?.max(0) as u64,
    })
}

impl PgStore {
    /// Connect to `url` (`postgres://USER:PASS@HOST:PORT/DB`) and bring its schema up to
    /// date. `node` names this process in call records, claims and leases.
    pub fn connect(url: &str, node: &str) -> Result<PgStore, StoreError> {
        let target = redact_url(url);
        let mut config: Config = url.parse().map_err(|_| StoreError::BadUrl {
            url: target.clone(),
            msg: "not a PostgreSQL connection URL (postgres://USER:PASS@HOST:PORT/DB)".to_owned(),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("ivrflow");
        }
        let mut store = PgStore {
            config,
            client: None,
            stmts: HashMap::new(),
            node: node.to_owned(),
            target,
            claims_required: true,
        };
        store.client()?;
        store.migrate()?;
        Ok(store)
    }

    /// Fencing (on by default): see [`crate::store::sqlite::SqliteStore::require_claims`].
    pub fn require_claims(mut self, on: bool) -> PgStore {
        self.claims_required = on;
        self
    }

    /// The server, as errors and logs name it (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The connection, made anew if there is none or it broke.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.stmts.clear();
            let mut c = self.config.connect(NoTls).map_err(|e| StoreError::Open {
                path: self.target.clone(),
                msg: PgError(e).to_string(),
            })?;
            c.batch_execute(SESSION)?;
            tracing::info!(store = %self.target, node = %self.node, "connected to PostgreSQL");
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("no connection".to_owned()))
    }

    /// Run one store method; a connection it found broken is dropped, so the next method
    /// connects anew (the client does not always notice a reset by itself).
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut PgStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let r = f(self);
        if let Err(StoreError::Pg(e)) = &r
            && e.breaks_connection()
        {
            tracing::warn!(store = %self.target, error = %e, "PostgreSQL connection lost; reconnecting on the next call");
            self.client = None;
            self.stmts.clear();
        }
        r
    }

    /// The connection and the statement cache, borrowed together.
    fn parts(&mut self) -> Result<(&mut Client, &mut Cache), StoreError> {
        self.client()?;
        let PgStore { client, stmts, .. } = self;
        let c = client
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("no connection".to_owned()))?;
        Ok((c, stmts))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let target = self.target.clone();
        let c = self.client()?;
        let lock = claims::lock_key("ivrflow", MIGRATION_LOCK);
        for (version, description, sql) in migrations::MIGRATIONS {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock])?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version (
                     version BIGINT PRIMARY KEY,
                     description TEXT NOT NULL,
                     applied_at BIGINT NOT NULL)",
            )?;
            let current: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
                    &[],
                )?
                .try_get(0)?;
            let known = migrations::latest();
            if current > known {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    known,
                });
            }
            if current >= *version {
                tx.commit()?;
                continue;
            }
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                &[
                    version,
                    description,
                    &crate::crm::events::unix_ms(std::time::SystemTime::now()),
                ],
            )?;
            tx.commit()?;
            tracing::info!(store = %target, version, description, "database migrated");
        }
        Ok(())
    }
}

impl Store for PgStore {
    fn node(&self) -> &str {
        &self.node
    }

    fn schema_version(&mut self) -> Result<i64, StoreError> {
        self.guarded(|s| {
            let (c, _) = s.parts()?;
            Ok(c.query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
                &[],
            )?
            .try_get(0)?)
        })
    }

    fn create_call(
        &mut self,
        call: &NewCall,
        event: &NewEvent,
        now: UnixMs,
    ) -> Result<Created, StoreError> {
        self.guarded(|s| {
            let node = s.node.clone();
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            let existing = |tx: &mut ::postgres::Transaction<'_>,
                            cache: &mut Cache|
             -> Result<Option<Created>, StoreError> {
                let Some(key) = &call.idempotency_key else {
                    return Ok(None);
                };
                let sql = format!("SELECT {CALL_COLS} FROM calls WHERE idempotency_key = $1");
                let found = query_opt(tx, cache, &sql, &[key])?
                    .as_ref()
                    .map(call_from_row)
                    .transpose()?;
                Ok(found.map(|c| {
                    if c.request_hash == call.request_hash {
                        Created::Existing(c)
                    } else {
                        Created::Conflict(c)
                    }
                }))
            };
            if let Some(found) = existing(&mut tx, cache)? {
                return Ok(found);
            }
            if !insert_call(&mut tx, cache, call, &node, now, now)? {
                // Another node won the key between our look and our insert.
                return existing(&mut tx, cache)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("call {}: idempotency key vanished", call.id))
                });
            }
            insert_event(&mut tx, cache, &call.id, event, now)?;
            let rec = get_call_in(&mut tx, cache, &call.id)?
                .ok_or_else(|| StoreError::Corrupt(format!("call {} vanished", call.id)))?;
            tx.commit()?;
            Ok(Created::New(rec))
        })
    }

    fn get_call(&mut self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            get_call_in(c, cache, id)
        })
    }

    fn cancel_call(&mut self, id: &str, now: UnixMs) -> Result<Cancelled, StoreError> {
        self.guarded(|s| {
            let node = s.node.clone();
            let claims_required = s.claims_required;
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            let sql = format!("SELECT {CALL_COLS} FROM calls WHERE id = $1 FOR UPDATE");
            let Some(call) = query_opt(&mut tx, cache, &sql, &[&id])?
                .as_ref()
                .map(call_from_row)
                .transpose()?
            else {
                return Ok(Cancelled::NotFound);
            };
            if call.state != CallState::Queued {
                return Ok(Cancelled::NotQueued(call));
            }
            update_call(
                &mut tx,
                cache,
                id,
                &CallUpdate {
                    state: Some(CallState::Cancelled),
                    ..CallUpdate::default()
                },
                now,
                now,
                Recorder {
                    node: &node,
                    claims_required,
                },
            )?;
            let call = get_call_in(&mut tx, cache, id)?
                .ok_or_else(|| StoreError::NoSuchCall(id.to_owned()))?;
            tx.commit()?;
            Ok(Cancelled::Done(call))
        })
    }

    fn record(
        &mut self,
        records: &[Record],
        now: UnixMs,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.guarded(|s| {
            let node = s.node.clone();
            let who = Recorder {
                node: &node,
                claims_required: s.claims_required,
            };
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            let mut results = Vec::with_capacity(records.len());
            for rec in records {
                let mut sp = tx.transaction()?;
                match apply_record(&mut sp, cache, who, rec, now) {
                    Ok(()) => {
                        sp.commit()?;
                        results.push(Ok(()));
                    }
                    Err(e) => {
                        // Back to the savepoint: this record alone is rolled back. A broken
                        // connection fails the whole batch.
                        sp.rollback()?;
                        if matches!(&e, StoreError::Pg(p) if p.breaks_connection()) {
                            return Err(e);
                        }
                        results.push(Err(e));
                    }
                }
            }
            tx.commit()?;
            Ok(results)
        })
    }

    fn live_calls(&mut self, node: &str) -> Result<Vec<CallRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let sql = format!(
                "SELECT {CALL_COLS} FROM calls WHERE node = $1 AND state IN ('started', 'answered') \
                 ORDER BY created_at, id"
            );
            calls_from(&query(c, cache, &sql, &[&node])?)
        })
    }

    fn lease_due_for(
        &mut self,
        node: &str,
        now: UnixMs,
        lease_until: UnixMs,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            let sql = format!(
                "WITH due AS (SELECT e.position FROM events e \
                   WHERE e.status = 'pending' AND e.next_attempt_at <= $1 \
                     AND (e.lease_until IS NULL OR e.lease_until <= $1) AND {HEAD_OF_CALL} \
                   ORDER BY e.next_attempt_at, e.position LIMIT $2 FOR UPDATE OF e SKIP LOCKED) \
                 UPDATE events e SET lease_until = $3, lease_owner = $4 FROM due \
                 WHERE e.position = due.position RETURNING {EVENT_COLS}"
            );
            let rows = query(
                &mut tx,
                cache,
                &sql,
                &[&now, &i64::from(limit), &lease_until, &node],
            )?;
            let mut due = events_from(&rows)?;
            tx.commit()?;
            due.sort_by_key(|e| (e.next_attempt_at, e.position));
            Ok(due)
        })
    }

    fn next_due(&mut self) -> Result<Option<UnixMs>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let sql = format!(
                "SELECT MIN(GREATEST(e.next_attempt_at, COALESCE(e.lease_until, 0))) FROM events e \
                 WHERE e.status = 'pending' AND {HEAD_OF_CALL}"
            );
            Ok(query_one(c, cache, &sql, &[])?.try_get(0)?)
        })
    }

    fn finish_attempts(&mut self, done: &[AttemptDone], now: UnixMs) -> Result<(), StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            for d in done {
                let a = &d.attempt;
                execute(
                    &mut tx,
                    cache,
                    "INSERT INTO deliveries (event_id, attempt, started_at, duration_ms, status_code, error, result) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &a.event_id,
                        &i64::from(a.attempt),
                        &a.started_at,
                        &to_i64(a.duration_ms),
                        &a.status_code.map(i64::from),
                        &a.error,
                        &a.result,
                    ],
                )?;
                match &d.transition {
                    Transition::Delivered => execute(
                        &mut tx,
                        cache,
                        "UPDATE events SET status = 'delivered', attempts = attempts + 1, delivered_at = $2, \
                         lease_until = NULL, lease_owner = NULL, last_error = NULL, updated_at = $2 \
                         WHERE id = $1 AND status = 'pending'",
                        &[&a.event_id, &now],
                    )?,
                    Transition::Retry { at, error } => execute(
                        &mut tx,
                        cache,
                        "UPDATE events SET attempts = attempts + 1, next_attempt_at = $3, lease_until = NULL, \
                         lease_owner = NULL, last_error = $4, updated_at = $2 WHERE id = $1 AND status = 'pending'",
                        &[&a.event_id, &now, at, error],
                    )?,
                    Transition::Dead { error } => execute(
                        &mut tx,
                        cache,
                        "UPDATE events SET status = 'dead', attempts = attempts + 1, lease_until = NULL, \
                         lease_owner = NULL, last_error = $3, updated_at = $2 WHERE id = $1 AND status = 'pending'",
                        &[&a.event_id, &now, error],
                    )?,
                };
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn release_leases_of(&mut self, node: &str) -> Result<u64, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            execute(
                c,
                cache,
                "UPDATE events SET lease_until = NULL, lease_owner = NULL \
                 WHERE lease_until IS NOT NULL AND (lease_owner = $1 OR lease_owner IS NULL)",
                &[&node],
            )
        })
    }

    fn list_events(&mut self, f: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events e \
                 WHERE ($1::text IS NULL OR e.status = $1) AND ($2::text IS NULL OR e.call_id = $2) \
                   AND e.position > $3 \
                 ORDER BY e.position LIMIT $4"
            );
            let rows = query(
                c,
                cache,
                &sql,
                &[
                    &f.status.map(EventStatus::as_str),
                    &f.call_id,
                    &f.after.unwrap_or(0),
                    &i64::from(f.limit),
                ],
            )?;
            events_from(&rows)
        })
    }

    fn get_event(&mut self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            get_event_in(c, cache, id)
        })
    }

    fn call_events(&mut self, call_id: &str) -> Result<Vec<EventRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let sql =
                format!("SELECT {EVENT_COLS} FROM events e WHERE e.call_id = $1 ORDER BY e.seq");
            events_from(&query(c, cache, &sql, &[&call_id])?)
        })
    }

    fn call_attempts(&mut self, call_id: &str) -> Result<Vec<Attempt>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let rows = query(
                c,
                cache,
                "SELECT d.event_id, d.attempt, d.started_at, d.duration_ms, d.status_code, d.error, d.result \
                 FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.call_id = $1 ORDER BY d.id",
                &[&call_id],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(Attempt {
                        event_id: r.try_get(0)?,
                        attempt: r.try_get::<_, i64>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
                        started_at: r.try_get(2)?,
                        duration_ms: r.try_get::<_, i64>(3)?.max(0) as u64,
                        status_code: r
                            .try_get::<_, Option<i64>>(4)?
                            .and_then(|c| u16::try_from(c).ok()),
                        error: r.try_get(5)?,
                        result: r.try_get(6)?,
                    })
                })
                .collect()
        })
    }

    fn replay_event(&mut self, id: &str, now: UnixMs) -> Result<Replayed, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            let sql = format!("SELECT {EVENT_COLS} FROM events e WHERE e.id = $1 FOR UPDATE");
            let Some(e) = query_opt(&mut tx, cache, &sql, &[&id])?
                .as_ref()
                .map(event_from_row)
                .transpose()?
            else {
                return Ok(Replayed::NotFound);
            };
            if e.status == EventStatus::Pending {
                return Ok(Replayed::AlreadyPending(e));
            }
            execute(
                &mut tx,
                cache,
                "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = $2, lease_until = NULL, \
                 lease_owner = NULL, delivered_at = NULL, updated_at = $2 WHERE id = $1",
                &[&id, &now],
            )?;
            let e = get_event_in(&mut tx, cache, id)?
                .ok_or_else(|| StoreError::Corrupt(format!("event {id} vanished")))?;
            tx.commit()?;
            Ok(Replayed::Done(e))
        })
    }

    fn queued_calls(&mut self) -> Result<Vec<CallRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let sql = format!(
                "SELECT {CALL_COLS} FROM calls WHERE state = 'queued' AND direction = 'outbound' \
                 ORDER BY COALESCE(not_before, 0), created_at, id"
            );
            calls_from(&query(c, cache, &sql, &[])?)
        })
    }

    fn dnc_numbers(&mut self) -> Result<Vec<String>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            query(c, cache, "SELECT number FROM dnc ORDER BY number", &[])?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect()
        })
    }

    fn add_dnc(&mut self, number: &str, source: &str, now: UnixMs) -> Result<bool, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            Ok(execute(
                c,
                cache,
                "INSERT INTO dnc (number, source, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&normalize_number(number), &source, &now],
            )? == 1)
        })
    }

    fn remove_dnc(&mut self, number: &str) -> Result<bool, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            Ok(execute(
                c,
                cache,
                "DELETE FROM dnc WHERE number = $1",
                &[&normalize_number(number)],
            )? == 1)
        })
    }

    fn stats(&mut self) -> Result<Stats, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let mut s = Stats::default();
            for r in query(
                c,
                cache,
                "SELECT state, COUNT(*) FROM calls GROUP BY state",
                &[],
            )? {
                s.calls_by_state
                    .insert(r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64);
            }
            for r in query(
                c,
                cache,
                "SELECT status, COUNT(*) FROM events GROUP BY status",
                &[],
            )? {
                s.events_by_status
                    .insert(r.try_get(0)?, r.try_get::<_, i64>(1)?.max(0) as u64);
            }
            s.oldest_pending = query_one(
                c,
                cache,
                "SELECT MIN(created_at) FROM events WHERE status = 'pending'",
                &[],
            )?
            .try_get(0)?;
            Ok(s)
        })
    }

    fn list_calls(&mut self, f: &CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            // The trace is left out (NULL in its place): a page of calls does not need it.
            let cols = CALL_COLS.replace(" trace,", " NULL::text,");
            let sql = format!(
                "SELECT {cols} FROM calls \
                 WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR direction = $2) \
                   AND ($3::text IS NULL OR scenario = $3) \
                   AND ($4::text IS NULL OR (direction = 'outbound' AND (campaign = $4 OR ($5 AND campaign IS NULL)))) \
                   AND ($6::bigint IS NULL OR created_at < $6 OR (created_at = $6 AND id < $7)) \
                 ORDER BY created_at DESC, id DESC LIMIT $8"
            );
            let (after_at, after_id) = match &f.after {
                Some((at, id)) => (Some(*at), Some(id.as_str())),
                None => (None, None),
            };
            let rows = query(
                c,
                cache,
                &sql,
                &[
                    &f.state.map(CallState::as_str),
                    &f.direction.map(Direction::as_str),
                    &f.scenario,
                    &f.campaign,
                    &f.campaign_or_none,
                    &after_at,
                    &after_id,
                    &i64::from(f.limit),
                ],
            )?;
            calls_from(&rows)
        })
    }

    fn dialer_queue(&mut self, now: UnixMs) -> Result<Vec<QueueCount>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let rows = query(
                c,
                cache,
                "SELECT campaign, \
                   CASE WHEN state = 'queued' AND COALESCE(not_before, 0) > $1 THEN 'waiting' \
                        WHEN state = 'queued' THEN 'due' ELSE state END AS place, \
                   COUNT(*) \
                 FROM calls WHERE direction = 'outbound' AND state IN ('queued', 'started', 'answered') \
                 GROUP BY campaign, place ORDER BY campaign NULLS FIRST, place",
                &[&now],
            )?;
            rows.iter()
                .map(|r| {
                    Ok(QueueCount {
                        campaign: r.try_get(0)?,
                        state: r.try_get(1)?,
                        calls: r.try_get::<_, i64>(2)?.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    fn heartbeat(&mut self, node: &str, now: UnixMs, ttl_ms: u64) -> Result<(), StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            execute(
                c,
                cache,
                "INSERT INTO nodes (name, last_seen, expires_at, leaving) VALUES ($1, $2, $3, FALSE) \
                 ON CONFLICT (name) DO UPDATE SET last_seen = EXCLUDED.last_seen, expires_at = EXCLUDED.expires_at",
                &[&node, &now, &now.saturating_add(to_i64(ttl_ms))],
            )?;
            Ok(())
        })
    }

    fn mark_leaving(&mut self, node: &str, now: UnixMs) -> Result<bool, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            Ok(execute(
                c,
                cache,
                "UPDATE nodes SET leaving = TRUE, last_seen = GREATEST(last_seen, $2) WHERE name = $1",
                &[&node, &now],
            )? == 1)
        })
    }

    fn nodes(&mut self) -> Result<Vec<NodeInfo>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            query(
                c,
                cache,
                "SELECT name, last_seen, expires_at, leaving FROM nodes ORDER BY name",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(NodeInfo {
                    name: r.try_get(0)?,
                    last_seen: r.try_get(1)?,
                    expires_at: r.try_get(2)?,
                    leaving: r.try_get(3)?,
                })
            })
            .collect()
        })
    }

    fn dead_nodes(&mut self, now: UnixMs) -> Result<Vec<String>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            query(
                c,
                cache,
                "SELECT name FROM nodes WHERE expires_at <= $1 ORDER BY name",
                &[&now],
            )?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
        })
    }

    fn take_over(
        &mut self,
        dead: &str,
        by: &str,
        now: UnixMs,
    ) -> Result<Option<TakeOver>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            // The row lock decides: a second survivor waits here, then deletes nothing.
            let won = execute(
                &mut tx,
                cache,
                "DELETE FROM nodes WHERE name = $1 AND expires_at <= $2",
                &[&dead, &now],
            )?;
            if won == 0 {
                return Ok(None);
            }
            let sql = format!(
                "UPDATE calls SET node = $2, updated_at = $3 \
                 WHERE node = $1 AND state IN ('started', 'answered') RETURNING {CALL_COLS}"
            );
            let mut live_calls = calls_from(&query(&mut tx, cache, &sql, &[&dead, &by, &now])?)?;
            live_calls.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            let claims_released = execute(
                &mut tx,
                cache,
                "UPDATE calls SET claim_owner = NULL, claim_until = NULL WHERE claim_owner = $1",
                &[&dead],
            )?;
            let leases_released = execute(
                &mut tx,
                cache,
                "UPDATE events SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
                &[&dead],
            )?;
            tx.commit()?;
            Ok(Some(TakeOver {
                live_calls,
                claims_released,
                leases_released,
            }))
        })
    }

    fn leave(&mut self, node: &str) -> Result<Left, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            let claims_released = execute(
                &mut tx,
                cache,
                "UPDATE calls SET claim_owner = NULL, claim_until = NULL WHERE claim_owner = $1",
                &[&node],
            )?;
            let leases_released = execute(
                &mut tx,
                cache,
                "UPDATE events SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
                &[&node],
            )?;
            let live: i64 = query_one(
                &mut tx,
                cache,
                "SELECT COUNT(*) FROM calls WHERE node = $1 AND state IN ('started', 'answered')",
                &[&node],
            )?
            .try_get(0)?;
            execute(
                &mut tx,
                cache,
                "DELETE FROM nodes WHERE name = $1",
                &[&node],
            )?;
            tx.commit()?;
            Ok(Left {
                claims_released,
                leases_released,
                live_calls: live.max(0) as u64,
            })
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
        self.guarded(|s| {
            let claim_until = now.saturating_add(to_i64(lease_ms));
            let (c, cache) = s.parts()?;
            let mut tx = c.transaction()?;
            let leaving: Option<bool> = query_opt(
                &mut tx,
                cache,
                "SELECT leaving FROM nodes WHERE name = $1",
                &[&node],
            )?
            .map(|r| r.try_get(0))
            .transpose()?;
            if leaving == Some(true) || limit == 0 {
                return Ok(Vec::new());
            }
            // Limited trunks: lock (in name order, so two claimers cannot deadlock), then
            // count their load. Until this transaction ends no other node claims on them, and
            // the counts include every claim committed before the lock was ours.
            let mut limited: Vec<&str> = trunks
                .iter()
                .filter(|t| claims::is_limited(t))
                .map(|t| t.name.as_str())
                .collect();
            limited.sort_unstable();
            limited.dedup();
            let mut loads = BTreeMap::new();
            for name in limited {
                execute(
                    &mut tx,
                    cache,
                    "SELECT pg_advisory_xact_lock($1)",
                    &[&claims::lock_key("trunk", name)],
                )?;
                loads.insert(name.to_owned(), trunk_load(&mut tx, cache, name, now)?);
            }
            let f = claims::filter(trunks, &loads);
            let sql = format!(
                "SELECT {CALL_COLS}, to_norm, EXISTS (SELECT 1 FROM dnc d WHERE d.number = c.to_norm) \
                 FROM calls c \
                 WHERE c.state = 'queued' AND c.direction = 'outbound' AND COALESCE(c.not_before, 0) <= $1 \
                   AND (c.claim_until IS NULL OR c.claim_until <= $1) \
                   AND NOT EXISTS (SELECT 1 FROM campaigns p \
                       WHERE p.name = COALESCE(c.campaign, '{DEFAULT_CAMPAIGN}') AND p.paused) \
                   AND NOT EXISTS (SELECT 1 FROM calls o \
                       WHERE o.to_norm = c.to_norm AND o.id <> c.id AND o.direction = 'outbound' \
                         AND o.state IN ('queued', 'started', 'answered') \
                         AND (o.state <> 'queued' OR o.claim_until > $1)) \
                   AND NOT (COALESCE(c.campaign, '{DEFAULT_CAMPAIGN}') = ANY ($2::text[])) \
                   AND NOT ($3::bool AND NOT (COALESCE(c.campaign, '{DEFAULT_CAMPAIGN}') = ANY ($4::text[]))) \
                 ORDER BY COALESCE(c.not_before, 0), c.created_at, c.id LIMIT $5 \
                 FOR UPDATE OF c SKIP LOCKED"
            );
            let rows = query(
                &mut tx,
                cache,
                &sql,
                &[
                    &now,
                    &f.blocked,
                    &f.default_blocked,
                    &f.mapped,
                    &i64::from(limit),
                ],
            )?;
            let mut candidates = Vec::with_capacity(rows.len());
            for r in &rows {
                candidates.push(Candidate {
                    call: call_from_row(r)?,
                    number: r.try_get(24)?,
                    dnc: r.try_get(25)?,
                });
            }
            // One call per number over all nodes: lock each number to be dialled (try: never
            // wait), then look again in a new statement, which sees every claim committed
            // before our lock. A number another claimer holds is skipped this round.
            let numbers: Vec<String> = candidates
                .iter()
                .filter(|c| !c.dnc)
                .filter_map(|c| c.number.clone())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let mut busy = HashSet::new();
            if !numbers.is_empty() {
                let keys: Vec<i64> = numbers
                    .iter()
                    .map(|n| claims::lock_key("number", n))
                    .collect();
                let failed = query(
                    &mut tx,
                    cache,
                    "SELECT k FROM unnest($1::bigint[]) AS k WHERE NOT pg_try_advisory_xact_lock(k)",
                    &[&keys],
                )?;
                let failed: HashSet<i64> = failed
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                for (n, k) in numbers.iter().zip(&keys) {
                    if failed.contains(k) {
                        busy.insert(n.clone());
                    }
                }
                let ids: Vec<&str> = candidates.iter().map(|c| c.call.id.as_str()).collect();
                for r in query(
                    &mut tx,
                    cache,
                    "SELECT DISTINCT to_norm FROM calls \
                     WHERE to_norm = ANY ($1::text[]) AND direction = 'outbound' \
                       AND state IN ('queued', 'started', 'answered') \
                       AND (state <> 'queued' OR claim_until > $2) AND NOT (id = ANY ($3::text[]))",
                    &[&numbers, &now, &ids],
                )? {
                    busy.insert(r.try_get(0)?);
                }
            }
            let chosen = claims::choose(
                candidates,
                trunks,
                consent_required,
                &mut loads,
                &busy,
                limit,
                claim_until,
            );
            if !chosen.is_empty() {
                let ids: Vec<&str> = chosen.iter().map(|c| c.call.id.as_str()).collect();
                let via: Vec<Option<&str>> = chosen.iter().map(|c| c.trunk.as_deref()).collect();
                execute(
                    &mut tx,
                    cache,
                    "UPDATE calls c SET claim_owner = $2, claim_until = $3, trunk = u.trunk, \
                       claimed_at = CASE WHEN u.trunk IS NOT NULL THEN $4 ELSE c.claimed_at END \
                     FROM unnest($1::text[], $5::text[]) AS u (id, trunk) WHERE c.id = u.id",
                    &[&ids, &node, &claim_until, &now, &via],
                )?;
            }
            tx.commit()?;
            Ok(chosen)
        })
    }

    fn release_claim(&mut self, call_id: &str, node: &str) -> Result<bool, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            Ok(execute(
                c,
                cache,
                "UPDATE calls SET claim_owner = NULL, claim_until = NULL \
                 WHERE id = $1 AND claim_owner = $2 AND state = 'queued'",
                &[&call_id, &node],
            )? == 1)
        })
    }

    fn set_campaign_paused(
        &mut self,
        name: &str,
        paused: bool,
        now: UnixMs,
    ) -> Result<(), StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            execute(
                c,
                cache,
                "INSERT INTO campaigns (name, paused, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = EXCLUDED.updated_at",
                &[&name, &paused, &now],
            )?;
            Ok(())
        })
    }

    fn campaign_summaries(&mut self, now: UnixMs) -> Result<Vec<CampaignSummary>, StoreError> {
        self.guarded(|s| {
            let (c, cache) = s.parts()?;
            let mut out: BTreeMap<String, CampaignSummary> = BTreeMap::new();
            for r in query(c, cache, "SELECT name, paused FROM campaigns", &[])? {
                out.entry(r.try_get(0)?).or_default().paused = r.try_get(1)?;
            }
            let sql = format!(
                "SELECT COALESCE(campaign, '{DEFAULT_CAMPAIGN}'), state, \
                   CASE WHEN state = 'completed' THEN COALESCE(outcome, 'unknown') \
                        WHEN state = 'failed' THEN COALESCE(failure_reason, 'unknown') ELSE '' END, \
                   SUM(CASE WHEN state = 'queued' AND COALESCE(not_before, 0) <= $1 THEN 1 ELSE 0 END)::BIGINT, \
                   COUNT(*) \
                 FROM calls WHERE direction = 'outbound' GROUP BY 1, 2, 3"
            );
            for r in query(c, cache, &sql, &[&now])? {
                let name: String = r.try_get(0)?;
                let state: String = r.try_get(1)?;
                claims::add_to_summary(
                    out.entry(name).or_default(),
                    &state,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                );
            }
            Ok(out
                .into_iter()
                .map(|(name, s)| CampaignSummary { name, ..s })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://ivr:s3cr%40t@db.local:5432/ivrflow"),
            "postgres://ivr:***@db.local:5432/ivrflow"
        );
        assert_eq!(
            redact_url("postgresql://ivr@db/ivrflow?sslmode=disable&password=x"),
            "postgresql://ivr@db/ivrflow?sslmode=disable&password=***"
        );
        // An unescaped '/' or '@' in the password does not leak it either.
        assert_eq!(
            redact_url("postgres://u:a/b@c@h:1/db"),
            "postgres://u:***@h:1/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn a_server_that_is_not_there_is_an_error_that_names_it_without_the_password() {
        // Port 1 on loopback: nothing listens there.
        let err = PgStore::connect("postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2", "n")
            .err()
            .expect("no server");
        let text = err.to_string();
        assert!(text.contains("postgres://u:***@127.0.0.1:1/db"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
