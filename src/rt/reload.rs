//! Scenario reload: SIGHUP and `POST /v1/scenarios/reload` re-read the scenario files, the
//! prompts and the configuration's `routes:` off the reactor ([`crate::catalog::load`] on a blocking thread), hand the new
//! set to the node ([`Command::Reload`]: the next call gets it, calls up keep theirs) and to
//! the API's view, and answer every request that waited with the same report.
//!
//! Requests that arrive while a load runs are answered by the next load (they may have
//! been sent after a file changed); requests queued together share one load.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::api::metrics::{Metrics, ResultLabel};
use crate::api::{ReloadRequest, ScenarioView};
use crate::catalog::{self, Catalog, Inbound, Report, Sources};
use crate::node::Command;

/// Where the node's scenarios and prompts come from.
#[derive(Debug, Clone)]
pub struct Paths {
    pub scenarios: PathBuf,
    pub audio: PathBuf,
    pub inbound: Inbound,
    /// The speech model is loaded: scenarios that take speech may be served.
    pub speech: bool,
    /// The configuration file, whose `routes:` a reload re-reads (the rest of it needs a
    /// restart).
    pub config: Option<PathBuf>,
}

impl Paths {
    pub fn sources(&self) -> Sources<'_> {
        Sources {
            scenarios: &self.scenarios,
            audio: &self.audio,
            inbound: self.inbound.clone(),
            speech: self.speech,
        }
    }
}

/// Logs what a load did: each problem as an error line, a summary as info.
pub fn log_report(what: &str, report: &Report) {
    for p in &report.problems {
        for e in &p.errors {
            tracing::error!(kept_previous = p.kept_previous, "{e}");
        }
    }
    for e in &report.route_errors {
        tracing::error!("{e}");
    }
    if let Some(e) = &report.prompts_error {
        tracing::error!("{e} (the previous prompts stay)");
    }
    tracing::info!(
        loaded = %report.loaded.join(", "),
        updated = %report.updated.join(", "),
        removed = %report.removed.join(", "),
        problems = report.problems.len(),
        prompts = report.prompts,
        "{what}"
    );
}

/// Runs reloads for requests from `requests` until every sender is gone.
pub fn spawn(
    mut paths: Paths,
    mut current: Catalog,
    view: ScenarioView,
    node: mpsc::UnboundedSender<Command>,
    metrics: Arc<Metrics>,
    mut requests: mpsc::UnboundedReceiver<ReloadRequest>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(first) = requests.recv().await {
            let mut replies = vec![first];
            while let Ok(r) = requests.try_recv() {
                replies.push(r);
            }
            let mut route_problem = None;
            if let Some(file) = &paths.config {
                match crate::config::Config::load(file) {
                    Ok(c) => paths.inbound.routes = c.routes,
                    Err(e) => route_problem = Some(format!("{e} (the routes in service stay)")),
                }
            }
            let job_paths = paths.clone();
            let previous = current.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                catalog::load(&job_paths.sources(), Some(&previous))
            })
            .await;
            let mut report = match loaded {
                Ok(Ok((next, report))) => {
                    log_report("scenarios reloaded", &report);
                    metrics.scenarios_loaded(&report.updated);
                    view.set(next.scenarios.clone());
                    if node.send(Command::Reload(Box::new(next.clone()))).is_err() {
                        // The node is gone (the process is stopping): nothing to serve.
                        return;
                    }
                    current = next;
                    report
                }
                // Only possible without a previous set; kept for completeness.
                Ok(Err(e)) => Report {
                    prompts_error: Some(e),
                    ..Report::default()
                },
                Err(e) => Report {
                    prompts_error: Some(format!("the reload failed: {e}")),
                    ..Report::default()
                },
            };
            if let Some(e) = route_problem {
                tracing::error!("{e}");
                report.route_errors.push(e);
            }
            let result = if report.ok() { "ok" } else { "partial" };
            metrics
                .scenario_reloads
                .get_or_create(&ResultLabel {
                    result: result.to_owned(),
                })
                .inc();
            for reply in replies {
                // A SIGHUP's request has no one waiting: that is fine.
                let _ = reply.send(report.clone());
            }
        }
    })
}
