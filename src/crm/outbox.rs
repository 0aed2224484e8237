//! The outbox's delivery state machine: what happens to an event after each attempt.
//!
//! ```text
//!            insert                    2xx
//!   ───────► pending ───attempt────────────────────────────► delivered
//!              ▲  │        │ 410 Gone                            │
//!              │  │        ▼                                     │
//!              │  │      dead ◄── non-2xx / timeout / network ───┤ (last attempt)
//!              │  │        │          error on the last attempt  │
//!              │  └─retry at now + schedule[n] (± jitter) ◄──────┘ (earlier attempts)
//!              └──────── replay (API / CLI) ◄── dead | delivered
//! ```
//!
//! Pure: time is an argument (Unix milliseconds) and so is the jitter sample; the delivery
//! worker in `rt::webhook` owns the clock and the random numbers. Ordering per call (event
//! n+1 waits until n is delivered or dead) is the store's query, not this module's.
//!
//! Not here: HTTP, persistence, or disabling an endpoint (a 410 dead-letters the one event;
//! see docs/webhooks.md for why).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch: the store's time unit.
pub type UnixMs = i64;

/// Delays between attempts and how many attempts there are.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    /// `delays[i]` is the wait after failed attempt `i + 1`. When there are more attempts
    /// than delays the last delay repeats.
    pub delays: Vec<Duration>,
    /// Attempts in all (the first is immediate).
    pub max_attempts: u32,
    /// Each delay is scaled by a random factor in `[1 - jitter, 1 + jitter)`.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    /// The Standard Webhooks schedule: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
    /// 10 h — eight attempts over about 27.6 hours.
    fn default() -> Self {
        const M: u64 = 60;
        const H: u64 = 3600;
        RetrySchedule {
            delays: [5, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 10 * H]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            max_attempts: 8,
            jitter: 0.1,
        }
    }
}

impl RetrySchedule {
    /// The wait after failed attempt `attempt` (1-based) before the next one, or `None`
    /// when it was the last. `sample` in `[0, 1)` picks the jitter.
    pub fn delay_after(&self, attempt: u32, sample: f64) -> Option<Duration> {
        if attempt == 0 || attempt >= self.max_attempts {
            return None;
        }
        let idx = (attempt as usize - 1).min(self.delays.len().saturating_sub(1));
        let base = self.delays.get(idx).copied().unwrap_or(Duration::ZERO);
        let j = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + j * (2.0 * sample.clamp(0.0, 0.999_999) - 1.0);
        Some(base.mul_f64(factor.max(0.0)))
    }

    /// The longest delay in the schedule (the cap for a receiver's `Retry-After`).
    pub fn max_delay(&self) -> Duration {
        self.delays.iter().copied().max().unwrap_or(Duration::ZERO)
    }
}

/// What one HTTP attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx status.
    Delivered { status: u16 },
    /// 410 Gone: the receiver does not want this event; no more attempts.
    Gone,
    /// Any other status (3xx included: redirects are not followed). `retry_after` is the
    /// receiver's `Retry-After` on 429 and 503.
    Refused {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No complete response within the per-attempt timeout.
    Timeout,
    /// Connection refused, reset, DNS, TLS…
    Network(String),
}

impl AttemptResult {
    /// Short label for the deliveries log and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptResult::Delivered { .. } => "delivered",
            AttemptResult::Gone => "gone",
            AttemptResult::Refused { .. } => "refused",
            AttemptResult::Timeout => "timeout",
            AttemptResult::Network(_) => "network",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AttemptResult::Delivered { status } | AttemptResult::Refused { status, .. } => {
                Some(*status)
            }
            AttemptResult::Gone => Some(410),
            _ => None,
        }
    }

    /// A one-line description of a failure (`None` for success).
    pub fn error(&self) -> Option<String> {
        match self {
            AttemptResult::Delivered { .. } => None,
            AttemptResult::Gone => Some("410 Gone".to_owned()),
            AttemptResult::Refused { status, .. } => Some(format!("HTTP {status}")),
            AttemptResult::Timeout => Some("timed out".to_owned()),
            AttemptResult::Network(e) => Some(e.clone()),
        }
    }
}

/// Where an event goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Transition {
    Delivered,
    Retry { at: UnixMs, error: String },
    Dead { error: String },
}

/// The next state of an event after attempt number `attempt` (1-based) ended at `now`.
pub fn after_attempt(
    schedule: &RetrySchedule,
    attempt: u32,
    result: &AttemptResult,
    now: UnixMs,
    sample: f64,
) -> Transition {
    let error = result.error().unwrap_or_default();
    match result {
        AttemptResult::Delivered { .. } => Transition::Delivered,
        AttemptResult::Gone => Transition::Dead { error },
        _ => match schedule.delay_after(attempt, sample) {
            None => Transition::Dead {
                error: format!("{error} (attempt {attempt} of {})", schedule.max_attempts),
            },
            Some(delay) => {
                let delay = match result {
                    AttemptResult::Refused {
                        retry_after: Some(ra),
                        ..
                    } => delay.max((*ra).min(schedule.max_delay())),
                    _ => delay,
                };
                Transition::Retry {
                    at: now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                    error,
                }
            }
        },
    }
}

/// `Retry-After` as delay-seconds (the HTTP-date form is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().copied().map(Duration::from_secs).collect()
    }

    #[test]
    fn standard_schedule_without_jitter() {
        let s = RetrySchedule {
            jitter: 0.0,
            ..RetrySchedule::default()
        };
        let d: Vec<u64> = (1..8)
            .map(|a| s.delay_after(a, 0.3).unwrap().as_secs())
            .collect();
        assert_eq!(d, vec![5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(s.delay_after(8, 0.3), None, "eight attempts in all");
        assert_eq!(s.delay_after(0, 0.3), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let s = RetrySchedule {
            delays: secs(&[100]),
            max_attempts: 3,
            jitter: 0.1,
        };
        assert_eq!(s.delay_after(1, 0.0).unwrap(), Duration::from_secs(90));
        assert_eq!(s.delay_after(1, 0.5).unwrap(), Duration::from_secs(100));
        let hi = s.delay_after(1, 0.999_999_9).unwrap();
        assert!(hi < Duration::from_secs(110) && hi > Duration::from_millis(109_990));
        // More attempts than delays: the last delay repeats.
        assert_eq!(s.delay_after(2, 0.5).unwrap(), Duration::from_secs(100));
    }

    #[test]
    fn transitions() {
        let s = RetrySchedule {
            delays: secs(&[5, 60]),
            max_attempts: 3,
            jitter: 0.0,
        };
        let now = 1_000_000;
        assert_eq!(
            after_attempt(&s, 1, &AttemptResult::Delivered { status: 204 }, now, 0.5),
            Transition::Delivered
        );
        assert_eq!(
            after_attempt(
                &s,
                1,
                &AttemptResult::Refused {
                    status: 500,
                    retry_after: None
                },
                now,
                0.5
            ),
            Transition::Retry {
                at: now + 5_000,
                error: "HTTP 500".into()
            }
        );
        assert_eq!(
            after_attempt(&s, 2, &AttemptResult::Timeout, now, 0.5),
            Transition::Retry {
                at: now + 60_000,
                error: "timed out".into()
            }
        );
        assert_eq!(
            after_attempt(&s, 3, &AttemptResult::Network("refused".into()), now, 0.5),
            Transition::Dead {
                error: "refused (attempt 3 of 3)".into()
            }
        );
        // 410 stops at once, even on the first attempt.
        assert_eq!(
            after_attempt(&s, 1, &AttemptResult::Gone, now, 0.5),
            Transition::Dead {
                error: "410 Gone".into()
            }
        );
    }

    #[test]
    fn retry_after_lengthens_but_is_capped() {
        let s = RetrySchedule {
            delays: secs(&[5, 60]),
            max_attempts: 5,
            jitter: 0.0,
        };
        let r = |ra| AttemptResult::Refused {
            status: 503,
            retry_after: Some(Duration::from_secs(ra)),
        };
        assert_eq!(
            after_attempt(&s, 1, &r(30), 0, 0.5),
            Transition::Retry {
                at: 30_000,
                error: "HTTP 503".into()
            }
        );
        assert_eq!(
            after_attempt(&s, 1, &r(1), 0, 0.5),
            Transition::Retry {
                at: 5_000,
                error: "HTTP 503".into()
            },
            "never sooner than the schedule"
        );
        assert_eq!(
            after_attempt(&s, 1, &r(86_400), 0, 0.5),
            Transition::Retry {
                at: 60_000,
                error: "HTTP 503".into()
            },
            "capped at the schedule's longest delay"
        );
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
