//! The bundled order confirmation, call by call: confirming and cancelling by key,
//! barge-in, silence and wrong keys escalating to their ends, hang-ups, the prompt
//! language, when the no-input timer starts, and events that come too early or too late.

use super::*;

#[test]
fn key_1_after_the_question_confirms() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    assert!(call.input(6000, Input::PlaybackDone { id: q }).is_empty());
    let (bye, prompts) = play(&call.input(7000, Input::Dtmf('1')));
    assert_eq!(prompts, ["auth-thankyou", "goodbye"]);
    assert!(!call.d.is_finished());
    assert_eq!(
        call.input(9000, Input::PlaybackDone { id: bye }),
        [Action::Hangup]
    );
    assert!(call.d.is_finished());
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("confirmed"));
    assert_eq!(
        r.answers["confirm"],
        Answer {
            input: "dtmf".into(),
            value: "1".into(),
            reason: None,
            intent: Some("confirm".into()),
            confidence: None,
            file: None,
        }
    );
    assert_eq!(r.path, ["greet", "confirm", "followup", "confirmed"]);
    assert_eq!(r.hangup_by, Some(HangupBy::Robot));
    assert_eq!(r.variables["order_id"], "1234");
    assert_eq!(call.d.poll_timeout(), None);
}

#[test]
fn key_during_the_question_barges_in() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    let actions = call.input(4000, Input::Dtmf('1'));
    assert_eq!(actions[0], Action::StopPlayback);
    let (bye, prompts) = play(&actions[1..]);
    assert_eq!(prompts, ["auth-thankyou", "goodbye"]);
    // The engine confirms the stop of the old play: nothing happens.
    assert!(
        call.input(4020, Input::PlaybackStopped { id: q })
            .is_empty()
    );
    assert_eq!(
        call.input(6000, Input::PlaybackDone { id: bye }),
        [Action::Hangup]
    );
    assert_eq!(call.d.result().outcome.as_deref(), Some("confirmed"));
    assert_eq!(call.d.result().answers["confirm"].value, "1");
}

#[test]
fn key_2_cancels() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (bye, prompts) = play(&call.input(6500, Input::Dtmf('2')));
    assert_eq!(prompts, ["cancelled", "goodbye"]);
    assert_eq!(
        call.input(8000, Input::PlaybackDone { id: bye }),
        [Action::Hangup]
    );
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("cancelled"));
    assert_eq!(r.answers["confirm"].intent.as_deref(), Some("cancel"));
    assert_eq!(r.path, ["greet", "confirm", "cancelled"]);
}

#[test]
fn silence_reprompts_then_ends_with_no_input() {
    let mut call = Call::new(order_confirmation(), &[]);
    let mut plays = Vec::new();
    let (greet, prompts) = play(&call.drain());
    plays.push(prompts);
    let (mut id, prompts) = play(&call.input(3000, Input::PlaybackDone { id: greet }));
    plays.push(prompts);
    let mut now = 3000;
    loop {
        // Each prompt takes 2.5 s; then the caller stays silent.
        now += 2500;
        let actions = call.input(now, Input::PlaybackDone { id });
        if actions == [Action::Hangup] {
            break;
        }
        assert!(actions.is_empty(), "{actions:?}");
        let (fired_at, actions) = call.wait_timer();
        assert_eq!(
            fired_at,
            now + 5000,
            "no-input timer counts from PlaybackDone"
        );
        now = fired_at;
        let (next, prompts) = play(&actions);
        plays.push(prompts);
        id = next;
    }
    assert_eq!(
        plays,
        [
            names(&[&GREETING]),
            names(&[&QUESTION]),
            names(&[&["im-sorry"], &QUESTION]),
            names(&[&["im-sorry", "please-try-again"], &QUESTION]),
            names(&[&["goodbye"]]),
        ]
    );
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("no_input"));
    assert_eq!(r.path, ["greet", "confirm", "no_input"]);
    // Asked three times, never answered: the answer records it.
    let a = &r.answers["confirm"];
    assert_eq!(
        (a.input.as_str(), a.reason.as_deref()),
        ("dtmf+speech", Some("noinput"))
    );
    assert_eq!(r.hangup_by, Some(HangupBy::Robot));
    assert!(call.d.is_finished());
}

#[test]
fn invalid_key_reprompts_then_ends() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (first, prompts) = play(&call.input(7000, Input::Dtmf('9')));
    assert_eq!(
        prompts,
        names(&[&["pm-invalid-option", "please-try-again"], &QUESTION])
    );
    // The only nomatch reprompt is reused for the second event.
    call.input(9000, Input::PlaybackDone { id: first });
    let (_, prompts) = play(&call.input(9500, Input::Dtmf('9')));
    assert_eq!(
        prompts,
        names(&[&["pm-invalid-option", "please-try-again"], &QUESTION])
    );
    // A barge-in with an invalid key counts too: third no-match → on.nomatch.
    let actions = call.input(10000, Input::Dtmf('7'));
    assert_eq!(actions[0], Action::StopPlayback);
    let (_, prompts) = play(&actions[1..]);
    assert_eq!(prompts, ["goodbye"]);
    assert_eq!(call.d.result().outcome.as_deref(), Some("no_input"));
    assert_eq!(
        call.d.result().answers["confirm"].reason.as_deref(),
        Some("nomatch")
    );
}

#[test]
fn noinput_and_nomatch_count_separately() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (id, _) = play(&call.input(6500, Input::Dtmf('9'))); // nomatch 1
    call.input(8000, Input::PlaybackDone { id });
    let (_, actions) = call.wait_timer(); // noinput 1
    let (id, prompts) = play(&actions);
    assert_eq!(prompts, names(&[&["im-sorry"], &QUESTION]));
    call.input(20000, Input::PlaybackDone { id });
    let (id, prompts) = play(&call.input(20500, Input::Dtmf('8'))); // nomatch 2
    assert_eq!(prompts[0], "pm-invalid-option");
    call.input(22000, Input::PlaybackDone { id });
    let (_, actions) = call.wait_timer(); // noinput 2
    let (id, prompts) = play(&actions);
    assert_eq!(prompts[..2], ["im-sorry", "please-try-again"]);
    call.input(30000, Input::PlaybackDone { id });
    let (_, prompts) = play(&call.input(30100, Input::Dtmf('1')));
    assert_eq!(prompts, ["auth-thankyou", "goodbye"]);
}

#[test]
fn caller_hangup_mid_call() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    assert!(call.input(4000, Input::Hangup).is_empty());
    assert!(call.d.is_finished());
    let r = call.d.result();
    assert_eq!(r.hangup_by, Some(HangupBy::Caller));
    assert_eq!(r.outcome.as_deref(), Some("caller_hangup"));
    assert_eq!(call.d.poll_timeout(), None);
    // Late inputs change nothing.
    assert!(
        call.input(4100, Input::PlaybackStopped { id: q })
            .is_empty()
    );
    assert!(call.input(4200, Input::Dtmf('1')).is_empty());
    assert!(call.d.result().answers.is_empty());
    let json = serde_json::to_value(call.d.result()).unwrap();
    assert_eq!(json["hangup_by"], "caller");
    assert_eq!(json["outcome"], "caller_hangup");
}

#[test]
fn caller_hangup_during_goodbye_keeps_the_outcome() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let (bye, _) = play(&call.input(6100, Input::Dtmf('1')));
    assert!(call.input(6500, Input::Hangup).is_empty());
    assert!(call.input(8000, Input::PlaybackDone { id: bye }).is_empty());
    let r = call.d.result();
    assert_eq!(r.outcome.as_deref(), Some("confirmed"));
    assert_eq!(r.hangup_by, Some(HangupBy::Caller));
}

#[test]
fn language_selects_the_prompt_set() {
    let mut call = Call::new(
        order_confirmation(),
        &[("language", "ru"), ("order_id", "77")],
    );
    let actions = call.drain();
    let Action::Play { prompts, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert!(prompts.iter().all(|p| p.lang == "ru"), "{prompts:?}");
    assert_eq!(prompts.last().unwrap().name, "digits/7");
    assert_eq!(prompts.len(), 6);
    assert_eq!(call.d.language(), "ru");

    // An unsupported language falls back to the scenario's default.
    let mut call = Call::new(order_confirmation(), &[("language", "de")]);
    let actions = call.drain();
    let Action::Play { prompts, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert!(prompts.iter().all(|p| p.lang == "en"));
    assert_eq!(call.d.result().variables["language"], "de");
}

#[test]
fn no_input_timer_starts_when_the_prompt_finished_playing() {
    let mut call = Call::new(order_confirmation(), &[]);
    let q = to_question(&mut call); // Play requested at 3 s
    // No timer while the prompt plays, however long it takes.
    assert_eq!(call.d.poll_timeout(), None);
    assert!(call.timeout(9000).is_empty());
    call.input(10_000, Input::PlaybackDone { id: q });
    assert_eq!(call.d.poll_timeout(), Some(call.at(15_000)));
    assert!(call.timeout(14_900).is_empty(), "4.9 s after PlaybackDone");
    let (_, prompts) = play(&call.timeout(15_000));
    assert_eq!(prompts[0], "im-sorry");
}

#[test]
fn spurious_and_stale_events_are_no_ops() {
    let mut call = Call::new(order_confirmation(), &[]);
    let greet = play(&call.drain()).0;
    assert!(call.timeout(100).is_empty());
    assert!(
        call.input(200, Input::PlaybackDone { id: greet + 7 })
            .is_empty()
    );
    assert!(call.input(400, Input::Dtmf('x')).is_empty());
    let q = play(&call.input(500, Input::PlaybackDone { id: greet })).0;
    assert!(
        call.input(600, Input::PlaybackDone { id: greet })
            .is_empty()
    );
    call.input(700, Input::PlaybackDone { id: q });
    assert!(call.timeout(701).is_empty());
    assert_eq!(call.d.result().path, ["greet", "confirm"]);
    assert_eq!(call.d.current_node(), Some("confirm"));
}

#[test]
fn input_before_start_is_ignored() {
    let mut d = Dialogue::new(order_confirmation(), BTreeMap::new());
    let t0 = Instant::now();
    d.handle_input(t0, Input::Dtmf('1'));
    d.handle_timeout(t0);
    assert_eq!(d.poll_action(), None);
    assert!(!d.is_finished());
    d.start(t0);
    assert!(matches!(d.poll_action(), Some(Action::Play { id: 1, .. })));
    d.start(t0);
    assert_eq!(d.poll_action(), None);
}

#[test]
fn a_key_during_the_greeting_is_typed_ahead_into_the_question() {
    let mut call = Call::new(order_confirmation(), &[]);
    let greet = play(&call.drain()).0;
    // The greeting leads into `confirm` (barge-in allowed): the key stops it and is kept.
    assert_eq!(call.input(300, Input::Dtmf('1')), [Action::StopPlayback]);
    assert!(call.input(320, Input::Dtmf('x')).is_empty());
    let after = call.input(400, Input::PlaybackStopped { id: greet });
    // `confirm` takes the key at once: its question is not played; the answer leads on.
    assert_eq!(call.d.result().path[..3], ["greet", "confirm", "followup"]);
    let answer = &call.d.result().answers["confirm"];
    assert_eq!(
        (answer.input.as_str(), answer.value.as_str()),
        ("dtmf", "1")
    );
    let plays: Vec<Vec<String>> = after
        .iter()
        .filter_map(|a| match a {
            Action::Play { prompts, .. } => Some(prompts.iter().map(|p| p.name.clone()).collect()),
            _ => None,
        })
        .collect();
    assert!(
        !plays
            .iter()
            .any(|p| p.contains(&"shop/to-change-order".to_owned())),
        "{plays:?}"
    );
}

#[test]
fn keys_during_a_play_that_leads_to_no_question_are_ignored() {
    let mut call = Call::new(order_confirmation(), &[]);
    let greet = play(&call.drain()).0;
    call.input(100, Input::PlaybackDone { id: greet });
    call.input(200, Input::Dtmf('0')); // operator: "please hold", then a transfer
    assert_eq!(call.d.current_node(), Some("hold_for_operator"));
    assert!(call.input(300, Input::Dtmf('1')).is_empty());
    assert_eq!(call.d.current_node(), Some("hold_for_operator"));
}
