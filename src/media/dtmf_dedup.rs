//! One key press, counted once, whichever routes it arrives by.
//!
//! A carrier may deliver the same press as RFC 4733 telephone-events, as a SIP INFO
//! (`application/dtmf-relay` or `application/dtmf`), as the tone left in the audio (found by
//! [`super::goertzel::InbandDtmf`]), or by two or three of these at once. [`DtmfDedup`]
//! merges the routes into one stream of presses.
//!
//! The rule (sans-IO, time is the caller's `at`):
//!
//! - A report from route *R* of key *k* at *t* is a **copy** when an earlier accepted press
//!   of the same key, at most [`MERGE_WINDOW`] before *t*, has not yet been reported by *R*.
//!   The copy marks *R* on that press and is dropped.
//! - Otherwise it is a **new press**. In particular a route never duplicates itself: each
//!   route's own receiver already reports a press once (the RFC 4733 receiver per event,
//!   the in-band detector per tone, SIP per transaction), so a second report of `1` on the
//!   same route is the caller pressing `1` again ("11" typed quickly), however soon.
//! - When several presses could take the copy, the oldest one that route has not yet
//!   reported takes it, so "11" sent twice over by RFC 4733 and later by INFO pairs up as
//!   (1st, 1st), (2nd, 2nd).
//!
//! This covers RFC 4733 with the tone also left in the audio (the in-band report, about
//! 40–60 ms after the event's first packet, is a copy) and INFO that trails the media path
//! by a few hundred milliseconds. The window is generous (1 s) because one carrier does not
//! switch routes between two presses of the same key: the only cost of the window is that
//! the *same* key pressed again within it **and** reported by a *different* route only would
//! be merged, which real carriers do not produce.
//!
//! ```text
//!   report(k, R, t) ──► oldest recent press p of k with t − p.at ≤ 1 s and R ∉ p.routes?
//!                         yes: p.routes += R, drop (copy)
//!                         no:  push press {k, t, {R}}, emit k
//! ```
//!
//! Fixed-size memory (the last [`RECENT`] presses), no allocation. Not here: detecting keys
//! (the receivers do that) or what a key means (the dialogue).

use std::time::{Duration, Instant};

/// How a key reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DtmfSource {
    /// RFC 4733 (RFC 2833) telephone-event in the RTP stream.
    Rfc4733,
    /// A SIP INFO request (`application/dtmf-relay`, `application/dtmf`).
    Info,
    /// The tone itself in the caller's audio (Goertzel detector).
    Inband,
    /// Anything else (a simulated caller, a test, the API).
    Other,
}

impl DtmfSource {
    fn bit(self) -> u8 {
        match self {
            DtmfSource::Rfc4733 => 1,
            DtmfSource::Info => 2,
            DtmfSource::Inband => 4,
            DtmfSource::Other => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DtmfSource::Rfc4733 => "rfc4733",
            DtmfSource::Info => "info",
            DtmfSource::Inband => "inband",
            DtmfSource::Other => "other",
        }
    }
}

/// Two reports of the same key by different routes this close together are one press.
pub const MERGE_WINDOW: Duration = Duration::from_millis(1000);
/// Presses remembered for matching.
const RECENT: usize = 8;

#[derive(Clone, Copy, Debug)]
struct Press {
    digit: char,
    at: Instant,
    routes: u8,
}

/// Merges key reports from several routes; see the module docs.
#[derive(Debug, Default)]
pub struct DtmfDedup {
    recent: [Option<Press>; RECENT],
    /// Next slot to overwrite (ring).
    next: usize,
}

impl DtmfDedup {
    pub fn new() -> DtmfDedup {
        DtmfDedup::default()
    }

    /// A report of `digit` by `source` at `at`. Returns `true` when it is a new press (to
    /// be passed on), `false` when it is another route's copy of a press already counted.
    pub fn accept(&mut self, at: Instant, digit: char, source: DtmfSource) -> bool {
        let digit = digit.to_ascii_uppercase();
        let bit = source.bit();
        let mut best: Option<usize> = None;
        for (i, slot) in self.recent.iter().enumerate() {
            let Some(p) = slot else { continue };
            // A report may come slightly "before" the press it copies (the in-band detector
            // dates a tone at its onset): the window applies both ways.
            let apart = if at >= p.at { at - p.at } else { p.at - at };
            if p.digit != digit || p.routes & bit != 0 || apart > MERGE_WINDOW {
                continue;
            }
            if best.is_none_or(|b| self.recent[b].is_some_and(|q| p.at < q.at)) {
                best = Some(i);
            }
        }
        if let Some(i) = best
            && let Some(p) = self.recent[i].as_mut()
        {
            p.routes |= bit;
            return false;
        }
        self.recent[self.next] = Some(Press {
            digit,
            at,
            routes: bit,
        });
        self.next = (self.next + 1) % RECENT;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DtmfSource::*;

    fn run(t0: Instant, reports: &[(u64, char, DtmfSource)]) -> String {
        let mut d = DtmfDedup::new();
        reports
            .iter()
            .filter(|(ms, k, s)| d.accept(t0 + Duration::from_millis(*ms), *k, *s))
            .map(|(_, k, _)| *k)
            .collect()
    }

    #[test]
    fn rfc4733_and_info_count_once() {
        let t0 = Instant::now();
        assert_eq!(run(t0, &[(0, '5', Rfc4733), (180, '5', Info)]), "5");
        // INFO first, RTP after it.
        assert_eq!(run(t0, &[(0, '5', Info), (40, '5', Rfc4733)]), "5");
    }

    #[test]
    fn rfc4733_and_the_tone_left_in_the_audio_count_once() {
        let t0 = Instant::now();
        assert_eq!(run(t0, &[(0, '#', Rfc4733), (50, '#', Inband)]), "#");
        // All three routes.
        assert_eq!(
            run(
                t0,
                &[(0, '7', Rfc4733), (45, '7', Inband), (300, '7', Info)]
            ),
            "7"
        );
        // The in-band detector dates the tone at its onset, a little before the event.
        assert_eq!(
            run(t0 + Duration::from_millis(30), &[(0, '1', Inband)]),
            "1"
        );
        let mut d = DtmfDedup::new();
        assert!(d.accept(t0 + Duration::from_millis(30), '1', Rfc4733));
        assert!(!d.accept(t0 + Duration::from_millis(10), '1', Inband));
    }

    #[test]
    fn single_routes_count_every_press() {
        let t0 = Instant::now();
        assert_eq!(
            run(t0, &[(0, '1', Info), (400, '2', Info), (900, '2', Info)]),
            "122"
        );
        assert_eq!(
            run(
                t0,
                &[(0, '4', Inband), (200, '4', Inband), (450, '0', Inband)]
            ),
            "440"
        );
    }

    #[test]
    fn quick_repeats_on_two_routes_pair_up() {
        let t0 = Instant::now();
        // "11" 120 ms apart, RFC 4733 and in-band, interleaved.
        assert_eq!(
            run(
                t0,
                &[
                    (0, '1', Rfc4733),
                    (45, '1', Inband),
                    (120, '1', Rfc4733),
                    (165, '1', Inband)
                ]
            ),
            "11"
        );
        // "11" by RFC 4733, the INFOs trailing both presses.
        assert_eq!(
            run(
                t0,
                &[
                    (0, '1', Rfc4733),
                    (110, '1', Rfc4733),
                    (400, '1', Info),
                    (520, '1', Info)
                ]
            ),
            "11"
        );
        // Three routes, three presses of 1, each 150 ms apart.
        let mut reports = Vec::new();
        for i in 0..3u64 {
            reports.push((i * 150, '1', Rfc4733));
            reports.push((i * 150 + 50, '1', Inband));
            reports.push((i * 150 + 300, '1', Info));
        }
        reports.sort_by_key(|r| r.0);
        assert_eq!(run(t0, &reports), "111");
    }

    #[test]
    fn a_late_copy_beyond_the_window_is_a_new_press() {
        let t0 = Instant::now();
        assert_eq!(run(t0, &[(0, '3', Rfc4733), (1500, '3', Info)]), "33");
        // Different keys never merge.
        assert_eq!(run(t0, &[(0, '3', Rfc4733), (20, '6', Info)]), "36");
        // Lower-case A–D from INFO are the same keys.
        assert_eq!(run(t0, &[(0, 'A', Rfc4733), (20, 'a', Info)]), "A");
    }
}
