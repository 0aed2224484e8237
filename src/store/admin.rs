//! The `ivrflow events …` command line: list and replay outbox events straight from the
//! database file, whether or not a server is running on it (SQLite WAL lets the CLI and a
//! server share the file; a running server picks a replayed event up within a second).
//!
//! Not here: argument parsing (main.rs) or delivery (the server does that).

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::sqlite::SqliteStore;
use super::{EventFilter, EventRecord, EventStatus, Replayed, Store};
use crate::crm::events::{rfc3339, unix_ms};

fn open(data_dir: &Path) -> Result<SqliteStore, String> {
    let file = data_dir.join(super::sqlite::FILE_NAME);
    if !file.exists() {
        return Err(format!(
            "{}: no database here (is --data-dir right? `ivrflow serve` creates it)",
            file.display()
        ));
    }
    SqliteStore::open(&file, "cli").map_err(|e| e.to_string())
}

/// The JSON form of an event, as the API and `events list --json` print it.
pub fn event_json(e: &EventRecord) -> serde_json::Value {
    json!({
        "id": e.id,
        "call_ref": e.call_id,
        "seq": e.seq,
        "type": e.kind,
        "status": e.status.as_str(),
        "attempts": e.attempts,
        "next_attempt_at": (e.status == EventStatus::Pending).then(|| rfc3339(e.next_attempt_at)),
        "last_error": e.last_error,
        "created_at": rfc3339(e.created_at),
        "updated_at": rfc3339(e.updated_at),
        "delivered_at": e.delivered_at.map(rfc3339),
        "position": e.position,
        "payload": serde_json::from_str::<serde_json::Value>(&e.payload).unwrap_or(serde_json::Value::Null),
    })
}

/// `ivrflow events list [--status S] [--call ID] [--limit N] [--json]`.
pub fn list(
    data_dir: &Path,
    status: Option<&str>,
    call: Option<String>,
    limit: u32,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let status =
        match status {
            None => None,
            Some(s) => Some(EventStatus::parse(s).ok_or_else(|| {
                format!("--status {s:?}: expected one of pending, delivered, dead")
            })?),
        };
    let mut store = open(data_dir)?;
    let events = store
        .list_events(&EventFilter {
            status,
            call_id: call,
            after: None,
            limit,
        })
        .map_err(|e| e.to_string())?;
    let w = |r: std::io::Result<()>| r.map_err(|e| e.to_string());
    if as_json {
        for e in &events {
            w(writeln!(out, "{}", event_json(e)))?;
        }
        return Ok(());
    }
    w(writeln!(
        out,
        "{:<36}  {:<36}  {:>3}  {:<18}  {:<9}  {:>8}  {:<24}  LAST ERROR",
        "ID", "CALL", "SEQ", "TYPE", "STATUS", "ATTEMPTS", "UPDATED"
    ))?;
    for e in &events {
        w(writeln!(
            out,
            "{:<36}  {:<36}  {:>3}  {:<18}  {:<9}  {:>8}  {:<24}  {}",
            e.id,
            e.call_id,
            e.seq,
            e.kind,
            e.status.as_str(),
            e.attempts,
            rfc3339(e.updated_at),
            e.last_error.as_deref().unwrap_or("")
        ))?;
    }
    w(writeln!(out, "{} event(s)", events.len()))
}

/// `ivrflow events replay ID`: a dead or delivered event becomes pending again.
pub fn replay(data_dir: &Path, id: &str, out: &mut dyn Write) -> Result<(), String> {
    let mut store = open(data_dir)?;
    match store
        .replay_event(id, unix_ms(std::time::SystemTime::now()))
        .map_err(|e| e.to_string())?
    {
        Replayed::Done(e) => writeln!(
            out,
            "{}: pending again ({} of call {}); a running server delivers it within a second",
            e.id, e.kind, e.call_id
        )
        .map_err(|e| e.to_string()),
        Replayed::AlreadyPending(e) => Err(format!(
            "{}: already pending ({} attempt(s) so far)",
            e.id, e.attempts
        )),
        Replayed::NotFound => Err(format!("{id}: no such event")),
    }
}
