//! Versioned schema migrations for the SQLite store.
//!
//! `schema_version` holds one row per applied migration. A migration is applied in its own
//! transaction together with its row, so a crash leaves the schema at a known version.
//! Never edit a released migration; append a new one. The SQL sticks to what PostgreSQL
//! also accepts where it can (INTEGER milliseconds for time, TEXT for JSON); PostgreSQL has
//! its own list (`store::postgres::migrations`) with the same tables and columns.

/// `(version, description, SQL)` in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "calls, outbox events, delivery attempts",
        r#"
CREATE TABLE calls (
    id              TEXT PRIMARY KEY,
    direction       TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    state           TEXT NOT NULL,
    scenario        TEXT NOT NULL,
    to_number       TEXT,
    from_number     TEXT,
    variables       TEXT NOT NULL DEFAULT '{}',
    not_before      INTEGER,
    idempotency_key TEXT UNIQUE,
    request_hash    TEXT,
    sip_call_id     TEXT,
    node            TEXT NOT NULL,
    outcome         TEXT,
    failure_reason  TEXT,
    sip_code        INTEGER,
    result          TEXT,
    trace           TEXT,
    dial_attempts   INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    started_at      INTEGER,
    answered_at     INTEGER,
    ended_at        INTEGER
);
CREATE INDEX calls_by_state ON calls (state, not_before);
CREATE INDEX calls_by_sip_call_id ON calls (sip_call_id);

CREATE TABLE events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    call_id         TEXT NOT NULL REFERENCES calls (id),
    seq             INTEGER NOT NULL,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    UNIQUE (call_id, seq)
);
CREATE INDEX events_due ON events (status, next_attempt_at);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT NOT NULL REFERENCES events (id),
    attempt         INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    duration_ms     INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    result          TEXT NOT NULL
);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
"#,
    ),
    (
        2,
        "dialer options per call, do-not-call list",
        r#"
ALTER TABLE calls ADD COLUMN dial TEXT;
CREATE TABLE dnc (
    number      TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
"#,
    ),
    (
        3,
        "campaign column and listing indexes (GET /v1/calls, dialer queue metrics)",
        r#"
ALTER TABLE calls ADD COLUMN campaign TEXT;
UPDATE calls SET campaign = json_extract(dial, '$.campaign') WHERE dial IS NOT NULL;
CREATE INDEX calls_by_campaign ON calls (campaign, state);
CREATE INDEX calls_by_created ON calls (created_at, id);
"#,
    ),
    (
        4,
        "several nodes: claims on due calls, outbox lease owners, nodes, campaigns",
        r#"
ALTER TABLE calls ADD COLUMN to_norm TEXT;
ALTER TABLE calls ADD COLUMN claim_owner TEXT;
ALTER TABLE calls ADD COLUMN claim_until INTEGER;
ALTER TABLE calls ADD COLUMN claimed_at INTEGER;
ALTER TABLE calls ADD COLUMN trunk TEXT;
CREATE INDEX calls_due ON calls (not_before, created_at) WHERE state = 'queued' AND direction = 'outbound';
CREATE INDEX calls_by_number ON calls (to_norm) WHERE state IN ('queued', 'started', 'answered');
CREATE INDEX calls_trunk_busy ON calls (trunk) WHERE state IN ('queued', 'started', 'answered');
CREATE INDEX calls_trunk_recent ON calls (trunk, claimed_at);
CREATE INDEX calls_by_claim_owner ON calls (claim_owner) WHERE claim_owner IS NOT NULL;
CREATE INDEX calls_live_by_node ON calls (node) WHERE state IN ('started', 'answered');
ALTER TABLE events ADD COLUMN lease_owner TEXT;
CREATE INDEX events_by_lease_owner ON events (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE nodes (
    name        TEXT PRIMARY KEY,
    last_seen   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    leaving     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE campaigns (
    name        TEXT PRIMARY KEY,
    paused      INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL
);
"#,
    ),
];

/// The migration after which existing calls get their normalised number (`to_norm`), which
/// SQL cannot compute (`dialer::normalize_number`): done in Rust in the same transaction.
pub const NORMALISE_NUMBERS: i64 = 4;

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}
