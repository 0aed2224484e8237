//! Mid-call HTTP requests: the runtime side of a scenario's `webhook` node
//! (`dialogue::Action::Webhook`) — e.g. the CRM look-up at call start that fills variables.
//!
//! Each request runs in its own task: `POST` the node's JSON body (or `GET` with the body's
//! top-level fields as query parameters) to the node's URL or the configured
//! `webhook.url`, signed like outbox deliveries (a fresh `webhook-id` per request), with the
//! node's timeout. The result — the response JSON, or why there is none — goes back to the
//! call as `Input::WebhookResult` through the drive loop. The dialogue enforces the timeout
//! too and takes its `error` path; a late result is ignored there.
//!
//! Not here: retries (a caller is waiting: the scenario's fallback path is the retry
//! policy), persistence (these are queries, not events; they are not in the outbox).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::webhook::{error_chain, http_client, read_limited, signed_headers};
use crate::api::metrics::{Metrics, ResultLabel};
use crate::crm::events::new_message_id;
use crate::crm::signing::Secret;
use crate::dialogue::{Input, WebhookRequest};
use crate::sip::ua::CallHandle;

/// A result for a live call.
#[derive(Debug)]
pub struct CallInput {
    pub call: CallHandle,
    pub input: Input,
}

#[derive(Clone)]
pub struct HttpEffects {
    default_url: Option<String>,
    secret: Option<Secret>,
    results: mpsc::UnboundedSender<CallInput>,
    metrics: Arc<Metrics>,
}

impl HttpEffects {
    pub fn new(
        default_url: Option<String>,
        secret: Option<Secret>,
        metrics: Arc<Metrics>,
    ) -> (HttpEffects, mpsc::UnboundedReceiver<CallInput>) {
        let (results, rx) = mpsc::unbounded_channel();
        (
            HttpEffects {
                default_url,
                secret,
                results,
                metrics,
            },
            rx,
        )
    }

    /// Start request `id` of `call`; its result arrives on the receiver from [`HttpEffects::new`].
    pub fn webhook(
        &self,
        call: CallHandle,
        call_ref: Option<&str>,
        id: u64,
        request: WebhookRequest,
    ) {
        let this = self.clone();
        let call_id = call.to_string();
        let call_ref = call_ref.map(str::to_owned);
        tokio::spawn(async move {
            let t0 = Instant::now();
            let result = this.request(&request, call_ref.as_deref()).await;
            let ms = t0.elapsed().as_millis() as u64;
            let label = if result.is_ok() { "ok" } else { "error" };
            this.metrics
                .call_webhooks
                .get_or_create(&ResultLabel {
                    result: label.to_owned(),
                })
                .inc();
            match &result {
                Ok(_) => {
                    tracing::info!(%call_id, name = %request.name.as_deref().unwrap_or("-"), ms, "mid-call webhook answered")
                }
                Err(e) => {
                    tracing::warn!(%call_id, name = %request.name.as_deref().unwrap_or("-"), ms, error = %e, "mid-call webhook failed")
                }
            }
            let _ = this.results.send(CallInput {
                call,
                input: Input::WebhookResult { id, result },
            });
        });
    }

    async fn request(
        &self,
        req: &WebhookRequest,
        call_ref: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        let url = req
            .url
            .as_deref()
            .or(self.default_url.as_deref())
            .ok_or("no URL: the node names none and webhook.url is not configured")?;
        let client = http_client(req.timeout).map_err(|e| e.to_string())?;
        let get = req.method.eq_ignore_ascii_case("GET");
        let body = if get {
            Vec::new()
        } else {
            serde_json::to_vec(&req.body).map_err(|e| e.to_string())?
        };
        let mut rb = if get {
            let query: Vec<(String, String)> = match &req.body {
                serde_json::Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| {
                        let v = match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let mut u = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
            u.query_pairs_mut().extend_pairs(query);
            client.get(u)
        } else {
            client.post(url).body(body.clone())
        };
        for (k, v) in signed_headers(
            self.secret.as_ref(),
            &new_message_id(),
            SystemTime::now(),
            &body,
        ) {
            if get && k == "content-type" {
                continue;
            }
            rb = rb.header(k, v);
        }
        if let Some(name) = &req.name {
            rb = rb.header("x-ivrflow-webhook", name);
        }
        if let Some(r) = call_ref {
            rb = rb.header("x-ivrflow-call-ref", r);
        }
        let resp = rb.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else {
                error_chain(&e)
            }
        })?;
        let status = resp.status();
        let bytes = read_limited(resp).await?;
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("response is not JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::routing::{get, post};
    use serde_json::{Value, json};

    use super::*;

    /// A real HTTP server on loopback: `/lookup` echoes what it got, `/slow` answers after
    /// 2 s, `/fail` answers 500, `/query` returns its query string.
    async fn crm() -> String {
        let app = axum::Router::new()
            .route(
                "/lookup",
                post(
                    |headers: axum::http::HeaderMap, body: axum::body::Bytes| async move {
                        let h = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let got: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        axum::Json(json!({
                            "customer": {"name": "Ann"},
                            "got": got,
                            "name": h("x-ivrflow-webhook"),
                            "call_ref": h("x-ivrflow-call-ref"),
                            "signed": h("webhook-signature").starts_with("v1,"),
                        }))
                    },
                ),
            )
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "{}"
                }),
            )
            .route(
                "/fail",
                post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no") }),
            )
            .route(
                "/query",
                get(|uri: axum::http::Uri| async move {
                    axum::Json(json!({"query": uri.query().unwrap_or("")}))
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    fn req(url: Option<String>, method: &str, timeout_ms: u64) -> WebhookRequest {
        WebhookRequest {
            name: Some("customer".into()),
            url,
            method: method.into(),
            body: json!({"phone": "15551230000", "n": 2}),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    async fn run(
        fx: &HttpEffects,
        rx: &mut mpsc::UnboundedReceiver<CallInput>,
        r: WebhookRequest,
    ) -> Result<Value, String> {
        fx.webhook(CallHandle(7), Some("ref-1"), 42, r);
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a result within 5 s")
            .unwrap();
        assert_eq!(got.call, CallHandle(7));
        match got.input {
            Input::WebhookResult { id, result } => {
                assert_eq!(id, 42);
                result
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn mid_call_requests_reach_a_real_server() {
        let base = crm().await;
        let secret = Secret::from_bytes(&[9u8; 32]);
        let (fx, mut rx) = HttpEffects::new(
            Some(format!("{base}/lookup")),
            Some(secret),
            Arc::new(Metrics::new()),
        );
        // The configured URL, POST, signed, labelled.
        let v = run(&fx, &mut rx, req(None, "POST", 2000)).await.unwrap();
        assert_eq!(v["customer"]["name"], "Ann");
        assert_eq!(v["got"]["phone"], "15551230000");
        assert_eq!(v["name"], "customer");
        assert_eq!(v["call_ref"], "ref-1");
        assert_eq!(v["signed"], true);
        // GET puts the body's fields in the query.
        let v = run(
            &fx,
            &mut rx,
            req(Some(format!("{base}/query")), "GET", 2000),
        )
        .await
        .unwrap();
        let q = v["query"].as_str().unwrap();
        assert!(q.contains("phone=15551230000") && q.contains("n=2"), "{q}");
        // Failures come back as errors, never hang.
        let e = run(&fx, &mut rx, req(Some(format!("{base}/slow")), "POST", 200))
            .await
            .unwrap_err();
        assert_eq!(e, "timed out");
        let e = run(
            &fx,
            &mut rx,
            req(Some(format!("{base}/fail")), "POST", 2000),
        )
        .await
        .unwrap_err();
        assert_eq!(e, "HTTP 500");
        let (nourl, mut rx2) = HttpEffects::new(None, None, Arc::new(Metrics::new()));
        let e = run(&nourl, &mut rx2, req(None, "POST", 2000))
            .await
            .unwrap_err();
        assert!(e.contains("no URL"), "{e}");
    }
}
