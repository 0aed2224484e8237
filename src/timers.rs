//! The timer rule every state machine here keeps: after `handle_timeout(now)`, its
//! `poll_timeout()` is `None` or later than `now`.
//!
//! A machine that breaks it makes its owner spin: the engine pops the deadline, hands it to
//! the call, and gets the same past deadline back (issue 12: one caller's voice pattern
//! hung the whole node that way). The rule is checked where a deadline is handed back:
//! a violation is a bug, so debug builds (every test) panic on it; release builds count it
//! ([`violations`], exported as `ivrflow_timer_violations_total`), log it, and push the
//! deadline [`RETRY`] into the future so the node keeps serving everyone else.
//!
//! Not here: the timers themselves (each machine keeps its own).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How far a deadline that broke the rule is pushed back: one pacing tick.
pub const RETRY: Duration = Duration::from_millis(20);

static VIOLATIONS: AtomicU64 = AtomicU64::new(0);

/// Times the rule was broken since the process started.
pub fn violations() -> u64 {
    VIOLATIONS.load(Ordering::Relaxed)
}

/// `next` is what `what` reports right after handling `now`: returns it when it keeps the
/// rule, else counts the violation and returns `now + RETRY`.
#[track_caller]
pub fn checked(what: &'static str, now: Instant, next: Option<Instant>) -> Option<Instant> {
    match next {
        Some(t) if t <= now => {
            VIOLATIONS.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                machine = what,
                overdue_us = now.saturating_duration_since(t).as_micros() as u64,
                "a handled deadline came back; deferred by one tick (a bug: please report)"
            );
            debug_assert!(
                !cfg!(debug_assertions) || allow_in_tests(),
                "{what}: deadline {t:?} is still due after handle_timeout({now:?})"
            );
            Some(now + RETRY)
        }
        other => other,
    }
}

#[cfg(not(test))]
fn allow_in_tests() -> bool {
    false
}

/// Unit tests of this module break the rule on purpose.
#[cfg(test)]
fn allow_in_tests() -> bool {
    ALLOW.with(|a| a.get())
}

#[cfg(test)]
thread_local! {
    static ALLOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_deadline_is_counted_and_deferred() {
        ALLOW.with(|a| a.set(true));
        let now = Instant::now();
        let before = violations();
        assert_eq!(checked("test", now, Some(now)), Some(now + RETRY));
        assert_eq!(violations(), before + 1);
        let later = now + Duration::from_millis(1);
        assert_eq!(checked("test", now, Some(later)), Some(later));
        assert_eq!(checked("test", now, None), None);
        assert_eq!(violations(), before + 1);
        ALLOW.with(|a| a.set(false));
    }
}
