//! What the shop's CRM receives: event payloads and the delivery retry policy.
//!
//! Pure data and arithmetic; the HTTP client that delivers events lives in `rt::webhook`.
//! This module does not persist anything yet: the durable outbox (issue 5) will store
//! [`CallCompleted`] events before delivery so that a restart loses none.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::call::TraceEvent;
use crate::dialogue::{Answer, HangupBy};

/// `call.completed`: one per answered call, sent when it ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallCompleted {
    /// Always `"call.completed"`.
    pub event: &'static str,
    /// The SIP Call-ID.
    pub call_id: String,
    pub scenario: String,
    pub direction: &'static str,
    pub outcome: Option<String>,
    pub answers: BTreeMap<String, Answer>,
    pub variables: BTreeMap<String, String>,
    /// Nodes visited, in order.
    pub path: Vec<String>,
    /// RFC 3339 UTC timestamps.
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: u64,
    pub hangup_by: HangupBy,
    /// Prompts played, inputs and timings.
    pub trace: Vec<TraceEvent>,
}

/// Retry schedule for a failed delivery: exponential from `first`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt` (1-based; attempt 1 is immediate), or `None` when the
    /// attempts are used up. `jitter` in [0, 1) spreads retries of many events apart.
    pub fn delay_before(&self, attempt: u32, jitter: f64) -> Option<Duration> {
        if attempt == 0 || attempt > self.max_attempts {
            return None;
        }
        if attempt == 1 {
            return Some(Duration::ZERO);
        }
        let exp = self
            .first
            .saturating_mul(1u32 << (attempt - 2).min(20))
            .min(self.max);
        let jitter = jitter.clamp(0.0, 0.999);
        // Up to +25 % so deliveries that failed together do not retry together.
        Some(exp + exp.mul_f64(0.25 * jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule_doubles_caps_and_ends() {
        let p = RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
            max_attempts: 6,
        };
        let d: Vec<u64> = (1..=6)
            .map(|a| p.delay_before(a, 0.0).unwrap().as_secs())
            .collect();
        assert_eq!(d, vec![0, 1, 2, 4, 5, 5]);
        assert_eq!(p.delay_before(7, 0.0), None);
        let j = p.delay_before(3, 0.5).unwrap();
        assert_eq!(j, Duration::from_millis(2250));
    }
}
