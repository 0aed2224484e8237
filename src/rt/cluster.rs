//! The node's place among the nodes sharing a store (issue 15): it says it is alive, takes
//! over the calls of nodes that died, and claims the due outbound calls it will dial — all
//! through the store, so nothing is doubled and nothing waits on one process.
//!
//! Every [`TICK`] (sooner when the API queued a call):
//! - **heartbeat** every third of [`HEARTBEAT_TTL`]: a node silent for longer is dead;
//! - **take-over**: for each dead node, one survivor wins (the store decides) and gets its
//!   live calls, which the node ends with `call.failed` / `interrupted` naming the dead node;
//!   its claims and outbox leases are freed for anyone;
//! - **claims**: due queued calls, at most [`CLAIM_BATCH`] a tick, with a lease of
//!   [`CLAIM_LEASE`]; do-not-call, consent, paused campaigns and each trunk's limits over all
//!   nodes are checked by the store in the same transaction. Each claimed call goes to the
//!   node, which dials it now or hands it back with its next time.
//!
//! While the node drains it claims nothing; at the end `leave` hands back what it still
//! holds. The same runs on the embedded SQLite (one node): claims there cost a local
//! transaction.
//!
//! Not here: the rules (the node's dialer, the store's SQL), or SIP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::crm::events::unix_ms;
use crate::node::Command;
use crate::store::{StoreHandle, TrunkQuota};

/// How often the loop runs.
pub const TICK: Duration = Duration::from_secs(1);
/// A node that has not said it is alive for this long is dead; its calls are taken over.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);
/// How long a claim on a queued call holds (the node dials claimed calls at once).
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);
/// Calls claimed per tick at most.
pub const CLAIM_BATCH: u32 = 32;

pub struct Cluster {
    pub node: String,
    pub quotas: Vec<TrunkQuota>,
    pub consent_required: Vec<String>,
    /// Outbound calls can be placed (a trunk is configured).
    pub dials: bool,
}

impl Cluster {
    pub fn from_config(cfg: &Config) -> Cluster {
        let quotas = cfg
            .trunks
            .iter()
            .map(|t| TrunkQuota {
                name: t.name.clone(),
                max_concurrent: u32::try_from(t.max_calls).ok().filter(|n| *n > 0),
                calls_per_second: (t.max_cps > 0.0).then_some(t.max_cps),
                campaigns: cfg
                    .campaigns
                    .iter()
                    .filter(|c| c.trunk.as_deref() == Some(t.name.as_str()))
                    .map(|c| c.name.clone())
                    .collect(),
            })
            .collect();
        Cluster {
            node: cfg.store.node.clone(),
            quotas,
            consent_required: cfg
                .campaigns
                .iter()
                .filter(|c| c.require_consent)
                .map(|c| c.name.clone())
                .collect(),
            dials: !cfg.trunks.is_empty(),
        }
    }
}

/// Runs the loop until the task is aborted. `wake` makes it claim at once; while
/// `draining` it only keeps the heartbeat and take-overs going.
pub fn spawn(
    c: Cluster,
    store: StoreHandle,
    node: mpsc::UnboundedSender<Command>,
    wake: Arc<Notify>,
    draining: Arc<AtomicBool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let c = Arc::new(c);
        let mut last_beat: Option<std::time::Instant> = None;
        loop {
            let now = unix_ms(SystemTime::now());
            if last_beat.is_none_or(|t| t.elapsed() >= HEARTBEAT_TTL / 3) {
                last_beat = Some(std::time::Instant::now());
                beat_and_take_over(&c, &store, &node, now).await;
            }
            if c.dials && !draining.load(Ordering::Relaxed) {
                claim(&c, &store, &node, now).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = wake.notified() => {}
            }
        }
    })
}

async fn beat_and_take_over(
    c: &Arc<Cluster>,
    store: &StoreHandle,
    node: &mpsc::UnboundedSender<Command>,
    now: crate::store::UnixMs,
) {
    let me = c.node.clone();
    let ttl = HEARTBEAT_TTL.as_millis() as u64;
    let res = store
        .run(move |s| {
            s.heartbeat(&me, now, ttl)?;
            let mut taken = Vec::new();
            for dead in s.dead_nodes(now)? {
                if dead == me {
                    continue;
                }
                if let Some(t) = s.take_over(&dead, &me, now)? {
                    taken.push((dead, t));
                }
            }
            Ok::<_, crate::store::StoreError>(taken)
        })
        .await;
    match res {
        Some(Ok(taken)) => {
            for (dead, mut t) in taken {
                tracing::warn!(
                    dead_node = %dead,
                    live_calls = t.live_calls.len(),
                    claims_released = t.claims_released,
                    leases_released = t.leases_released,
                    "took over a node that stopped answering"
                );
                // The store made them ours; the CRM is told which node had them.
                for c in &mut t.live_calls {
                    c.node = dead.clone();
                }
                if !t.live_calls.is_empty() {
                    let _ = node.send(Command::Recovered(t.live_calls));
                }
            }
        }
        Some(Err(e)) => tracing::error!(error = %e, "heartbeat failed"),
        None => {}
    }
}

async fn claim(
    c: &Arc<Cluster>,
    store: &StoreHandle,
    node: &mpsc::UnboundedSender<Command>,
    now: crate::store::UnixMs,
) {
    let job = c.clone();
    let res = store
        .run(move |s| {
            s.claim_due(
                &job.node,
                now,
                CLAIM_BATCH,
                CLAIM_LEASE.as_millis() as u64,
                &job.quotas,
                &job.consent_required,
            )
        })
        .await;
    match res {
        Some(Ok(claimed)) => {
            for cl in claimed {
                if cl.dnc
                    && let Some(to) = &cl.call.to
                {
                    // The node's dialer finishes it as blocked.
                    let _ = node.send(Command::Dnc {
                        number: to.clone(),
                        listed: true,
                    });
                }
                let _ = node.send(Command::Queued(Box::new(cl.call)));
            }
        }
        Some(Err(e)) => tracing::error!(error = %e, "claiming due calls failed"),
        None => {}
    }
}

/// A node asked to stop hands back its claims and leases and leaves the set.
pub async fn leave(store: &StoreHandle, node: &str) {
    let me = node.to_owned();
    match store.run(move |s| s.leave(&me)).await {
        Some(Ok(left)) => tracing::info!(
            claims_released = left.claims_released,
            leases_released = left.leases_released,
            "left the cluster"
        ),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "could not leave the cluster cleanly; the others take over after the heartbeat expires")
        }
        None => {}
    }
}
