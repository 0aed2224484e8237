//! Simulated calls through all bundled scenarios: their caller scripts pass and cover every
//! node and edge, and the behaviours the scripts cannot time precisely — a protected promo
//! code, speech barge-in, the language switching mid-call — hold on the virtual clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ivrflow::call::TraceEvent;
use ivrflow::media::prompts::PromptCache;
use ivrflow::scenario::{self, Scenario};
use ivrflow::sim::coverage::Coverage;
use ivrflow::sim::script::{check, load_script, script_path_for};
use ivrflow::sim::{CallerStep, SimOptions, SimReport, run_call};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prompts() -> Arc<PromptCache> {
    Arc::new(PromptCache::load_dir(&root().join("audio")).unwrap_or_else(|e| panic!("{e}")))
}

fn load(name: &str) -> Arc<Scenario> {
    let path = root().join(format!("scenarios/{name}.yaml"));
    Arc::new(scenario::load_file(&path).unwrap_or_else(|e| panic!("{e}")))
}

fn call(name: &str, vars: &[(&str, &str)], script: &[CallerStep]) -> SimReport {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = run_call(load(name), vars, prompts(), script, &SimOptions::default());
    assert!(!r.timed_out, "the call must end by itself");
    r
}

#[test]
fn every_caller_script_passes_with_full_coverage() {
    let prompts = prompts();
    for name in [
        "order-confirmation",
        "cart-reminder",
        "delivery-survey",
        "inbound-menu",
        "back-in-stock",
    ] {
        let scenario_path = root().join(format!("scenarios/{name}.yaml"));
        let script =
            load_script(&script_path_for(&scenario_path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(script.scenario, scenario_path);
        let sc = load(name);
        let mut coverage = Coverage::default();
        for c in &script.calls {
            let opts = SimOptions {
                effects: c.effects.clone(),
                ..SimOptions::default()
            };
            let r = run_call(
                Arc::clone(&sc),
                c.variables.clone(),
                Arc::clone(&prompts),
                &c.steps,
                &opts,
            );
            let failures = check(&c.expect, &r);
            assert!(failures.is_empty(), "{name}: {}: {failures:#?}", c.name);
            coverage.add(&r);
        }
        let (nodes, edges) = (coverage.nodes(&sc), coverage.edges(&sc));
        assert_eq!(
            nodes.0,
            nodes.1,
            "{name}: {:?}",
            coverage.uncovered_nodes(&sc)
        );
        assert_eq!(
            edges.0,
            edges.1,
            "{name}: {:?}",
            coverage.uncovered_edges(&sc)
        );
    }
}

#[test]
fn the_same_call_gives_the_same_record() {
    let a = call(
        "delivery-survey",
        &[],
        &[CallerStep::say("yes"), CallerStep::key("2")],
    );
    let b = call(
        "delivery-survey",
        &[],
        &[CallerStep::say("yes"), CallerStep::key("2")],
    );
    assert_eq!(a.record, b.record);
    assert_eq!(a.timeline, b.timeline);
}

fn play_windows(r: &SimReport, prompt: &str) -> Vec<(u64, u64)> {
    // (start, end) of the plays that contain `prompt`.
    let t = &r.record.trace;
    t.iter()
        .filter_map(|e| match e {
            TraceEvent::Play {
                at_ms,
                id,
                prompts,
                duration_ms,
            } if prompts.iter().any(|p| p == prompt) => {
                let end = t
                    .iter()
                    .find_map(|f| match f {
                        TraceEvent::PlayFinished { at_ms, id: i } if i == id => Some(*at_ms),
                        TraceEvent::PlayStopped { at_ms, id: i, .. } if i == id => Some(*at_ms),
                        _ => None,
                    })
                    .unwrap_or(at_ms + duration_ms);
                Some((*at_ms, end))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_promo_code_cannot_be_cut_off() {
    // Find when the code is read out, then press 1 in the middle of it.
    let probe = call(
        "cart-reminder",
        &[],
        &[CallerStep::key("2"), CallerStep::key("1")],
    );
    let (start, _) = play_windows(&probe, "en/shop/promo-code-is")[0];
    // The code follows "your personal promo code is" (about 1.5 s).
    let during_code = Duration::from_millis(start + 2000);
    let r = call(
        "cart-reminder",
        &[],
        &[
            CallerStep::key("2"),
            CallerStep::KeyAt {
                digit: '1',
                at: during_code,
            },
            CallerStep::key("1"),
        ],
    );
    // The key at the code was ignored: the read-out played to the end, the next key counted.
    let promo = play_windows(&r, "en/shop/promo-code-is");
    assert_eq!(promo.len(), 1);
    assert!(
        !r.record
            .trace
            .iter()
            .any(|e| matches!(e, TraceEvent::PlayStopped { .. })),
        "{:#?}",
        r.record.trace
    );
    assert_eq!(r.record.outcome.as_deref(), Some("promo_given"));
    let ignored = r
        .timeline
        .iter()
        .any(|l| l.text.contains("ignored: key 1 during a protected prompt"));
    assert!(ignored, "{}", ivrflow::sim::format_timeline(&r.timeline));
    // "shop/repeat-or-ok" at the end may be interrupted: a key there cuts it.
    let (rs, re) = play_windows(&probe, "en/shop/repeat-or-ok")[0];
    assert!(re > rs);
}

#[test]
fn speech_interrupts_a_question_that_allows_it() {
    let r = call(
        "order-confirmation",
        &[],
        &[CallerStep::SayAt {
            text: "yes".into(),
            confidence: 0.9,
            at: Duration::from_secs(8),
        }],
    );
    assert_eq!(r.record.outcome.as_deref(), Some("confirmed"));
    let cut = r
        .record
        .trace
        .iter()
        .find_map(|e| match e {
            TraceEvent::PlayStopped { at_ms, .. } => Some(*at_ms),
            _ => None,
        })
        .expect("the question was cut");
    assert_eq!(cut, 8000, "cut when the caller started talking");
    assert_eq!(r.record.answers["confirm"].input, "speech");
}

#[test]
fn the_language_chosen_in_the_menu_is_used_from_then_on() {
    let r = call(
        "inbound-menu",
        &[],
        &[CallerStep::key("3"), CallerStep::key("3")],
    );
    let plays = r.plays();
    assert_eq!(plays[0], ["en/shop/menu-language"], "the menu itself");
    assert!(
        plays[1..].iter().flatten().all(|p| p.starts_with("uk/")),
        "{plays:?}"
    );
    assert_eq!(r.record.variables["language"], "uk");
}

#[test]
fn the_simulator_does_not_speak_to_a_robot_that_is_not_listening() {
    // Order confirmation's greeting is a `play` node: words said during it are lost.
    let r = call(
        "order-confirmation",
        &[],
        &[
            CallerStep::SayAt {
                text: "yes".into(),
                confidence: 1.0,
                at: Duration::from_secs(1),
            },
            CallerStep::key("2"),
        ],
    );
    assert_eq!(r.record.outcome.as_deref(), Some("cancelled"));
    assert!(
        r.timeline
            .iter()
            .any(|l| l.text.contains("the robot is not listening")),
        "{}",
        ivrflow::sim::format_timeline(&r.timeline)
    );
}

#[test]
fn scripts_are_found_next_to_their_scenario() {
    assert_eq!(
        script_path_for(Path::new("scenarios/x.yaml")),
        Path::new("scenarios/x.test.yaml")
    );
}

/// The built-in parties, both ways: the SMS and the opt-out go to the customer, who is the
/// caller of an inbound call and the callee of an outbound one.
#[test]
fn texts_and_opt_outs_go_to_the_customer_in_both_directions() {
    let sent = |r: &SimReport, event: &str, field: &str| -> String {
        r.effects
            .iter()
            .find_map(|e| match e {
                ivrflow::sim::EffectLog::Notify {
                    event: ev, data, ..
                } if ev == event => data[field].as_str().map(str::to_string),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {event}"))
    };
    let outbound = call(
        "back-in-stock",
        &[("direction", "outbound"), ("dialled", "+79161234567")],
        &[CallerStep::key("1")],
    );
    let v = &outbound.record.variables;
    assert_eq!(v["direction"], "outbound");
    assert_eq!(v["dialled"], "+79161234567");
    assert_eq!(v["customer"], "+79161234567");
    assert_eq!(v["caller"], ivrflow::sim::SIM_OWN_NUMBER);
    assert_eq!(outbound.record.direction, "outbound");
    assert_eq!(sent(&outbound, "sms.requested", "to"), "+79161234567");

    let inbound = call(
        "back-in-stock",
        &[("direction", "inbound"), ("caller", "+380441234567")],
        &[CallerStep::key("9")],
    );
    let v = &inbound.record.variables;
    assert_eq!(v["direction"], "inbound");
    assert_eq!(v["caller"], "+380441234567");
    assert_eq!(v["customer"], "+380441234567");
    assert_eq!(
        v["dialled"], "back-in-stock",
        "the scenario's name, as a Request-URI"
    );
    assert_eq!(sent(&inbound, "dnc.requested", "phone"), "+380441234567");
}

/// Answering-machine detection runs on calls we place, never on calls we answer.
#[test]
fn only_outbound_calls_listen_for_an_answering_machine() {
    let machine = CallerStep::Answer(ivrflow::sim::Answerer::Machine {
        greeting: Duration::from_secs(6),
    });
    let out = call("cart-reminder", &[], std::slice::from_ref(&machine));
    assert_eq!(
        out.record.variables["direction"], "outbound",
        "amd: defaults to outbound"
    );
    assert_eq!(out.record.outcome.as_deref(), Some("message_left"));
    let inbound = call(
        "cart-reminder",
        &[("direction", "inbound")],
        &[CallerStep::key("9")],
    );
    assert_eq!(
        inbound.record.path.first().map(String::as_str),
        Some("greet")
    );
    assert!(
        !inbound
            .record
            .trace
            .iter()
            .any(|e| matches!(e, TraceEvent::Amd { .. })),
        "no detection on an inbound call"
    );
}

/// The Russian and Ukrainian runs of the caller scripts speak with human voices wherever
/// the voice sets have the word: across all of them, the only placeholders played besides
/// the shop's own phrases are exactly these (words no set has recorded).
#[test]
fn russian_and_ukrainian_runs_play_human_recordings() {
    let prompts = prompts();
    let mut runs = BTreeMap::<String, usize>::new();
    let mut synthetic = std::collections::BTreeSet::<String>::new();
    let mut human = std::collections::BTreeSet::<String>::new();
    for name in [
        "order-confirmation",
        "cart-reminder",
        "delivery-survey",
        "inbound-menu",
        "back-in-stock",
    ] {
        let scenario_path = root().join(format!("scenarios/{name}.yaml"));
        let script =
            load_script(&script_path_for(&scenario_path)).unwrap_or_else(|e| panic!("{e}"));
        let sc = load(name);
        for c in &script.calls {
            let opts = SimOptions {
                effects: c.effects.clone(),
                ..SimOptions::default()
            };
            let r = run_call(
                Arc::clone(&sc),
                c.variables.clone(),
                Arc::clone(&prompts),
                &c.steps,
                &opts,
            );
            for played in r.plays().into_iter().flatten() {
                let (lang, prompt) = played.split_once('/').unwrap();
                if lang == "en" {
                    continue;
                }
                *runs.entry(format!("{name} {lang}")).or_default() += 1;
                let own = ["shop/", "products/", "groups/", "names/"]
                    .iter()
                    .any(|p| prompt.starts_with(p));
                if prompts.is_synthetic(lang, prompt) {
                    if !own {
                        synthetic.insert(played.clone());
                    }
                } else {
                    human.insert(played.clone());
                }
            }
        }
    }
    // Every scenario is run in both languages.
    for name in [
        "order-confirmation",
        "cart-reminder",
        "delivery-survey",
        "inbound-menu",
        "back-in-stock",
    ] {
        for lang in ["ru", "uk"] {
            assert!(
                runs.contains_key(&format!("{name} {lang}")),
                "{name} has no {lang} run"
            );
        }
    }
    assert_eq!(
        synthetic.into_iter().collect::<Vec<_>>(),
        [
            "ru/ordinal/3",     // «третьего»: no set has genitive ordinals
            "uk/digits/1f",     // «одна»: the Ukrainian set has only «одне»
            "uk/money/uah-one", // «гривня»: no set has the hryvnia
            "uk/ordinal/5",     // «п'ятого»
            "uk/time/hour-few", // «години»: the set has «годин» only
        ],
        "placeholders played in the ru/uk runs"
    );
    // And what the new sets brought is heard: case forms, hundreds, months, currencies.
    for p in [
        "ru/digits/400",
        "ru/money/rub-many",
        "ru/money/rub-cents-many",
        "ru/date/month-11",
        "ru/time/hour-few",
        "ru/time/minute-many",
        "uk/hello",
        "uk/if-correct-press",
        "uk/digits/30",
        "uk/money/usd-many",
        "uk/date/month-12",
        "uk/time/minute-many",
        "uk/pm-invalid-option",
    ] {
        assert!(
            human.contains(p),
            "{p} not heard as a human recording: {human:?}"
        );
    }
}
