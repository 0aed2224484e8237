//! Delivers CRM events over HTTP: POST JSON, retry failures with backoff and jitter.
//!
//! In-memory for now: an event that is still being retried when the process stops is lost.
//! The durable outbox (issue 5) replaces the queue with the store; the retry policy and the
//! payloads stay as they are.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, mpsc};

use crate::crm::{CallCompleted, RetryPolicy};

/// Concurrent deliveries at most; further events wait for a slot.
const MAX_IN_FLIGHT: usize = 64;

#[derive(Clone)]
pub struct WebhookSender {
    tx: mpsc::UnboundedSender<Box<CallCompleted>>,
}

impl WebhookSender {
    pub fn send(&self, event: Box<CallCompleted>) {
        if self.tx.send(event).is_err() {
            tracing::error!("webhook worker is gone; event not delivered");
        }
    }
}

/// Start the delivery worker. Without a URL events are only logged.
pub fn spawn(url: Option<String>, timeout: Duration, policy: RetryPolicy) -> WebhookSender {
    let (tx, mut rx) = mpsc::unbounded_channel::<Box<CallCompleted>>();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("ivrflow/", env!("CARGO_PKG_VERSION")))
        .build();
    tokio::spawn(async move {
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the HTTP client; webhooks disabled");
                while rx.recv().await.is_some() {}
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut rng = StdRng::seed_from_u64(rand::make_rng::<StdRng>().next_u64());
        while let Some(event) = rx.recv().await {
            let Some(url) = url.clone() else {
                tracing::info!(call_id = %event.call_id, outcome = event.outcome.as_deref().unwrap_or("-"), "call completed (no webhook.url configured)");
                continue;
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let client = client.clone();
            let seed = rng.next_u64();
            tokio::spawn(async move {
                deliver(&client, &url, &event, policy, seed).await;
                drop(permit);
            });
        }
    });
    WebhookSender { tx }
}

async fn deliver(
    client: &reqwest::Client,
    url: &str,
    event: &CallCompleted,
    policy: RetryPolicy,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let body = match serde_json::to_vec(event) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(call_id = %event.call_id, error = %e, "cannot serialise event");
            return;
        }
    };
    let mut attempt = 1;
    while let Some(delay) =
        policy.delay_before(attempt, (rng.next_u32() as f64) / (u32::MAX as f64 + 1.0))
    {
        tokio::time::sleep(delay).await;
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                tracing::info!(call_id = %event.call_id, attempt, status = r.status().as_u16(), "webhook delivered");
                return;
            }
            Ok(r) => {
                tracing::warn!(call_id = %event.call_id, attempt, status = r.status().as_u16(), "webhook refused; will retry");
            }
            Err(e) => {
                tracing::warn!(call_id = %event.call_id, attempt, error = %e, "webhook failed; will retry");
            }
        }
        attempt += 1;
    }
    tracing::error!(call_id = %event.call_id, attempts = attempt - 1, "webhook gave up; event dropped");
}
