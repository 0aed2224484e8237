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
        .spawn(move || run(store, rx, ack_tx, notify, metrics))?;
    Ok((StoreHandle { tx, new_events }, ack_rx, join))
}

fn run(
    mut store: Box<dyn Store>,
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
                Cmd::Record { records, ticket } => {
                    let mut all = records;
                    let mut tickets = vec![ticket];
                    while let Some(Cmd::Record { .. }) = cmds.peek() {
                        if let Some(Cmd::Record { records, ticket }) = cmds.next() {
                            all.extend(records);
                            tickets.push(ticket);
                        }
                    }
                    let error = commit_records(store.as_mut(), &all, &metrics).err();
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
