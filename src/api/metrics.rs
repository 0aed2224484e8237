//! The Prometheus metrics ivrflow exposes on `GET /metrics` (OpenMetrics text).
//!
//! One [`Metrics`] per process, shared as `Arc`. Counters and histograms are updated where
//! things happen (the drive loop, the store thread, the delivery worker); gauges that
//! describe the store (calls by state, outbox depth) are refreshed when `/metrics` is
//! scraped. Every update is an atomic operation, cheap enough for the pacing task.
//!
//! Not here: labels with personal data (numbers, names) — never; per-call labels — never
//! (unbounded cardinality).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    /// Calls the engine carries now.
    pub live_calls: Gauge,
    /// Calls in the store by state (refreshed on scrape).
    pub calls_by_state: Family<StateLabel, Gauge>,
    pub calls_completed: Family<OutcomeLabel, Counter>,
    pub calls_failed: Family<ReasonLabel, Counter>,
    /// Outbox events by status (refreshed on scrape); `pending` is the queue depth.
    pub outbox_events: Family<StatusLabel, Gauge>,
    pub outbox_oldest_pending_seconds: Gauge<f64, AtomicU64>,
    pub events_recorded: Family<TypeLabel, Counter>,
    /// Delivery attempts by result (`delivered`, `refused`, `timeout`, `network`, `gone`).
    pub deliveries: Family<ResultLabel, Counter>,
    /// Events that became dead.
    pub dead_letters: Counter,
    pub delivery_seconds: Histogram,
    /// Mid-call webhook requests by result (`ok`, `error`).
    pub call_webhooks: Family<ResultLabel, Counter>,
    /// How long one group commit of call records took (the outbox insert latency).
    pub store_commit_seconds: Histogram,
    pub store_errors: Counter,
    /// How long SIP messages waited for their call's events to be committed.
    pub sip_hold_seconds: Histogram,
    /// SIP user-agent counters (unparseable, invalid, retransmissions…).
    pub sip_messages: Family<KindLabel, Counter>,
    pub rtp_packets_sent: Counter,
    pub rtp_send_errors: Counter,
    /// How late each 20 ms pacing tick ran.
    pub rtp_tick_lateness_seconds: Histogram,
    /// Speech recognition time per utterance (observed by the ASR workers).
    pub asr_decode_seconds: Histogram,
    /// Recognition jobs by what became of them in the queue: `replaced` (a newer
    /// utterance of the same call took its place), `cancelled`, `refused` (queue full).
    pub asr_jobs: Family<ResultLabel, Counter>,
    /// Deadlines a state machine handed back still due after handling them (a bug; see
    /// `crate::timers`).
    pub timer_violations: Counter,
    /// 1 while the store cannot commit (new calls refused, SIP held).
    pub store_failing: Gauge,
    /// RTP packets dropped because their source is not the call's (strict RTP).
    pub rtp_foreign_dropped: Counter,
    /// Source addresses the SIP edge guard has banned now (too many requests).
    pub sip_banned_sources: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn latency_buckets() -> Histogram {
    // 0.5 ms … ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ivrflow");
        let m = Metrics {
            live_calls: Gauge::default(),
            calls_by_state: Family::default(),
            calls_completed: Family::default(),
            calls_failed: Family::default(),
            outbox_events: Family::default(),
            outbox_oldest_pending_seconds: Gauge::default(),
            events_recorded: Family::default(),
            deliveries: Family::default(),
            dead_letters: Counter::default(),
            delivery_seconds: latency_buckets(),
            call_webhooks: Family::default(),
            store_commit_seconds: latency_buckets(),
            store_errors: Counter::default(),
            sip_hold_seconds: latency_buckets(),
            sip_messages: Family::default(),
            rtp_packets_sent: Counter::default(),
            rtp_send_errors: Counter::default(),
            rtp_tick_lateness_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 12)),
            asr_decode_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            asr_jobs: Family::default(),
            timer_violations: Counter::default(),
            store_failing: Gauge::default(),
            rtp_foreign_dropped: Counter::default(),
            sip_banned_sources: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "calls_live",
            "Calls the engine carries now",
            m.live_calls.clone(),
        );
        registry.register(
            "calls",
            "Calls in the store by state",
            m.calls_by_state.clone(),
        );
        registry.register(
            "calls_completed",
            "Answered calls that ended, by scenario outcome",
            m.calls_completed.clone(),
        );
        registry.register(
            "calls_failed",
            "Calls that failed, by reason",
            m.calls_failed.clone(),
        );
        registry.register(
            "outbox_events",
            "Outbox events by status (pending = queue depth)",
            m.outbox_events.clone(),
        );
        registry.register(
            "outbox_oldest_pending_seconds",
            "Age of the oldest pending event",
            m.outbox_oldest_pending_seconds.clone(),
        );
        registry.register(
            "events_recorded",
            "Events committed to the outbox, by type",
            m.events_recorded.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Delivery attempts by result",
            m.deliveries.clone(),
        );
        registry.register(
            "webhook_dead_letters",
            "Events that exhausted their attempts or got 410",
            m.dead_letters.clone(),
        );
        registry.register(
            "webhook_delivery_seconds",
            "Duration of one delivery attempt",
            m.delivery_seconds.clone(),
        );
        registry.register(
            "call_webhooks",
            "Mid-call webhook requests by result",
            m.call_webhooks.clone(),
        );
        registry.register(
            "store_commit_seconds",
            "Duration of one group commit of call records and events",
            m.store_commit_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store operations",
            m.store_errors.clone(),
        );
        registry.register(
            "sip_hold_seconds",
            "How long SIP messages waited for their events to be committed",
            m.sip_hold_seconds.clone(),
        );
        registry.register(
            "sip_messages",
            "SIP user-agent counters by kind",
            m.sip_messages.clone(),
        );
        registry.register(
            "rtp_packets_sent",
            "RTP packets sent",
            m.rtp_packets_sent.clone(),
        );
        registry.register(
            "rtp_send_errors",
            "RTP packets the socket refused",
            m.rtp_send_errors.clone(),
        );
        registry.register(
            "rtp_tick_lateness_seconds",
            "How late each 20 ms pacing tick ran",
            m.rtp_tick_lateness_seconds.clone(),
        );
        registry.register(
            "asr_decode_seconds",
            "Speech recognition time per utterance",
            m.asr_decode_seconds.clone(),
        );
        registry.register(
            "asr_jobs",
            "Recognition jobs dropped before a result, by why (replaced, cancelled, refused)",
            m.asr_jobs.clone(),
        );
        for result in ["replaced", "cancelled", "refused"] {
            let _ = m.asr_jobs.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }
        registry.register(
            "timer_violations",
            "Deadlines still due after being handled, deferred by a tick (a bug if not 0)",
            m.timer_violations.clone(),
        );
        registry.register(
            "rtp_foreign_dropped",
            "RTP packets dropped because their source is not the call's (strict RTP)",
            m.rtp_foreign_dropped.clone(),
        );
        registry.register(
            "sip_banned_sources",
            "Source addresses banned now by the SIP edge guard (request flood)",
            m.sip_banned_sources.clone(),
        );
        registry.register(
            "store_failing",
            "1 while the store cannot commit: new calls are refused and SIP waits",
            m.store_failing.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Refresh the store gauges from a stats snapshot taken at `now_ms`.
    pub fn set_store_stats(&self, s: &Stats, now_ms: i64) {
        for st in crate::store::CallState::ALL {
            let n = s.calls_by_state.get(st.as_str()).copied().unwrap_or(0);
            self.calls_by_state
                .get_or_create(&StateLabel {
                    state: st.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for st in crate::store::EventStatus::ALL {
            let n = s.events_by_status.get(st.as_str()).copied().unwrap_or(0);
            self.outbox_events
                .get_or_create(&StatusLabel {
                    status: st.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let age = s
            .oldest_pending
            .map(|t| (now_ms - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.outbox_oldest_pending_seconds.set(age);
    }

    /// A record the store committed: its event, and the call's end by outcome or reason.
    pub fn recorded(&self, rec: &crate::store::Record) {
        if let Some(ev) = &rec.event {
            self.event_recorded(&ev.kind);
        }
        if let crate::store::CallChange::Update(u) = &rec.change {
            match (&u.state, &u.failure) {
                (Some(crate::store::CallState::Completed), _) => {
                    self.calls_completed
                        .get_or_create(&OutcomeLabel {
                            outcome: u.outcome.clone().unwrap_or_else(|| "none".to_owned()),
                        })
                        .inc();
                }
                (_, Some((reason, _))) if u.state != Some(crate::store::CallState::Queued) => {
                    self.calls_failed
                        .get_or_create(&ReasonLabel {
                            reason: reason.clone(),
                        })
                        .inc();
                }
                _ => {}
            }
        }
    }

    pub fn event_recorded(&self, kind: &str) {
        self.events_recorded
            .get_or_create(&TypeLabel {
                r#type: kind.to_owned(),
            })
            .inc();
    }

    pub fn delivery(&self, result: &str) {
        self.deliveries
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Bring a cumulative SIP counter up to `total` (from `UaStats` snapshots).
    pub fn sip_counter_to(&self, kind: &str, total: u64) {
        let c = self.sip_messages.get_or_create(&KindLabel {
            kind: kind.to_owned(),
        });
        let cur = c.get();
        if total > cur {
            c.inc_by(total - cur);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_everything() {
        let m = Metrics::new();
        m.live_calls.set(3);
        m.delivery("delivered");
        m.sip_counter_to("retransmissions_absorbed", 5);
        m.sip_counter_to("retransmissions_absorbed", 7);
        let mut s = Stats::default();
        s.events_by_status.insert("pending".into(), 4);
        s.oldest_pending = Some(1_000);
        m.set_store_stats(&s, 3_500);
        let text = m.encode();
        for needle in [
            "ivrflow_calls_live 3",
            "ivrflow_webhook_deliveries_total{result=\"delivered\"} 1",
            "ivrflow_outbox_events{status=\"pending\"} 4",
            "ivrflow_outbox_events{status=\"dead\"} 0",
            "ivrflow_calls{state=\"queued\"} 0",
            "ivrflow_outbox_oldest_pending_seconds 2.5",
            "ivrflow_sip_messages_total{kind=\"retransmissions_absorbed\"} 7",
            "ivrflow_rtp_tick_lateness_seconds_bucket",
            "ivrflow_asr_decode_seconds_count 0",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing in\n{text}");
        }
    }
}
