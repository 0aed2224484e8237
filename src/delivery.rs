//! The delivery worker's decisions, sans-IO: which events to take from the outbox, when,
//! how many at once, and what each attempt's result does to its event.
//!
//! ```text
//!  poll_output ─► Lease{free, lease_until}   (the store: due events, one per call, oldest
//!                                             first, leased so no other poll takes them)
//!  handle_leased(events, next_due) ─► Post{event} for each
//!  handle_result(event, result, started, took) ─► collected
//!  poll_output ─► Finish(attempts)             (the store logs them and moves the events)
//!             ─► Timeout(at)                   (next look: the next due time, ≤ 1 s)
//! ```
//! The runtime (`rt::webhook`) does the HTTP and the store queries; the simulated world does
//! them against its own store and CRM. Time is Unix milliseconds (the outbox's unit: retry
//! times are stored); the jitter comes from a seeded RNG. A lease outlives the attempt's
//! timeout, so an event is never handed out twice while its attempt runs; after a crash the
//! store's leases are forgotten (or expire) and the event goes again (at-least-once).
//!
//! Not here: HTTP, SQL, signatures (`crm::signing`), the retry arithmetic (`crm::outbox`).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::crm::outbox::{self, AttemptResult, RetrySchedule, Transition, UnixMs};
use crate::store::{Attempt, AttemptDone, EventRecord};

/// Longest wait between two looks at the outbox (it also notices CLI replays this way).
pub const POLL: Duration = Duration::from_secs(1);
/// A lease outlives the attempt's timeout by this much.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Per attempt.
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub max_in_flight: usize,
}

/// What the deliverer wants done.
#[derive(Debug)]
pub enum Output {
    /// Lease up to `free` due events until `lease_until`; answer with
    /// [`Deliverer::handle_leased`] (also with the store's next due time).
    Lease { free: u32, lease_until: UnixMs },
    /// POST this event; answer with [`Deliverer::handle_result`].
    Post(EventRecord),
    /// Log these attempts and move their events on.
    Finish(Vec<AttemptDone>),
    /// Nothing more until this instant (or until new events are committed:
    /// [`Deliverer::handle_new_events`]).
    Timeout(UnixMs),
}

pub struct Deliverer {
    policy: Policy,
    rng: StdRng,
    in_flight: HashSet<String>,
    done: Vec<AttemptDone>,
    out: VecDeque<Output>,
    /// A lease query is under way.
    leasing: bool,
    /// When to look at the outbox again.
    next_look: UnixMs,
    /// Attempts by result, since the start.
    pub delivered: u64,
    pub dead: u64,
}

impl Deliverer {
    pub fn new(policy: Policy, seed: u64) -> Deliverer {
        Deliverer {
            policy,
            rng: StdRng::seed_from_u64(seed),
            in_flight: HashSet::new(),
            done: Vec::new(),
            out: VecDeque::new(),
            leasing: false,
            next_look: 0,
            delivered: 0,
            dead: 0,
        }
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from((self.policy.timeout + LEASE_MARGIN).as_millis()).unwrap_or(i64::MAX)
    }

    /// Time passed: look at the outbox if it is time to.
    pub fn handle_timeout(&mut self, now: UnixMs) {
        if now >= self.next_look {
            self.look(now);
        }
    }

    /// New events were committed (or replayed): look now.
    pub fn handle_new_events(&mut self, now: UnixMs) {
        self.look(now);
    }

    fn look(&mut self, now: UnixMs) {
        if self.leasing {
            return;
        }
        let free = self
            .policy
            .max_in_flight
            .saturating_sub(self.in_flight.len()) as u32;
        if free == 0 {
            // A slot frees with the next result.
            self.next_look = now.saturating_add(POLL.as_millis() as i64);
            return;
        }
        self.leasing = true;
        self.out.push_back(Output::Lease {
            free,
            lease_until: now.saturating_add(self.lease_ms()),
        });
    }

    /// The store's answer to [`Output::Lease`]: these events are ours to send; the next
    /// one becomes due at `next_due`.
    pub fn handle_leased(
        &mut self,
        now: UnixMs,
        events: Vec<EventRecord>,
        next_due: Option<UnixMs>,
    ) {
        self.leasing = false;
        for ev in events {
            if self.in_flight.insert(ev.id.clone()) {
                self.out.push_back(Output::Post(ev));
            }
        }
        let poll = POLL.as_millis() as i64;
        let wait = match next_due {
            Some(t) => (t - now).clamp(0, poll),
            None => poll,
        };
        // A due event not leased (all slots busy) waits for a slot, not a timer.
        let wait = if wait == 0 && self.in_flight.len() >= self.policy.max_in_flight {
            poll
        } else {
            wait.max(5)
        };
        self.next_look = now.saturating_add(wait);
    }

    /// The store could not be read: look again later.
    pub fn handle_lease_failed(&mut self, now: UnixMs) {
        self.leasing = false;
        self.next_look = now.saturating_add(POLL.as_millis() as i64);
    }

    /// How one attempt at `event` went (it started at `started`, took `took`, ended at
    /// `now`). Returns the transition, for logs and metrics.
    pub fn handle_result(
        &mut self,
        now: UnixMs,
        event: &EventRecord,
        result: AttemptResult,
        started: UnixMs,
        took: Duration,
    ) -> Transition {
        self.in_flight.remove(&event.id);
        let n = event.attempts + 1;
        let sample: f64 = self.rng.random();
        let transition = outbox::after_attempt(&self.policy.schedule, n, &result, now, sample);
        match &transition {
            Transition::Delivered => self.delivered += 1,
            Transition::Dead { .. } => self.dead += 1,
            Transition::Retry { .. } => {}
        }
        self.done.push(AttemptDone {
            attempt: Attempt {
                event_id: event.id.clone(),
                attempt: n,
                started_at: started,
                duration_ms: took.as_millis() as u64,
                status_code: result.status(),
                error: result.error(),
                result: result.label().to_owned(),
            },
            transition: transition.clone(),
        });
        // A slot is free: look again soon (results come in bursts; take them together).
        self.next_look = self.next_look.min(now);
        transition
    }

    /// Attempts under way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The next thing to do; ends with [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        if !self.done.is_empty() {
            return Output::Finish(std::mem::take(&mut self.done));
        }
        Output::Timeout(self.next_look)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventStatus;

    fn event(id: &str, attempts: u32) -> EventRecord {
        EventRecord {
            id: id.into(),
            call_id: "c".into(),
            seq: 1,
            kind: "call.started".into(),
            payload: "{}".into(),
            status: EventStatus::Pending,
            attempts,
            next_attempt_at: 0,
            last_error: None,
            created_at: 0,
            updated_at: 0,
            delivered_at: None,
            position: 1,
        }
    }

    fn policy(max_in_flight: usize) -> Policy {
        Policy {
            timeout: Duration::from_secs(10),
            schedule: RetrySchedule {
                jitter: 0.0,
                ..RetrySchedule::default()
            },
            max_in_flight,
        }
    }

    #[test]
    fn lease_post_finish_and_look_again() {
        let mut d = Deliverer::new(policy(2), 1);
        d.handle_timeout(1_000);
        match d.poll_output() {
            Output::Lease { free, lease_until } => {
                assert_eq!(free, 2);
                assert_eq!(lease_until, 1_000 + 15_000);
            }
            o => panic!("{o:?}"),
        }
        assert!(matches!(d.poll_output(), Output::Timeout(_)));
        // While the lease query runs, no second one.
        d.handle_new_events(1_001);
        assert!(matches!(d.poll_output(), Output::Timeout(_)));
        d.handle_leased(1_002, vec![event("a", 0), event("b", 2)], Some(1_500));
        assert!(matches!(d.poll_output(), Output::Post(e) if e.id == "a"));
        assert!(matches!(d.poll_output(), Output::Post(e) if e.id == "b"));
        assert!(matches!(d.poll_output(), Output::Timeout(t) if t == 1_500));
        assert_eq!(d.in_flight(), 2);
        // All slots busy: a look leases nothing.
        d.handle_timeout(1_500);
        assert!(matches!(d.poll_output(), Output::Timeout(t) if t == 2_500));
        let t = d.handle_result(
            2_000,
            &event("a", 0),
            AttemptResult::Delivered { status: 200 },
            1_002,
            Duration::from_millis(3),
        );
        assert_eq!(t, Transition::Delivered);
        let t = d.handle_result(
            2_000,
            &event("b", 2),
            AttemptResult::Timeout,
            1_002,
            Duration::from_secs(10),
        );
        assert_eq!(
            t,
            Transition::Retry {
                at: 2_000 + 30 * 60 * 1000,
                error: "timed out".into()
            }
        );
        match d.poll_output() {
            Output::Finish(done) => {
                assert_eq!(done.len(), 2);
                assert_eq!(done[1].attempt.attempt, 3);
            }
            o => panic!("{o:?}"),
        }
        // Slots free: the next look is now.
        assert!(matches!(d.poll_output(), Output::Timeout(t) if t <= 2_000));
    }
}
