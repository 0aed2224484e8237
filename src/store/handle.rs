//! The way to the store thread: a cheap, cloneable [`StoreHandle`] that queues commands
//! for the one thread that touches the database (`rt::store` runs it). The drive loop
//! queues commits and reads acknowledgements; the API and the delivery worker run queries.
//!
//! Not here: the thread (`rt::store`) or SQL (`store::sqlite`).

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use tokio::sync::{Notify, oneshot};

use super::{AttemptDone, Record, Store};

/// A record batch was committed, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub ticket: u64,
    pub error: Option<String>,
}

pub(crate) type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

pub(crate) enum Cmd {
    Record {
        records: Vec<Record>,
        files: Vec<crate::recordings::Attachment>,
        ticket: u64,
    },
    Finish(Vec<AttemptDone>),
    Run(Job),
    Stop,
}

/// A cheap, cloneable way to the store thread.
#[derive(Clone)]
pub struct StoreHandle {
    pub(crate) tx: std_mpsc::Sender<Cmd>,
    /// Signalled after new events were committed or replayed: the delivery worker waits on it.
    pub new_events: Arc<Notify>,
}

impl StoreHandle {
    /// Queue call records for the next group commit, and the recordings to write before
    /// them; [`Ack`] `ticket` follows on the ack channel. `false` when the store thread is
    /// gone (nothing will be acknowledged).
    pub fn record(
        &self,
        records: Vec<Record>,
        files: Vec<crate::recordings::Attachment>,
        ticket: u64,
    ) -> bool {
        self.tx
            .send(Cmd::Record {
                records,
                files,
                ticket,
            })
            .is_ok()
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
