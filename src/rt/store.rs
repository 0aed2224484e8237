//! The store thread: the one thread that touches the database, with group commit.
//!
//! Everyone else talks to it through a [`StoreHandle`]: the drive loop queues the node's
//! commits ([`StoreHandle::record`], never waiting), the delivery worker queues attempt
//! results, the API and the worker run queries ([`StoreHandle::run`], awaiting the answer).
//! The thread takes whatever has queued up, applies runs of records in one transaction
//! (one fsync for many events), and then acknowledges each commit's ticket on the ack
//! channel — with the error when the transaction failed. The node holds back a call's SIP
//! until that ack, and retries a failed commit itself (`node::commit`; docs/webhooks.md,
//! "Guarantees").
//!
//! Commands are executed in the order they were queued, so an attempt result queued before
//! a lease query is committed before that query runs.
//!
//! Not here: SQL (store::sqlite) or what the records mean (rt::recorder).

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Instant, SystemTime};

use tokio::sync::{Notify, mpsc};

use crate::api::metrics::Metrics;
use crate::crm::events::unix_ms;
use crate::store::handle::{Ack, Cmd};
use crate::store::{Record, Store, StoreHandle};

/// At most this many queued commands are taken into one round (one transaction for each
/// run of records).
const MAX_ROUND: usize = 1024;

/// Start the store thread. Returns the handle, the ack channel (for the drive loop) and the
/// thread's join handle.
pub fn spawn(
    store: Box<dyn Store>,
    recordings: std::path::PathBuf,
    metrics: Arc<Metrics>,
) -> std::io::Result<(
    StoreHandle,
    mpsc::UnboundedReceiver<Ack>,
    std::thread::JoinHandle<()>,
)> {
    let (tx, rx) = std_mpsc::channel();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let new_events = Arc::new(Notify::new());
    let notify = new_events.clone();
    let join = std::thread::Builder::new()
        .name("ivrflow-store".into())
        .spawn(move || run(store, &recordings, rx, ack_tx, notify, metrics))?;
    Ok((StoreHandle { tx, new_events }, ack_rx, join))
}

fn run(
    mut store: Box<dyn Store>,
    recordings: &std::path::Path,
    rx: std_mpsc::Receiver<Cmd>,
    acks: mpsc::UnboundedSender<Ack>,
    new_events: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        while round.len() < MAX_ROUND {
            match rx.try_recv() {
                Ok(c) => round.push(c),
                Err(_) => break,
            }
        }
        let mut cmds = round.into_iter().peekable();
        while let Some(cmd) = cmds.next() {
            match cmd {
                Cmd::Record {
                    records,
                    files,
                    ticket,
                } => {
                    let mut all = records;
                    let mut all_files = files;
                    let mut tickets = vec![ticket];
                    while let Some(Cmd::Record { .. }) = cmds.peek() {
                        if let Some(Cmd::Record {
                            records,
                            files,
                            ticket,
                        }) = cmds.next()
                        {
                            all.extend(records);
                            all_files.extend(files);
                            tickets.push(ticket);
                        }
                    }
                    // The recordings first: an event that names one is never stored
                    // without it.
                    let error = write_files(recordings, &all_files, &metrics)
                        .and_then(|()| commit_records(store.as_mut(), &all, &metrics))
                        .err();
                    if error.is_none() && all.iter().any(|r| r.event.is_some()) {
                        new_events.notify_one();
                    }
                    for ticket in tickets {
                        let _ = acks.send(Ack {
                            ticket,
                            error: error.clone(),
                        });
                    }
                }
                Cmd::Finish(done) => {
                    let mut all = done;
                    while let Some(Cmd::Finish(_)) = cmds.peek() {
                        if let Some(Cmd::Finish(more)) = cmds.next() {
                            all.extend(more);
                        }
                    }
                    if let Err(e) = store.finish_attempts(&all, unix_ms(SystemTime::now())) {
                        metrics.store_errors.inc();
                        tracing::error!(error = %e, attempts = all.len(), "cannot record delivery attempts; the events will be delivered again");
                    }
                }
                Cmd::Run(job) => job(store.as_mut()),
                Cmd::Stop => {
                    tracing::debug!("store thread stopping");
                    return;
                }
            }
        }
    }
}

/// The recordings of a group commit, durably (`crate::recordings::write`). `Err` when one
/// cannot be written: the commit fails with it and the node retries it all.
fn write_files(
    root: &std::path::Path,
    files: &[crate::recordings::Attachment],
    metrics: &Metrics,
) -> Result<(), String> {
    for f in files {
        if let Err(e) = crate::recordings::write(root, f) {
            metrics.store_errors.inc();
            tracing::error!(call_ref = %f.call_ref, file = %f.file, error = %e, "cannot write a recording; the node holds it and retries");
            return Err(format!("writing recording {}/{}: {e}", f.call_ref, f.file));
        }
    }
    Ok(())
}

/// One group commit. `Err` when the transaction failed (nothing of it is stored; the node
/// retries the same records). A record the store refuses alone (an update of an unknown
/// call) is logged and skipped; the rest of the batch is committed.
fn commit_records(
    store: &mut dyn Store,
    records: &[Record],
    metrics: &Metrics,
) -> Result<(), String> {
    let t0 = Instant::now();
    let res = store.record(records, unix_ms(SystemTime::now()));
    metrics
        .store_commit_seconds
        .observe(t0.elapsed().as_secs_f64());
    match res {
        Ok(results) => {
            for (rec, r) in records.iter().zip(results) {
                match r {
                    Ok(()) => metrics.recorded(rec),
                    Err(e) => {
                        metrics.store_errors.inc();
                        tracing::error!(call_ref = %rec.call_id, event = %rec.event.as_ref().map(|e| e.kind.as_str()).unwrap_or("-"), error = %e, "call record refused by the store");
                    }
                }
            }
            Ok(())
        }
        Err(e) => {
            metrics.store_errors.inc();
            tracing::error!(error = %e, records = records.len(), "cannot commit call records; the node holds them and retries");
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::recordings::Attachment;
    use crate::store::{CallChange, CallState, Direction, NewCall};

    fn insert(id: &str) -> Record {
        Record {
            call_id: id.into(),
            at: 1,
            change: CallChange::Insert(NewCall {
                id: id.into(),
                direction: Direction::Inbound,
                state: CallState::Started,
                scenario: "memo".into(),
                to: None,
                from: None,
                variables: BTreeMap::new(),
                not_before: None,
                idempotency_key: None,
                request_hash: None,
                sip_call_id: None,
                dial: Default::default(),
            }),
            event: None,
        }
    }

    fn wav(call: &str) -> Attachment {
        Attachment {
            call_ref: call.into(),
            file: "say.wav".into(),
            audio: Arc::new(vec![1, 2, 3]),
        }
    }

    /// Fail closed (issue 20): a recording the disk refuses fails its commit — the
    /// records with it are not stored, the node hears an error and retries — and one the
    /// disk takes is there before the records are acknowledged.
    #[test]
    fn a_recording_that_cannot_be_written_fails_its_commit() {
        let dir = std::env::temp_dir().join(format!(
            "ivrflow-store-thread-{}-{}",
            std::process::id(),
            unix_ms(SystemTime::now())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::open(None, &dir, "t").unwrap();
        // A "recordings folder" that is a file: nothing can be written under it.
        let blocked = dir.join("blocked");
        std::fs::write(&blocked, b"").unwrap();
        let (handle, mut acks, join) = spawn(store, blocked, Arc::new(Metrics::new())).unwrap();
        assert!(handle.record(vec![insert("c-1")], vec![wav("c-1")], 1));
        let ack = acks.blocking_recv().unwrap();
        assert_eq!(ack.ticket, 1);
        assert!(
            ack.error
                .as_deref()
                .is_some_and(|e| e.contains("writing recording c-1/say.wav")),
            "{ack:?}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let found = rt
            .block_on(handle.run(|s| s.get_call("c-1")))
            .unwrap()
            .unwrap();
        assert!(found.is_none(), "nothing of the failed commit is stored");
        handle.stop();
        join.join().unwrap();

        let store = crate::store::open(None, &dir, "t").unwrap();
        let root = dir.join("recordings");
        let (handle, mut acks, join) =
            spawn(store, root.clone(), Arc::new(Metrics::new())).unwrap();
        assert!(handle.record(vec![insert("c-2")], vec![wav("c-2")], 2));
        let ack = acks.blocking_recv().unwrap();
        assert_eq!(ack.error, None);
        assert!(root.join("c-2/say.wav").is_file());
        handle.stop();
        join.join().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
