//! The outbound dialer: which queued call to place, and when.
//!
//! Sans-IO: the owner feeds queued calls, results and the do-not-call list, and asks
//! [`Dialer::poll_dial`] with the current wall-clock time (`now` is a [`jiff::Timestamp`],
//! never read inside). Rules it enforces at dial time, every time:
//! - not before the call's `not_before` ("one minute after the order");
//! - inside the campaign's calling windows **in the callee's time zone** (days of week and
//!   hours, DST-correct via the IANA database);
//! - never a number on the do-not-call list, never without consent when the campaign
//!   requires it (such calls end with a reason, they are not retried);
//! - one call at a time per number;
//! - per-trunk concurrent-call and calls-per-second limits.
//!
//! After a call, [`Dialer::handle_result`] applies the campaign's retry policy by
//! disposition ("no answer: every 10 minutes, at most 5 times") and says whether the call
//! is done, retried (and when), or given up.
//!
//! Not here: SIP (the engine places the call), persistence (the store keeps the queue so a
//! restart loses nothing: the owner re-enqueues what the store holds).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// A local calling window: these weekdays, from `start` to `end` (local time, end exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingWindow {
    pub days: Vec<Weekday>,
    pub start: Time,
    pub end: Time,
}

/// Retry rule for one disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryRule {
    pub every: Duration,
    /// Attempts in all (the first call included); 1 means no retry.
    pub max_attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Campaign {
    pub name: String,
    /// Empty: any time.
    pub windows: Vec<CallingWindow>,
    /// Time zone for callees without one (IANA name).
    pub default_tz: String,
    pub require_consent: bool,
    pub busy: RetryRule,
    pub no_answer: RetryRule,
    pub failed: RetryRule,
}

impl Campaign {
    /// Any time, no retries: the default for calls that name no campaign.
    pub fn immediate(name: &str) -> Campaign {
        let once = RetryRule {
            every: Duration::ZERO,
            max_attempts: 1,
        };
        Campaign {
            name: name.to_owned(),
            windows: Vec::new(),
            default_tz: "UTC".to_owned(),
            require_consent: false,
            busy: once,
            no_answer: once,
            failed: once,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrunkLimits {
    pub max_concurrent: usize,
    pub max_cps: f64,
}

/// A call waiting to be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCall {
    pub id: String,
    /// The number dialled (personal data).
    pub to: String,
    pub campaign: String,
    pub trunk: String,
    /// IANA time zone of the callee, if known.
    pub tz: Option<String>,
    pub not_before: Timestamp,
    /// Attempts already made.
    pub attempts: u32,
    pub consent: bool,
}

/// How a placed call went, from the SIP outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    /// 486, 600.
    Busy,
    /// 408, 480, ring timeout.
    NoAnswer,
    /// 603 Decline.
    Rejected,
    /// Any other 4xx/5xx/6xx, or a local error.
    Failed(u16),
}

impl Disposition {
    /// Map a final SIP status (or `None` when we gave up ringing) to a disposition.
    pub fn from_sip(status: Option<u16>) -> Disposition {
        match status {
            Some(200..=299) => Disposition::Answered,
            Some(486) | Some(600) => Disposition::Busy,
            None | Some(408) | Some(480) | Some(487) => Disposition::NoAnswer,
            Some(603) => Disposition::Rejected,
            Some(s) => Disposition::Failed(s),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Rejected => "rejected",
            Disposition::Failed(_) => "failed",
        }
    }
}

/// Why a queued call will not be placed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    DoNotCall,
    NoConsent,
    UnknownCampaign(String),
    UnknownTrunk(String),
    BadTimeZone(String),
}

/// What the dialer wants done now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialAction {
    /// Place this call (it is now active on its trunk until `handle_result`).
    Dial(QueuedCall),
    /// Drop this call for good; report the reason to the CRM.
    Refuse(QueuedCall, Refusal),
    /// Not dialable before this instant (its calling window): the owner hands it back to
    /// the store with that time (only with [`Dialer::release_deferred`]; the dialer forgot it).
    Defer(QueuedCall, Timestamp),
}

/// After a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Done,
    RetryAt(Timestamp),
    GaveUp { attempts: u32 },
}

#[derive(Debug, Default)]
struct TrunkState {
    active: usize,
    /// Dial instants in the last second (for the cps limit).
    recent: Vec<Timestamp>,
}

pub struct Dialer {
    campaigns: HashMap<String, Campaign>,
    trunks: HashMap<String, (TrunkLimits, TrunkState)>,
    dnc: HashSet<String>,
    /// (due, id) ordered; the call itself in `calls`.
    due: BTreeSet<(Timestamp, String)>,
    calls: HashMap<String, QueuedCall>,
    /// Calls placed and not finished: id → call.
    active: HashMap<String, QueuedCall>,
    /// Numbers with a call in progress.
    busy_numbers: HashSet<String>,
    /// Calls outside their window are handed back ([`DialAction::Defer`]) instead of
    /// waiting here: the node claimed them from a shared store and must not sit on the
    /// claim for hours.
    release_deferred: bool,
}

/// When a number is busy with another of our calls, look again this much later.
const NUMBER_BUSY_RECHECK: Duration = Duration::from_secs(30);

impl Dialer {
    pub fn new(campaigns: Vec<Campaign>, trunks: Vec<(String, TrunkLimits)>) -> Dialer {
        Dialer {
            campaigns: campaigns.into_iter().map(|c| (c.name.clone(), c)).collect(),
            trunks: trunks
                .into_iter()
                .map(|(n, l)| (n, (l, TrunkState::default())))
                .collect(),
            dnc: HashSet::new(),
            due: BTreeSet::new(),
            calls: HashMap::new(),
            active: HashMap::new(),
            busy_numbers: HashSet::new(),
            release_deferred: false,
        }
    }

    /// Hand calls that are not dialable now back to the owner ([`DialAction::Defer`]).
    pub fn release_deferred(&mut self, on: bool) {
        self.release_deferred = on;
    }

    pub fn add_dnc(&mut self, number: &str) {
        self.dnc.insert(normalize_number(number));
    }

    pub fn remove_dnc(&mut self, number: &str) {
        self.dnc.remove(&normalize_number(number));
    }

    pub fn is_dnc(&self, number: &str) -> bool {
        self.dnc.contains(&normalize_number(number))
    }

    /// Queue a call (or re-queue one the store still holds after a restart).
    pub fn enqueue(&mut self, call: QueuedCall) {
        self.due.insert((call.not_before, call.id.clone()));
        self.calls.insert(call.id.clone(), call);
    }

    /// Remove a queued call (the API's DELETE). Returns whether it was queued.
    pub fn cancel(&mut self, id: &str) -> bool {
        match self.calls.remove(id) {
            Some(c) => {
                self.due.remove(&(c.not_before, c.id));
                true
            }
            None => false,
        }
    }

    pub fn queued(&self) -> usize {
        self.calls.len()
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// The earliest instant a queued call becomes due (the owner's next wake-up).
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.due.first().map(|(t, _)| *t)
    }

    /// The next thing to do at `now`, if any. Call until it returns `None`.
    pub fn poll_dial(&mut self, now: Timestamp) -> Option<DialAction> {
        let due_now: Vec<(Timestamp, String)> = self
            .due
            .range(..=(now, String::from("\u{10FFFF}")))
            .cloned()
            .collect();
        for (t, id) in due_now {
            let Some(call) = self.calls.get(&id).cloned() else {
                self.due.remove(&(t, id));
                continue;
            };
            let Some(campaign) = self.campaigns.get(&call.campaign) else {
                self.take(&t, &id);
                let c = call.campaign.clone();
                return Some(DialAction::Refuse(call, Refusal::UnknownCampaign(c)));
            };
            if self.is_dnc(&call.to) {
                self.take(&t, &id);
                return Some(DialAction::Refuse(call, Refusal::DoNotCall));
            }
            if campaign.require_consent && !call.consent {
                self.take(&t, &id);
                return Some(DialAction::Refuse(call, Refusal::NoConsent));
            }
            let tz_name = call
                .tz
                .clone()
                .unwrap_or_else(|| campaign.default_tz.clone());
            let Ok(tz) = TimeZone::get(&tz_name) else {
                self.take(&t, &id);
                return Some(DialAction::Refuse(call, Refusal::BadTimeZone(tz_name)));
            };
            // Calling window: move the call to the next window opening.
            let allowed = next_allowed(&campaign.windows, &tz, now);
            if allowed > now {
                if self.release_deferred {
                    self.take(&t, &id);
                    return Some(DialAction::Defer(call, allowed));
                }
                self.reschedule(&t, &id, allowed);
                continue;
            }
            // One call at a time per number.
            if self.busy_numbers.contains(&normalize_number(&call.to)) {
                self.reschedule(&t, &id, add(now, NUMBER_BUSY_RECHECK));
                continue;
            }
            let Some((limits, state)) = self.trunks.get_mut(&call.trunk) else {
                self.take(&t, &id);
                let tr = call.trunk.clone();
                return Some(DialAction::Refuse(call, Refusal::UnknownTrunk(tr)));
            };
            let one_second_ago = add_signed(now, -1_000);
            state.recent.retain(|&d| d > one_second_ago);
            if state.active >= limits.max_concurrent {
                // Stays due; tried again on the next result or tick.
                continue;
            }
            if state.recent.len() as f64 >= limits.max_cps {
                continue;
            }
            state.active += 1;
            state.recent.push(now);
            self.take(&t, &id);
            self.busy_numbers.insert(normalize_number(&call.to));
            self.active.insert(id.clone(), call.clone());
            return Some(DialAction::Dial(call));
        }
        None
    }

    /// The earliest instant a trunk limit could let a due call through (cps window), for
    /// the owner's wake-up when `poll_dial` returned `None` with calls due.
    pub fn next_slot(&self, now: Timestamp) -> Option<Timestamp> {
        let any_due = self.due.first().is_some_and(|(t, _)| *t <= now);
        if !any_due {
            return self.poll_timeout();
        }
        self.trunks
            .values()
            .filter_map(|(_, s)| s.recent.iter().min().map(|t| add_signed(*t, 1_000)))
            .min()
            .or(Some(add(now, Duration::from_millis(100))))
    }

    /// A placed call ended with `disposition`. Returns what happens to it next; on
    /// `RetryAt` the call is queued again (the owner persists the new time).
    pub fn handle_result(&mut self, now: Timestamp, id: &str, disposition: Disposition) -> Next {
        let Some(mut call) = self.active.remove(id) else {
            return Next::Done;
        };
        if let Some((_, state)) = self.trunks.get_mut(&call.trunk) {
            state.active = state.active.saturating_sub(1);
        }
        self.busy_numbers.remove(&normalize_number(&call.to));
        call.attempts += 1;
        let Some(campaign) = self.campaigns.get(&call.campaign) else {
            return Next::Done;
        };
        let rule = match disposition {
            Disposition::Answered => return Next::Done,
            Disposition::Busy => campaign.busy,
            Disposition::NoAnswer => campaign.no_answer,
            Disposition::Rejected => {
                return Next::GaveUp {
                    attempts: call.attempts,
                };
            }
            Disposition::Failed(_) => campaign.failed,
        };
        if call.attempts >= rule.max_attempts {
            return Next::GaveUp {
                attempts: call.attempts,
            };
        }
        let at = add(now, rule.every);
        call.not_before = at;
        self.enqueue(call);
        Next::RetryAt(at)
    }

    fn take(&mut self, t: &Timestamp, id: &str) {
        self.due.remove(&(*t, id.to_owned()));
        self.calls.remove(id);
    }

    fn reschedule(&mut self, t: &Timestamp, id: &str, at: Timestamp) {
        self.due.remove(&(*t, id.to_owned()));
        if let Some(c) = self.calls.get_mut(id) {
            c.not_before = at;
        }
        self.due.insert((at, id.to_owned()));
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    add_signed(t, d.as_millis() as i64)
}

fn add_signed(t: Timestamp, ms: i64) -> Timestamp {
    t.checked_add(ms.milliseconds()).unwrap_or(t)
}

/// Digits (and a leading +) only, so "+7 (916) 123-45-67" and "+79161234567" match.
pub fn normalize_number(n: &str) -> String {
    n.chars()
        .enumerate()
        .filter(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '+'))
        .map(|(_, c)| c)
        .collect()
}

/// The first instant at or after `now` inside one of the windows, in `tz`.
pub fn next_allowed(windows: &[CallingWindow], tz: &TimeZone, now: Timestamp) -> Timestamp {
    if windows.is_empty() {
        return now;
    }
    let local: Zoned = now.to_zoned(tz.clone());
    let mut best: Option<Timestamp> = None;
    for day in 0..8i64 {
        let Ok(date) = local.date().checked_add(day.days()) else {
            continue;
        };
        for w in windows {
            if !w.days.contains(&date.weekday()) {
                continue;
            }
            let (Ok(open), Ok(close)) = (
                date.to_datetime(w.start).to_zoned(tz.clone()),
                date.to_datetime(w.end).to_zoned(tz.clone()),
            ) else {
                continue;
            };
            let (open, close) = (open.timestamp(), close.timestamp());
            let candidate = if now >= open && now < close {
                now
            } else if now < open {
                open
            } else {
                continue;
            };
            if best.is_none_or(|b| candidate < b) {
                best = Some(candidate);
            }
        }
        if best.is_some() {
            break;
        }
    }
    best.unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cart_campaign() -> Campaign {
        Campaign {
            name: "cart".into(),
            windows: vec![CallingWindow {
                days: vec![
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                    Weekday::Saturday,
                ],
                start: Time::constant(10, 0, 0, 0),
                end: Time::constant(13, 0, 0, 0),
            }],
            default_tz: "Europe/Moscow".into(),
            require_consent: true,
            busy: RetryRule {
                every: Duration::from_secs(600),
                max_attempts: 3,
            },
            no_answer: RetryRule {
                every: Duration::from_secs(600),
                max_attempts: 5,
            },
            failed: RetryRule {
                every: Duration::from_secs(1800),
                max_attempts: 2,
            },
        }
    }

    fn dialer() -> Dialer {
        Dialer::new(
            vec![cart_campaign(), Campaign::immediate("orders")],
            vec![(
                "main".into(),
                TrunkLimits {
                    max_concurrent: 2,
                    max_cps: 10.0,
                },
            )],
        )
    }

    fn call(id: &str, to: &str, campaign: &str, not_before: &str) -> QueuedCall {
        QueuedCall {
            id: id.into(),
            to: to.into(),
            campaign: campaign.into(),
            trunk: "main".into(),
            tz: None,
            not_before: ts(not_before),
            attempts: 0,
            consent: true,
        }
    }

    #[test]
    fn not_before_is_honoured() {
        let mut d = dialer();
        d.enqueue(call("a", "+15550001", "orders", "2026-11-22T10:01:00Z"));
        assert_eq!(d.poll_dial(ts("2026-11-22T10:00:59Z")), None);
        assert_eq!(d.poll_timeout(), Some(ts("2026-11-22T10:01:00Z")));
        assert!(matches!(
            d.poll_dial(ts("2026-11-22T10:01:00Z")),
            Some(DialAction::Dial(_))
        ));
    }

    #[test]
    fn calling_window_is_in_the_callees_time_zone() {
        let mut d = dialer();
        // 06:00 UTC is 09:00 in Moscow: one hour before the window opens.
        d.enqueue(call("a", "+79161234567", "cart", "2026-11-23T06:00:00Z"));
        assert_eq!(d.poll_dial(ts("2026-11-23T06:00:00Z")), None);
        assert_eq!(d.poll_timeout(), Some(ts("2026-11-23T07:00:00Z")));
        assert!(matches!(
            d.poll_dial(ts("2026-11-23T07:00:00Z")),
            Some(DialAction::Dial(_))
        ));
        // A callee in Vladivostok (UTC+10): 07:00 UTC is 17:00 there → next day 10:00 local.
        let mut c = call("b", "+74232000000", "cart", "2026-11-23T07:00:00Z");
        c.tz = Some("Asia/Vladivostok".into());
        d.enqueue(c);
        assert_eq!(d.poll_dial(ts("2026-11-23T07:00:00Z")), None);
        assert_eq!(d.poll_timeout(), Some(ts("2026-11-24T00:00:00Z")));
    }

    #[test]
    fn windows_skip_sunday_and_follow_dst() {
        let w = cart_campaign().windows;
        // Saturday 2026-11-28 14:00 Moscow → Monday 10:00 Moscow.
        let tz = TimeZone::get("Europe/Moscow").unwrap();
        assert_eq!(
            next_allowed(&w, &tz, ts("2026-11-28T11:00:00Z")),
            ts("2026-11-30T07:00:00Z")
        );
        // Berlin across the end of summer time (2026-10-25): 10:00 local is 08:00Z before
        // and 09:00Z after.
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            next_allowed(&w, &berlin, ts("2026-10-24T05:00:00Z")),
            ts("2026-10-24T08:00:00Z")
        );
        assert_eq!(
            next_allowed(&w, &berlin, ts("2026-10-26T05:00:00Z")),
            ts("2026-10-26T09:00:00Z")
        );
    }

    #[test]
    fn retries_by_disposition_then_gives_up() {
        let mut d = dialer();
        let t = ts("2026-11-23T07:00:00Z"); // 10:00 Moscow, Monday
        d.enqueue(call("a", "+79161234567", "cart", "2026-11-23T07:00:00Z"));
        let mut now = t;
        for attempt in 1..=5 {
            let Some(DialAction::Dial(c)) = d.poll_dial(now) else {
                panic!("attempt {attempt} not dialled at {now}");
            };
            assert_eq!(c.attempts, attempt - 1);
            match d.handle_result(now, "a", Disposition::NoAnswer) {
                Next::RetryAt(at) => {
                    assert!(attempt < 5);
                    assert_eq!(at, add(now, Duration::from_secs(600)));
                    now = at;
                }
                Next::GaveUp { attempts } => {
                    assert_eq!((attempt, attempts), (5, 5));
                }
                Next::Done => panic!(),
            }
        }
        assert_eq!(d.queued(), 0);
        // Rejected (603) is never retried; answered is done.
        d.enqueue(call("b", "+79160000000", "cart", "2026-11-23T07:00:00Z"));
        assert!(matches!(d.poll_dial(t), Some(DialAction::Dial(_))));
        assert_eq!(
            d.handle_result(t, "b", Disposition::Rejected),
            Next::GaveUp { attempts: 1 }
        );
    }

    #[test]
    fn dnc_and_consent_are_checked_at_dial_time() {
        let mut d = dialer();
        let t = ts("2026-11-23T07:00:00Z");
        d.enqueue(call(
            "a",
            "+7 (916) 123-45-67",
            "cart",
            "2026-11-23T07:00:00Z",
        ));
        // Opt-out arrives after queueing: still honoured.
        d.add_dnc("+79161234567");
        assert_eq!(
            d.poll_dial(t),
            Some(DialAction::Refuse(
                call("a", "+7 (916) 123-45-67", "cart", "2026-11-23T07:00:00Z"),
                Refusal::DoNotCall
            ))
        );
        let mut c = call("b", "+79160000000", "cart", "2026-11-23T07:00:00Z");
        c.consent = false;
        d.enqueue(c);
        assert!(matches!(
            d.poll_dial(t),
            Some(DialAction::Refuse(_, Refusal::NoConsent))
        ));
        // A campaign without the consent requirement dials.
        let mut c = call("c", "+15550002", "orders", "2026-11-23T07:00:00Z");
        c.consent = false;
        d.enqueue(c);
        assert!(matches!(d.poll_dial(t), Some(DialAction::Dial(_))));
    }

    #[test]
    fn one_call_per_number_and_trunk_limits() {
        let mut d = dialer();
        let t = ts("2026-11-23T07:00:00Z");
        d.enqueue(call("a", "+15550001", "orders", "2026-11-23T07:00:00Z"));
        d.enqueue(call("b", "+15550001", "orders", "2026-11-23T07:00:00Z"));
        d.enqueue(call("c", "+15550002", "orders", "2026-11-23T07:00:00Z"));
        d.enqueue(call("d", "+15550003", "orders", "2026-11-23T07:00:00Z"));
        let mut dialled = Vec::new();
        while let Some(a) = d.poll_dial(t) {
            if let DialAction::Dial(c) = a {
                dialled.push(c.id);
            }
        }
        // "b" waits for "a"'s number; the trunk allows two at once.
        assert_eq!(dialled, vec!["a", "c"]);
        assert_eq!(d.active(), 2);
        assert_eq!(d.handle_result(t, "a", Disposition::Answered), Next::Done);
        let next = d.poll_dial(t);
        assert!(
            matches!(next, Some(DialAction::Dial(ref c)) if c.id == "d"),
            "{next:?}"
        );
        // "b" comes back 30 s later, once its number is free.
        assert_eq!(d.poll_timeout(), Some(add(t, NUMBER_BUSY_RECHECK)));
    }

    #[test]
    fn calls_per_second_limit() {
        let mut d = Dialer::new(
            vec![Campaign::immediate("o")],
            vec![(
                "main".into(),
                TrunkLimits {
                    max_concurrent: 100,
                    max_cps: 3.0,
                },
            )],
        );
        let t = ts("2026-11-23T07:00:00Z");
        for i in 0..10 {
            d.enqueue(call(
                &format!("c{i}"),
                &format!("+1555000{i}"),
                "o",
                "2026-11-23T07:00:00Z",
            ));
        }
        let mut n = 0;
        while let Some(DialAction::Dial(_)) = d.poll_dial(t) {
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(d.next_slot(t), Some(add(t, Duration::from_secs(1))));
        let mut m = 0;
        while let Some(DialAction::Dial(_)) = d.poll_dial(add(t, Duration::from_secs(1))) {
            m += 1;
        }
        assert_eq!(m, 3);
    }

    #[test]
    fn sip_statuses_map_to_dispositions() {
        assert_eq!(Disposition::from_sip(Some(200)), Disposition::Answered);
        assert_eq!(Disposition::from_sip(Some(486)), Disposition::Busy);
        assert_eq!(Disposition::from_sip(Some(600)), Disposition::Busy);
        assert_eq!(Disposition::from_sip(Some(480)), Disposition::NoAnswer);
        assert_eq!(Disposition::from_sip(None), Disposition::NoAnswer);
        assert_eq!(Disposition::from_sip(Some(603)), Disposition::Rejected);
        assert_eq!(Disposition::from_sip(Some(503)), Disposition::Failed(503));
    }
}
