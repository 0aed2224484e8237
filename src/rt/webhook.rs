//! The delivery worker: takes due events from the outbox and POSTs them to the CRM, signed
//! (Standard Webhooks), one attempt at a time per call, many calls in parallel.
//!
//! ```text
//!  loop: lease due events (one per call, oldest first, ≤ free slots)
//!        └─ each: POST body, headers webhook-id / -timestamp / -signature, timeout
//!                 → crm::outbox::after_attempt(schedule, attempt, result, now, jitter)
//!                 → store: log the attempt, move the event (delivered / retry at / dead)
//!        wait for: a result, new events committed, the next due time (≤ 1 s)
//! ```
//! The worker owns the clock and the randomness; the decisions are `crm::outbox`'s. A lease
//! (per-attempt timeout + 5 s) keeps an event from being handed out twice while its attempt
//! runs; leases are forgotten at start-up, so after a crash an event whose attempt was cut
//! short is sent again at once (at-least-once; the receiver de-duplicates by `webhook-id`).
//!
//! Not here: what is due (the store's query keeps per-call order), payloads (crm::events).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::RngExt;
use rand::rngs::StdRng;
use tokio::sync::mpsc;

use crate::api::metrics::Metrics;
use crate::crm::events::unix_ms;
use crate::crm::outbox::{self, AttemptResult, RetrySchedule};
use crate::crm::signing::Secret;
use crate::store::StoreHandle;
use crate::store::{Attempt, AttemptDone, EventRecord};

/// Longest wait between two looks at the outbox (it also notices CLI replays this way).
const POLL: Duration = Duration::from_secs(1);
/// A lease outlives the attempt's timeout by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
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
    let mut rng = rand::make_rng::<StdRng>();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<AttemptDone>();
    let mut in_flight = 0usize;
    let lease_ms = i64::try_from((cfg.timeout + LEASE_MARGIN).as_millis()).unwrap_or(i64::MAX);
    loop {
        let free = cfg.max_in_flight.saturating_sub(in_flight) as u32;
        let now = unix_ms(SystemTime::now());
        let polled = store
            .run(move |s| {
                let leased = if free > 0 {
                    s.lease_due(now, now.saturating_add(lease_ms), free)
                } else {
                    Ok(Vec::new())
                };
                (leased, s.next_due())
            })
            .await;
        let Some((leased, next_due)) = polled else {
            tracing::info!("store is gone; delivery worker stops");
            return;
        };
        let leased = leased.unwrap_or_else(|e| {
            metrics.store_errors.inc();
            tracing::error!(error = %e, "cannot read the outbox");
            Vec::new()
        });
        for ev in leased {
            in_flight += 1;
            let (client, url, cfg, metrics, tx) = (
                client.clone(),
                url.clone(),
                cfg.clone(),
                metrics.clone(),
                done_tx.clone(),
            );
            let sample: f64 = rng.random();
            tokio::spawn(async move {
                let done = attempt(&client, &url, &cfg, &ev, sample, &metrics).await;
                let _ = tx.send(done);
            });
        }
        let wait = match next_due {
            Ok(Some(t)) => Duration::from_millis(u64::try_from(t - now).unwrap_or(0)).min(POLL),
            _ => POLL,
        };
        // A due event we could not lease (all slots busy) waits for a slot, not a timer.
        let wait = if wait.is_zero() && in_flight >= cfg.max_in_flight {
            POLL
        } else {
            wait.max(Duration::from_millis(5))
        };
        tokio::select! {
            Some(first) = done_rx.recv() => {
                let mut batch = vec![first];
                while let Ok(d) = done_rx.try_recv() {
                    batch.push(d);
                }
                in_flight -= batch.len();
                if !store.finish(batch) {
                    return;
                }
            }
            _ = store.new_events.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn attempt(
    client: &reqwest::Client,
    url: &str,
    cfg: &DeliveryConfig,
    ev: &EventRecord,
    sample: f64,
    metrics: &Metrics,
) -> AttemptDone {
    let n = ev.attempts + 1;
    let started = SystemTime::now();
    let t0 = Instant::now();
    let mut req = client.post(url).body(ev.payload.clone());
    for (k, v) in signed_headers(cfg.secret.as_ref(), &ev.id, started, ev.payload.as_bytes()) {
        req = req.header(k, v);
    }
    let result = match req.send().await {
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
    };
    let elapsed = t0.elapsed();
    metrics.delivery_seconds.observe(elapsed.as_secs_f64());
    metrics.delivery(result.label());
    let transition = outbox::after_attempt(
        &cfg.schedule,
        n,
        &result,
        unix_ms(SystemTime::now()),
        sample,
    );
    match &transition {
        outbox::Transition::Delivered => {
            tracing::info!(event_id = %ev.id, event = %ev.kind, call_ref = %ev.call_id, seq = ev.seq, attempt = n, status = ?result.status(), ms = elapsed.as_millis() as u64, "webhook delivered")
        }
        outbox::Transition::Retry { at, error } => {
            tracing::warn!(event_id = %ev.id, event = %ev.kind, call_ref = %ev.call_id, attempt = n, %error, retry_in_ms = at - unix_ms(SystemTime::now()), "webhook failed; will retry")
        }
        outbox::Transition::Dead { error } => {
            metrics.dead_letters.inc();
            tracing::error!(event_id = %ev.id, event = %ev.kind, call_ref = %ev.call_id, attempt = n, %error, "webhook dead-lettered (replay: ivrflow events replay ID)")
        }
    }
    AttemptDone {
        attempt: Attempt {
            event_id: ev.id.clone(),
            attempt: n,
            started_at: unix_ms(started),
            duration_ms: elapsed.as_millis() as u64,
            status_code: result.status(),
            error: result.error(),
            result: result.label().to_owned(),
        },
        transition,
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
