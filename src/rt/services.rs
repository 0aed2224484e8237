//! Everything the drive loop needs besides SIP and RTP: the store thread, the delivery
//! worker, mid-call HTTP effects, the control API and the metrics — started in the right
//! order by [`Services::start`] and stopped by [`Services::shutdown`].
//!
//! Start-up order matters for the guarantees in docs/webhooks.md: lock the data directory
//! (one server per database), open and migrate the store, forget the leases of the previous
//! process, and only then start delivering and accept calls. (The calls the previous
//! process had up are handed to the node, which reports them `interrupted`.)
//!
//! Not here: the drive loop itself (rt::drive).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::http::{CallInput, HttpEffects};
use super::store as store_thread;
use super::webhook::{self, DeliveryConfig};
use crate::api::{self, ApiState, NodeView, metrics::Metrics};
use crate::config::Config;
use crate::node::Command;
use crate::store::StoreHandle;
use crate::store::handle::Ack;

/// The lock file that keeps a second server off the same data directory.
pub const LOCK_FILE: &str = "ivrflow.lock";

pub struct Services {
    pub metrics: Arc<Metrics>,
    pub store: StoreHandle,
    pub acks: mpsc::UnboundedReceiver<Ack>,
    pub http: HttpEffects,
    pub http_results: mpsc::UnboundedReceiver<CallInput>,
    /// Where the control API listens, when it runs.
    pub api_addr: Option<std::net::SocketAddr>,
    /// The node's last status, for the API.
    pub status: NodeView,
    store_thread: Option<std::thread::JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    _lock: std::fs::File,
}

impl Services {
    pub async fn start(
        cfg: &Config,
        scenarios: api::ScenarioView,
        reload: mpsc::UnboundedSender<api::ReloadRequest>,
        node: tokio::sync::mpsc::UnboundedSender<Command>,
        claim_now: Arc<tokio::sync::Notify>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Services> {
        let dir = &cfg.data_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            anyhow::bail!(
                "{} is in use by another `ivrflow serve`; give each server its own --data-dir",
                dir.display()
            );
        }
        // Off the reactor: the PostgreSQL client blocks (it runs its own small runtime).
        let (url, data, me) = (cfg.store.url.clone(), dir.clone(), cfg.store.node.clone());
        let (db, released) = tokio::task::spawn_blocking(move || {
            let mut db = crate::store::open(url.as_deref(), &data, &me)?;
            // Only this node's own leases: other nodes sharing the store keep theirs.
            let released = db.release_leases()?;
            Ok::<_, crate::store::StoreError>((db, released))
        })
        .await
        .context("opening the store")?
        .with_context(|| match &cfg.store.url {
            Some(_) => "opening the store (store.url)".to_owned(),
            None => format!("opening the database in {}", dir.display()),
        })?;
        tracing::info!(
            node = %cfg.store.node,
            shared = cfg.store.url.as_deref().is_some_and(|u| u.starts_with("postgres")),
            released_leases = released,
            "store open"
        );

        let campaigns: Vec<String> = std::iter::once(crate::node::DEFAULT_CAMPAIGN.to_owned())
            .chain(cfg.campaigns.iter().map(|c| c.name.clone()))
            .collect();
        metrics.init(&crate::api::metrics::Labels {
            scenarios: scenarios.get().keys().cloned().collect(),
            campaigns: campaigns.clone(),
            trunks: cfg.trunks.iter().map(|t| t.name.clone()).collect(),
        });
        let (store, acks, join) = store_thread::spawn(db, cfg.recordings_dir(), metrics.clone())
            .context("starting the store thread")?;
        let mut tasks = Vec::new();
        if cfg.recordings.retention_days > 0 {
            tasks.push(spawn_retention(
                cfg.recordings_dir(),
                Duration::from_secs(86_400 * u64::from(cfg.recordings.retention_days)),
            ));
        }
        let schedule = cfg.webhook_schedule().map_err(anyhow::Error::msg)?;
        let secret = cfg.webhook_secret().map_err(anyhow::Error::msg)?;
        let timeout = cfg.webhook_timeout().map_err(anyhow::Error::msg)?;
        tasks.push(webhook::spawn(
            DeliveryConfig {
                url: cfg.webhook.url.clone(),
                timeout,
                schedule,
                secret: secret.clone(),
                max_in_flight: cfg.webhook.max_in_flight,
            },
            store.clone(),
            metrics.clone(),
        ));
        let (http, http_results) =
            HttpEffects::new(cfg.webhook.url.clone(), secret, metrics.clone());

        let mut api_addr = None;
        let status = NodeView::default();
        match &cfg.api.token {
            Some(token) => {
                let listener = tokio::net::TcpListener::bind(cfg.api.listen)
                    .await
                    .with_context(|| format!("binding the control API on {}", cfg.api.listen))?;
                let addr = listener.local_addr()?;
                api_addr = Some(addr);
                tracing::info!(%addr, "control API listening (http://{addr}/v1/…, /console, /healthz, /metrics)");
                let state = ApiState {
                    store: store.clone(),
                    token: token.trim().into(),
                    scenarios,
                    reload: Some(reload),
                    has_trunk: !cfg.trunks.is_empty(),
                    node_name: cfg.store.node.as_str().into(),
                    campaigns: Arc::new(campaigns.into_iter().collect()),
                    metrics: metrics.clone(),
                    node: Some(node),
                    claim_now,
                    status: status.clone(),
                    drain_timeout: cfg.drain_timeout().map_err(anyhow::Error::msg)?,
                    recordings: Some(cfg.recordings_dir()),
                };
                let limits = cfg.api.limits().map_err(anyhow::Error::msg)?;
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = api::serve(listener, state, limits).await {
                        tracing::error!(error = %e, "control API stopped");
                    }
                }));
            }
            None => tracing::warn!(
                "control API disabled: set IVRFLOW_API_TOKEN (or api.token) to enable POST /v1/calls, /healthz and /metrics"
            ),
        }
        Ok(Services {
            metrics,
            store,
            acks,
            http,
            http_results,
            api_addr,
            status,
            store_thread: Some(join),
            tasks,
            _lock: lock,
        })
    }

    /// Stop accepting API requests and deliveries, let the store thread commit what is
    /// queued, and wait for it (at most 5 s).
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.store.stop();
        if let Some(join) = self.store_thread.take() {
            let waited = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::task::spawn_blocking(move || join.join()),
            )
            .await;
            if waited.is_err() {
                tracing::warn!("the store thread did not stop within 5 s");
            }
        }
    }
}

/// How often old recordings are looked for.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Deletes recordings older than `keep`, at start and then hourly (off the reactor).
fn spawn_retention(root: std::path::PathBuf, keep: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RETENTION_EVERY);
        loop {
            every.tick().await;
            let root = root.clone();
            let swept = tokio::task::spawn_blocking(move || {
                crate::recordings::sweep(&root, std::time::SystemTime::now(), keep)
            })
            .await;
            match swept {
                Ok(s) if s.deleted > 0 || s.errors > 0 => tracing::info!(
                    deleted = s.deleted,
                    kept = s.kept,
                    errors = s.errors,
                    retention_days = keep.as_secs() / 86_400,
                    "recordings past their retention deleted"
                ),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "the recordings sweep failed"),
            }
        }
    })
}
