//! The store thread: the one thread that touches the database, with group commit.
//!
//! Everyone else talks to it through a [`StoreHandle`]: the drive loop queues call records
//! ([`StoreHandle::record`], never waiting), the delivery worker queues attempt results, the
//! API and the worker run queries ([`StoreHandle::run`], awaiting the answer). The thread
//! takes whatever has queued up, applies runs of records in one transaction (one fsync for
//! many events), and then acknowledges each record batch's ticket on the ack channel, in
//! ticket order. The drive loop holds back a call's SIP messages until that ack (see
//! `rt::drive` and docs/webhooks.md, "Guarantees").
//!
//! Commands are executed in the order they were queued, so an attempt result queued before
//! a lease query is committed before that query runs.
//!
//! Not here: SQL (store::sqlite) or what the records mean (rt::recorder).

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Instant, SystemTime};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::api::metrics::Metrics;
use crate::crm::events::unix_ms;
use crate::store::{AttemptDone, Record, Store};

/// At most this many queued commands are taken into one round (one transaction for each
/// run of records).
const MAX_ROUND: usize = 1024;

/// A record batch was committed (or failed to be: `ok == false`, the error is logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub ticket: u64,
    pub ok: bool,
}

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

enum Cmd {
    Record { records: Vec<Record>, ticket: u64 },
    Finish(Vec<AttemptDone>),
    Run(Job),
    Stop,
}

/// A cheap, cloneable way to the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    tx: std_mpsc::Sender<Cmd>,
    /// Signalled after new events were committed or replayed: the delivery worker waits on it.
    pub new_events: Arc<Notify>,
}

impl StoreHandle {
    /// Queue call records for the next group commit; [`Ack`] `ticket` follows on the ack
    /// channel. `false` when the store thread is gone (nothing will be acknowledged).
    pub fn record(&self, records: Vec<Record>, ticket: u64) -> bool {
        self.tx.send(Cmd::Record { records, ticket }).is_ok()
    }

    /// Queue delivery results (committed before any command queued after them runs).
    pub fn finish(&self, done: Vec<AttemptDone>) -> bool {
        self.tx.send(Cmd::Finish(done)).is_ok()
    }

    /// Run `f` on the store thread and return its result; `None` when the thread is gone.
    pub async fn run<R, F>(&self, f: F) -> Option<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Store) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.tx.send(Cmd::Run(job)).ok()?;
        rx.await.ok()
    }

    /// Ask the thread to finish what is queued and stop.
    pub fn stop(&self) {
        let _ = self.tx.send(Cmd::Stop);
    }
}

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
                    let ok = commit_records(store.as_mut(), &all, &metrics);
                    if ok && all.iter().any(|r| r.event.is_some()) {
                        new_events.notify_one();
                    }
                    for ticket in tickets {
                        let _ = acks.send(Ack { ticket, ok });
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

/// Attempts at one group commit before its events are given up (a busy or failing disk).
const COMMIT_TRIES: u32 = 3;

fn commit_records(store: &mut dyn Store, records: &[Record], metrics: &Metrics) -> bool {
    let mut tries = 0;
    let res = loop {
        tries += 1;
        let t0 = Instant::now();
        let res = store.record(records, unix_ms(SystemTime::now()));
        metrics
            .store_commit_seconds
            .observe(t0.elapsed().as_secs_f64());
        match res {
            Err(e) if tries < COMMIT_TRIES => {
                metrics.store_errors.inc();
                tracing::warn!(error = %e, tries, "group commit failed; trying again");
                std::thread::sleep(std::time::Duration::from_millis(50 * u64::from(tries)));
            }
            other => break other,
        }
    };
    match res {
        Ok(results) => {
            for (rec, r) in records.iter().zip(results) {
                match r {
                    Ok(()) => {
                        if let Some(ev) = &rec.event {
                            metrics.event_recorded(&ev.kind);
                        }
                    }
                    Err(e) => {
                        metrics.store_errors.inc();
                        tracing::error!(call_ref = %rec.call_id, event = rec.event.as_ref().map(|e| e.kind.as_str()).unwrap_or("-"), error = %e, "call record refused by the store");
                    }
                }
            }
            true
        }
        Err(e) => {
            metrics.store_errors.inc();
            tracing::error!(error = %e, records = records.len(), "cannot commit call records; their events are lost");
            false
        }
    }
}
