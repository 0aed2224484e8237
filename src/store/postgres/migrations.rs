//! Versioned schema migrations for the PostgreSQL store.
//!
//! The same tables and columns as SQLite's (`store::migrations`), in PostgreSQL's types:
//! `BIGINT` milliseconds for time, `TEXT` for JSON (the exact bytes sent to the CRM),
//! `BOOLEAN` flags. Every text column compares bytewise (`COLLATE "C"`), as SQLite does, so
//! listings and cursors order the same on both whatever the database's locale.
//!
//! `schema_version` holds one row per applied migration. Each migration runs in its own
//! transaction together with its row, under an advisory lock, so two nodes starting at once
//! apply it once; PostgreSQL's DDL is transactional, so a crash leaves a known version.
//! Never edit a released migration; append a new one.

/// `(version, description, SQL)` in order.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "calls, outbox events, delivery attempts, do-not-call list",
        r#"
CREATE TABLE calls (
    id              TEXT COLLATE "C" PRIMARY KEY,
    direction       TEXT COLLATE "C" NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    state           TEXT COLLATE "C" NOT NULL,
    scenario        TEXT COLLATE "C" NOT NULL,
    to_number       TEXT COLLATE "C",
    from_number     TEXT COLLATE "C",
    variables       TEXT NOT NULL DEFAULT '{}',
    not_before      BIGINT,
    idempotency_key TEXT COLLATE "C" UNIQUE,
    request_hash    TEXT COLLATE "C",
    sip_call_id     TEXT COLLATE "C",
    node            TEXT COLLATE "C" NOT NULL,
    outcome         TEXT COLLATE "C",
    failure_reason  TEXT COLLATE "C",
    sip_code        BIGINT,
    result          TEXT,
    trace           TEXT,
    dial_attempts   BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    started_at      BIGINT,
    answered_at     BIGINT,
    ended_at        BIGINT,
    dial            TEXT,
    campaign        TEXT COLLATE "C"
);
CREATE INDEX calls_by_state ON calls (state, not_before);
CREATE INDEX calls_by_sip_call_id ON calls (sip_call_id);
CREATE INDEX calls_by_campaign ON calls (campaign, state);
CREATE INDEX calls_by_created ON calls (created_at, id);

CREATE TABLE events (
    position        BIGSERIAL PRIMARY KEY,
    id              TEXT COLLATE "C" NOT NULL UNIQUE,
    call_id         TEXT COLLATE "C" NOT NULL REFERENCES calls (id),
    seq             BIGINT NOT NULL,
    type            TEXT COLLATE "C" NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT COLLATE "C" NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (call_id, seq)
);
CREATE INDEX events_due ON events (status, next_attempt_at);

CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    event_id        TEXT COLLATE "C" NOT NULL REFERENCES events (id),
    attempt         BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    duration_ms     BIGINT NOT NULL,
    status_code     BIGINT,
    error           TEXT,
    result          TEXT COLLATE "C" NOT NULL
);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE dnc (
    number      TEXT COLLATE "C" PRIMARY KEY,
    source      TEXT COLLATE "C" NOT NULL,
    created_at  BIGINT NOT NULL
);
"#,
    ),
    (
        2,
        "several nodes: claims on due calls, outbox lease owners, nodes, campaigns",
        r#"
ALTER TABLE calls
    ADD COLUMN to_norm     TEXT COLLATE "C",
    ADD COLUMN claim_owner TEXT COLLATE "C",
    ADD COLUMN claim_until BIGINT,
    ADD COLUMN claimed_at  BIGINT,
    ADD COLUMN trunk       TEXT COLLATE "C";
CREATE INDEX calls_due ON calls (not_before, created_at) WHERE state = 'queued' AND direction = 'outbound';
CREATE INDEX calls_by_number ON calls (to_norm) WHERE state IN ('queued', 'started', 'answered');
CREATE INDEX calls_trunk_busy ON calls (trunk) WHERE state IN ('queued', 'started', 'answered');
CREATE INDEX calls_trunk_recent ON calls (trunk, claimed_at);
CREATE INDEX calls_by_claim_owner ON calls (claim_owner) WHERE claim_owner IS NOT NULL;
CREATE INDEX calls_live_by_node ON calls (node) WHERE state IN ('started', 'answered');
ALTER TABLE events ADD COLUMN lease_owner TEXT COLLATE "C";
CREATE INDEX events_by_lease_owner ON events (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE nodes (
    name        TEXT COLLATE "C" PRIMARY KEY,
    last_seen   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    leaving     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE campaigns (
    name        TEXT COLLATE "C" PRIMARY KEY,
    paused      BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  BIGINT NOT NULL
);
"#,
    ),
];

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}
