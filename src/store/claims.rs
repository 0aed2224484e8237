//! What both backends share when claiming due calls: routing a call to its trunk, which
//! trunks are full, and choosing, among the candidate rows a backend selected and locked,
//! the calls to claim.
//!
//! The backends do the SQL (selecting candidates with the DNC join and the filters,
//! counting each trunk's load over all nodes, writing the claims); this module is pure, so
//! the two apply exactly the same rules.
//!
//! Not here: calling windows, retry policies (the dialer: they need the time-zone database
//! and the campaign configuration).

use std::collections::{BTreeMap, HashSet};

use super::{CallRecord, Claimed, DEFAULT_CAMPAIGN, TrunkQuota, UnixMs};

/// The window of the calls-per-second limit.
pub(crate) const CPS_WINDOW_MS: i64 = 1_000;

/// The campaign a call counts under.
pub(crate) fn campaign_of(c: &CallRecord) -> &str {
    c.dial.campaign.as_deref().unwrap_or(DEFAULT_CAMPAIGN)
}

/// The trunk a campaign's calls go out through: the one listing it, else the first.
pub(crate) fn route<'a>(trunks: &'a [TrunkQuota], campaign: &str) -> Option<&'a TrunkQuota> {
    trunks
        .iter()
        .find(|t| t.campaigns.iter().any(|c| c == campaign))
        .or_else(|| trunks.first())
}

pub(crate) fn is_limited(t: &TrunkQuota) -> bool {
    t.max_concurrent.is_some() || t.calls_per_second.is_some()
}

/// A trunk's load over all nodes at claim time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Load {
    /// Calls ringing or up, and calls claimed (not yet started) on it.
    pub in_use: u64,
    /// Calls claimed on it within the last [`CPS_WINDOW_MS`].
    pub recent: u64,
}

fn has_room(t: &TrunkQuota, load: Load) -> bool {
    let concurrent = t
        .max_concurrent
        .is_none_or(|max| load.in_use < u64::from(max));
    // As the dialer: a start is allowed while fewer than `cps` started in the last second.
    let rate = t
        .calls_per_second
        .is_none_or(|cps| (load.recent as f64) < cps);
    concurrent && rate
}

/// The SQL filter that keeps full trunks' calls out of the candidates: campaigns routed to
/// a full trunk (`blocked`), and whether the first trunk — the route of every campaign no
/// trunk lists (`mapped`) — is full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub blocked: Vec<String>,
    pub default_blocked: bool,
    pub mapped: Vec<String>,
}

pub(crate) fn filter(trunks: &[TrunkQuota], loads: &BTreeMap<String, Load>) -> Filter {
    let full = |t: &TrunkQuota| loads.get(&t.name).is_some_and(|l| !has_room(t, *l));
    let mut f = Filter {
        default_blocked: trunks.first().is_some_and(full),
        ..Filter::default()
    };
    for t in trunks {
        for c in &t.campaigns {
            // The first trunk listing a campaign is its route (see `route`).
            if f.mapped.contains(c) {
                continue;
            }
            f.mapped.push(c.clone());
            if full(t) {
                f.blocked.push(c.clone());
            }
        }
    }
    f
}

/// A candidate row: a due call, locked by this transaction, with the DNC join's answer.
pub(crate) struct Candidate {
    pub call: CallRecord,
    /// The normalised number (`calls.to_norm`).
    pub number: Option<String>,
    pub dnc: bool,
}

/// Choose the calls to claim, in the candidates' order: at most `limit`; one call per
/// number; DNC'd and consent-less calls flagged and counted against no trunk; the others
/// while their trunk has room (`loads` is updated as calls are taken). `busy` numbers (a
/// call up or claimed elsewhere, or locked by a concurrent claimer) are skipped.
pub(crate) fn choose(
    candidates: Vec<Candidate>,
    trunks: &[TrunkQuota],
    consent_required: &[String],
    loads: &mut BTreeMap<String, Load>,
    busy: &HashSet<String>,
    limit: u32,
    claim_until: UnixMs,
) -> Vec<Claimed> {
    let mut out = Vec::new();
    let mut numbers = HashSet::new();
    for cand in candidates {
        if out.len() >= limit as usize {
            break;
        }
        if let Some(n) = &cand.number
            && (busy.contains(n) || numbers.contains(n))
        {
            continue;
        }
        let campaign = campaign_of(&cand.call);
        let no_consent =
            consent_required.iter().any(|c| c == campaign) && cand.call.dial.consent != Some(true);
        let trunk = if cand.dnc || no_consent {
            None
        } else {
            match route(trunks, campaign) {
                None => None,
                Some(t) if !is_limited(t) => Some(t.name.clone()),
                Some(t) => {
                    let load = loads.entry(t.name.clone()).or_default();
                    if !has_room(t, *load) {
                        continue;
                    }
                    load.in_use += 1;
                    load.recent += 1;
                    Some(t.name.clone())
                }
            }
        };
        if let Some(n) = cand.number {
            numbers.insert(n);
        }
        out.push(Claimed {
            call: cand.call,
            dnc: cand.dnc,
            no_consent,
            trunk,
            claim_until,
        });
    }
    out
}

/// Add one `(state, outcome or reason)` group of a campaign's calls to its summary.
pub(crate) fn add_to_summary(
    s: &mut super::CampaignSummary,
    state: &str,
    key: String,
    due: i64,
    calls: i64,
) {
    let n = calls.max(0) as u64;
    match state {
        "queued" => {
            s.queued += n;
            s.due += due.max(0) as u64;
        }
        "started" | "answered" => s.dialling += n,
        "completed" => *s.completed.entry(key).or_default() += n,
        "failed" => *s.failed.entry(key).or_default() += n,
        "cancelled" => s.cancelled += n,
        _ => {}
    }
}

/// A stable 64-bit key for a PostgreSQL advisory lock (FNV-1a: the same on every node and
/// every build, unlike `std`'s hasher).
pub(crate) fn lock_key(kind: &str, name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CallState, DialOptions, Direction};

    fn call(id: &str, campaign: Option<&str>, consent: Option<bool>) -> CallRecord {
        CallRecord {
            id: id.into(),
            direction: Direction::Outbound,
            state: CallState::Queued,
            scenario: "s".into(),
            to: None,
            from: None,
            variables: Default::default(),
            not_before: None,
            idempotency_key: None,
            request_hash: None,
            sip_call_id: None,
            dial: DialOptions {
                campaign: campaign.map(str::to_owned),
                timezone: None,
                consent,
            },
            dial_attempts: 0,
            node: "n".into(),
            outcome: None,
            failure_reason: None,
            sip_code: None,
            result: None,
            trace: None,
            created_at: 0,
            updated_at: 0,
            started_at: None,
            answered_at: None,
            ended_at: None,
        }
    }

    fn cand(id: &str, campaign: Option<&str>, number: &str, dnc: bool) -> Candidate {
        Candidate {
            call: call(id, campaign, Some(true)),
            number: Some(number.into()),
            dnc,
        }
    }

    fn trunks() -> Vec<TrunkQuota> {
        vec![
            TrunkQuota {
                name: "main".into(),
                max_concurrent: Some(2),
                calls_per_second: None,
                campaigns: vec![],
            },
            TrunkQuota {
                name: "promo".into(),
                max_concurrent: None,
                calls_per_second: Some(1.5),
                campaigns: vec!["promo".into()],
            },
        ]
    }

    #[test]
    fn routes_like_the_node_and_holds_limits() {
        let t = trunks();
        assert_eq!(route(&t, "promo").unwrap().name, "promo");
        assert_eq!(route(&t, "cart").unwrap().name, "main");
        assert_eq!(route(&t, DEFAULT_CAMPAIGN).unwrap().name, "main");
        assert!(route(&[], "cart").is_none());

        let mut loads = BTreeMap::from([(
            "main".to_owned(),
            Load {
                in_use: 1,
                recent: 0,
            },
        )]);
        let got = choose(
            vec![
                cand("a", None, "1", false),
                cand("b", Some("cart"), "1", false), // same number as a: skipped
                cand("c", Some("cart"), "2", true),  // DNC: claimed, no trunk
                cand("d", Some("cart"), "3", false), // main is full after a
                cand("e", Some("promo"), "4", false),
                cand("f", Some("promo"), "5", false),
                cand("g", Some("promo"), "6", false), // 2 in the last second ≥ 1.5
                cand("h", Some("promo"), "busy", false),
            ],
            &t,
            &[],
            &mut loads,
            &HashSet::from(["busy".to_owned()]),
            10,
            99,
        );
        let ids: Vec<_> = got
            .iter()
            .map(|c| (c.call.id.as_str(), c.dnc, c.trunk.as_deref()))
            .collect();
        assert_eq!(
            ids,
            [
                ("a", false, Some("main")),
                ("c", true, None),
                ("e", false, Some("promo")),
                ("f", false, Some("promo")),
            ]
        );
        assert_eq!(loads["main"].in_use, 2);
        let f = filter(&t, &loads);
        assert!(f.default_blocked);
        assert_eq!(f.blocked, ["promo"]);
        assert_eq!(f.mapped, ["promo"]);
    }

    #[test]
    fn consent_and_limit() {
        let mut c = cand("a", Some("cart"), "1", false);
        c.call.dial.consent = None;
        let got = choose(
            vec![
                c,
                cand("b", Some("cart"), "2", false),
                cand("x", None, "3", false),
            ],
            &[],
            &["cart".to_owned()],
            &mut BTreeMap::new(),
            &HashSet::new(),
            2,
            5,
        );
        assert_eq!(got.len(), 2);
        assert!(got[0].no_consent && got[0].trunk.is_none());
        assert!(!got[1].no_consent);
        assert_eq!(got[1].claim_until, 5);
    }

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("trunk", "main"), lock_key("trunk", "main"));
        assert_ne!(lock_key("trunk", "main"), lock_key("number", "main"));
        assert_ne!(lock_key("trunk", "a"), lock_key("trunk", "b"));
    }
}
