//! The delivery worker: executes `delivery::Deliverer`'s decisions — store queries,
//! signed POSTs to the CRM (Standard Webhooks), one attempt at a time per call, many calls
//! in parallel — and feeds it their results.
//!
//! ```text
//!  Lease  → store: lease due events (one per call, oldest first), next due time
//!  Post   → POST body, headers webhook-id / -timestamp / -signature, timeout
//!  Finish → store: log the attempts, move the events (delivered / retry at / dead)
//!  Timeout→ wait for: a result, new events committed, the time
//! ```
//! Not here: what is due (the store's query keeps per-call order), payloads (crm::events),
//! and any decision (delivery, crm::outbox).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio::sync::mpsc;

use crate::api::metrics::Metrics;
use crate::crm::events::unix_ms;
use crate::crm::outbox::{self, AttemptResult, RetrySchedule, Transition};
use crate::crm::signing::Secret;
use crate::delivery::{self, Deliverer, Policy};
use crate::store::{EventRecord, StoreHandle};

/// Response bodies are read (to keep the connection reusable) up to this size.
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub url: Option<String>,
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub secret: Option<Secret>,
    pub max_in_flight: usize,
}

/// The HTTP client every CRM request uses: no redirects (a 3xx is a failed attempt), the
/// per-request timeout, our User-Agent.
pub fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ivrflow/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Headers for one signed request: `webhook-id`, `webhook-timestamp` and, with a secret,
/// `webhook-signature`.
pub fn signed_headers(
    secret: Option<&Secret>,
    msg_id: &str,
    now: SystemTime,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let ts = unix_ms(now) / 1000;
    let mut h = vec![
        ("content-type", "application/json".to_owned()),
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", ts.to_string()),
    ];
    if let Some(s) = secret {
        h.push(("webhook-signature", s.sign(msg_id, ts, body)));
    }
    h
}

/// Start the worker. Without a URL it logs that events are kept but not delivered, and
/// ends.
pub fn spawn(
    cfg: DeliveryConfig,
    store: StoreHandle,
    metrics: Arc<Metrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(cfg, store, metrics))
}

/// One attempt's outcome, back from its task.
struct Done {
    event: EventRecord,
    result: AttemptResult,
    started: SystemTime,
    took: Duration,
}

async fn run(cfg: DeliveryConfig, store: StoreHandle, metrics: Arc<Metrics>) {
    let Some(url) = cfg.url.clone() else {
        tracing::warn!(
            "no webhook.url configured: events are stored (see GET /v1/events) but not delivered"
        );
        return;
    };
    if cfg.secret.is_none() {
        tracing::warn!("no webhook secret (IVRFLOW_WEBHOOK_SECRET): deliveries are NOT signed");
    }
    let client = match http_client(cfg.timeout) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; webhooks disabled");
            return;
        }
    };
    let cfg = Arc::new(cfg);
    let url: Arc<str> = url.into();
    let mut d = Deliverer::new(
        Policy {
            timeout: cfg.timeout,
            schedule: cfg.schedule.clone(),
            max_in_flight: cfg.max_in_flight,
        },
        rand::make_rng::<rand::rngs::StdRng>().next_u64(),
    );
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let now = || unix_ms(SystemTime::now());
    d.handle_timeout(now());
    loop {
        let wake = loop {
            match d.poll_output() {
                delivery::Output::Timeout(at) => break at,
                delivery::Output::Lease { free, lease_until } => {
                    let t = now();
                    let polled = store
                        .run(move |s| (s.lease_due(t, lease_until, free), s.next_due()))
                        .await;
                    match polled {
                        None => {
                            tracing::info!("store is gone; delivery worker stops");
                            return;
                        }
                        Some((Ok(leased), next_due)) => {
                            d.handle_leased(now(), leased, next_due.ok().flatten())
                        }
                        Some((Err(e), _)) => {
                            metrics.store_errors.inc();
                            tracing::error!(error = %e, "cannot read the outbox");
                            d.handle_lease_failed(now());
                        }
                    }
                }
                delivery::Output::Post(ev) => {
                    let (client, url, cfg, tx) =
                        (client.clone(), url.clone(), cfg.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let started = SystemTime::now();
                        let t0 = Instant::now();
                        let result = attempt(&client, &url, &cfg, &ev, started).await;
                        let _ = tx.send(Done {
                            event: ev,
                            result,
                            started,
                            took: t0.elapsed(),
                        });
                    });
                }
                delivery::Output::Finish(done) => {
                    if !store.finish(done) {
                        return;
                    }
                }
            }
        };
        let wait = Duration::from_millis(u64::try_from(wake - now()).unwrap_or(0));
        tokio::select! {
            Some(first) = done_rx.recv() => {
                let mut batch = vec![first];
                while let Ok(more) = done_rx.try_recv() {
                    batch.push(more);
                }
                for done in batch {
                    finished(&mut d, &metrics, done);
                }
            }
            _ = store.new_events.notified() => d.handle_new_events(now()),
            _ = tokio::time::sleep(wait) => d.handle_timeout(now()),
        }
    }
}

/// Feed one attempt's outcome to the deliverer; log and count it.
fn finished(d: &mut Deliverer, metrics: &Metrics, done: Done) {
    let Done {
        event: ev,
        result,
        started,
        took,
    } = done;
    metrics.delivery_seconds.observe(took.as_secs_f64());
    metrics.delivery(result.label());
    let n = ev.attempts + 1;
    let now = unix_ms(SystemTime::now());
    match d.handle_result(now, &ev, result.clone(), unix_ms(started), took) {
        Transition::Delivered => {
            metrics
                .webhook_event_latency_seconds
                .observe((now - ev.created_at).max(0) as f64 / 1000.0);
            tracing::info!(event_id = %ev.id, event = %ev.kind, call_ref = %ev.call_id, seq = ev.seq, attempt = n, status = result.status().unwrap_or(0), ms = took.as_millis() as u64, "webhook delivered")
        }
        Transition::Retry { at, error } => {
            tracing::warn!(event_id = %ev.id, event = %ev.kind, call_ref = %ev.call_id, attempt = n, %error, retry_in_ms = at - now, "webhook failed; will retry")
        }
        Transition::Dead { error } => {
            metrics.dead_letters.inc();
            tracing::error!(event_id = %ev.id, event = %ev.kind, call_ref = %ev.call_id, attempt = n, %error, "webhook dead-lettered (replay: ivrflow events replay ID)")
        }
    }
}

/// One POST of `ev` to `url`: what came of it.
async fn attempt(
    client: &reqwest::Client,
    url: &str,
    cfg: &DeliveryConfig,
    ev: &EventRecord,
    started: SystemTime,
) -> AttemptResult {
    let mut req = client.post(url).body(ev.payload.clone());
    for (k, v) in signed_headers(cfg.secret.as_ref(), &ev.id, started, ev.payload.as_bytes()) {
        req = req.header(k, v);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(outbox::parse_retry_after);
            let _ = read_limited(resp).await;
            match status {
                200..=299 => AttemptResult::Delivered { status },
                410 => AttemptResult::Gone,
                429 | 503 => AttemptResult::Refused {
                    status,
                    retry_after,
                },
                _ => AttemptResult::Refused {
                    status,
                    retry_after: None,
                },
            }
        }
        Err(e) if e.is_timeout() => AttemptResult::Timeout,
        Err(e) => AttemptResult::Network(error_chain(&e)),
    }
}

/// Read at most [`MAX_RESPONSE`] bytes of a response body.
pub async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_RESPONSE {
                    return Err(format!("response larger than {MAX_RESPONSE} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err("timed out".to_owned()),
            Err(e) => return Err(error_chain(&e)),
        }
    }
}

/// An error with its causes ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}
