//! Effects that take time: webhooks (stored fields, the timeout), recordings, transfers
//! (their results, a connected transfer's outcome, the allow-list).

use super::*;

const EFFECTS: &str = r##"
version: 1
variables:
  phone: { default: "+100" }
  status: {}
  transcript: {}
start: hook
nodes:
  hook:
    webhook:
      name: lookup
      url: "https://crm.example/${phone}"
      body: { phone: "${phone}", n: 1 }
      timeout: 2s
      store: { status: order.status }
    next: rec
    on: { error: failed }
  rec:
    record: { prompt: [beep], max_length: 10s, final_silence: 2s, transcribe: true, store: transcript }
    next: xfer
    on: { empty: failed }
  xfer:
    transfer: { target: "sip:desk@pbx", announcement: [caller-en], outcome: handed_over }
    next: failed
  failed:
    notify: { event: callback.requested, data: { phone: "${phone}" } }
    next: bye
  bye: { hangup: { outcome: fallback } }
"##;

#[test]
fn webhook_results_are_stored_and_its_timeout_is_enforced() {
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let actions = call.drain();
    let Action::Webhook { id, request } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(request.url.as_deref(), Some("https://crm.example/+100"));
    assert_eq!(request.body, serde_json::json!({ "phone": "+100", "n": 1 }));
    assert_eq!(request.method, "POST");
    assert_eq!(request.timeout, Duration::from_secs(2));
    let id = *id;
    assert_eq!(call.d.poll_timeout(), Some(call.at(2000)));
    let actions = call.input(
        500,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({ "order": { "status": "shipped" } })),
        },
    );
    assert_eq!(call.d.result().variables["status"], "shipped");
    assert_eq!(kinds(&actions), ["play beep"]);

    // Timeout: the error path; the late answer is ignored.
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let (ms, actions) = call.wait_timer();
    assert_eq!(ms, 2000);
    assert_eq!(kinds(&actions), ["notify callback.requested", "hangup"]);
    assert!(
        call.input(
            2500,
            Input::WebhookResult {
                id,
                result: Ok(serde_json::json!({}))
            }
        )
        .is_empty()
    );
    assert_eq!(call.d.result().path, ["hook", "failed", "bye"]);
}

#[test]
fn recordings_and_transfers() {
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let beep = play_id(&call.input(
        100,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({})),
        },
    ));
    let actions = call.input(600, Input::PlaybackDone { id: beep });
    let [
        Action::Record {
            id: rec,
            max_length,
            final_silence,
            transcribe,
        },
    ] = actions[..]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (max_length, final_silence, transcribe),
        (Duration::from_secs(10), Duration::from_secs(2), true)
    );
    let actions = call.input(
        5000,
        Input::RecordingDone {
            id: rec,
            duration: Duration::from_secs(3),
            transcript: Some("call me tomorrow".into()),
            file: Some("rec/1.wav".into()),
        },
    );
    assert_eq!(call.d.result().variables["transcript"], "call me tomorrow");
    let a = &call.d.result().answers["rec"];
    assert_eq!(
        (a.input.as_str(), a.file.as_deref()),
        ("recording", Some("rec/1.wav"))
    );
    let Action::Transfer {
        id: x,
        target,
        mode,
        announcement,
    } = &actions[0]
    else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (target.as_str(), *mode),
        ("sip:desk@pbx", TransferMode::Bridged)
    );
    assert_eq!(announcement[0].name, "caller-en");
    let x = *x;
    // Busy: the fallback.
    let actions = call.input(
        9000,
        Input::TransferResult {
            id: x,
            outcome: TransferOutcome::Busy,
        },
    );
    assert_eq!(kinds(&actions), ["notify callback.requested", "hangup"]);
    assert_eq!(call.d.result().outcome.as_deref(), Some("fallback"));
}

#[test]
fn a_connected_transfer_ends_the_dialogue_with_the_transfer_outcome() {
    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let beep = play_id(&call.input(
        100,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({})),
        },
    ));
    let Action::Record { id: rec, .. } =
        call.input(600, Input::PlaybackDone { id: beep })[0].clone()
    else {
        panic!()
    };
    // An empty recording takes `on.empty`.
    let actions = call.input(
        3000,
        Input::RecordingDone {
            id: rec,
            duration: Duration::ZERO,
            transcript: None,
            file: None,
        },
    );
    assert_eq!(kinds(&actions), ["notify callback.requested", "hangup"]);

    let mut call = Call::new(scenario(EFFECTS), &[]);
    let Action::Webhook { id, .. } = call.drain()[0].clone() else {
        panic!()
    };
    let beep = play_id(&call.input(
        100,
        Input::WebhookResult {
            id,
            result: Ok(serde_json::json!({})),
        },
    ));
    let Action::Record { id: rec, .. } =
        call.input(600, Input::PlaybackDone { id: beep })[0].clone()
    else {
        panic!()
    };
    let Action::Transfer { id: x, .. } = call.input(
        3000,
        Input::RecordingDone {
            id: rec,
            duration: Duration::from_secs(1),
            transcript: Some("hi".into()),
            file: None,
        },
    )[0]
    .clone() else {
        panic!()
    };
    assert_eq!(
        kinds(&call.input(
            5000,
            Input::TransferResult {
                id: x,
                outcome: TransferOutcome::Connected
            }
        )),
        ["hangup"]
    );
    assert_eq!(call.d.result().outcome.as_deref(), Some("handed_over"));
    assert_eq!(call.d.result().hangup_by, Some(HangupBy::Robot));
}

/// Issue 12.2: the transfer target `${operator}` reaches the agent written in the file; a
/// value from outside the file (an API or CRM variable) that the scenario's allow-list
/// does not name is not dialled, and the node's `failed` route runs instead.
#[test]
fn a_transfer_goes_only_where_the_scenario_allows() {
    let transfer_of = |actions: &[Action]| {
        actions.iter().find_map(|a| match a {
            Action::Transfer { target, .. } => Some(target.clone()),
            _ => None,
        })
    };
    let press_3 = |vars: &[(&str, &str)]| {
        let mut call = Call::new(order_confirmation(), vars);
        let q = to_question(&mut call);
        call.input(6000, Input::PlaybackDone { id: q });
        let hold = play(&call.input(7000, Input::Dtmf('3'))).0;
        (call.input(9000, Input::PlaybackDone { id: hold }), call)
    };
    let (actions, _) = press_3(&[]);
    assert_eq!(
        transfer_of(&actions).as_deref(),
        Some("sip:orders@pbx.shop.example")
    );
    for evil in [
        "+447700900123",
        "sip:+447700900123@203.0.113.9",
        "sip:orders@pbx.shop.example.evil.example",
    ] {
        let (actions, call) = press_3(&[("operator", evil)]);
        assert_eq!(transfer_of(&actions), None, "{evil}");
        // `failed` → operator_unavailable: the CRM is asked to call back.
        assert!(
            actions.iter().any(
                |a| matches!(a, Action::Notify { event, .. } if event == "callback.requested")
            ),
            "{evil}: {actions:?}"
        );
        assert!(
            call.d
                .result()
                .path
                .contains(&"operator_unavailable".to_owned())
        );
    }
    // The same scenario with an allow-list takes a CRM-chosen agent at the shop's PBX.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/order-confirmation.yaml");
    let text = std::fs::read_to_string(path).unwrap().replace(
        "\nstart: greet",
        "\nallow:\n  transfer: [\"sip:*@pbx.shop.example\"]\n\nstart: greet",
    );
    let scenario = Arc::new(load_str("order-confirmation.yaml", &text).unwrap());
    let mut call = Call::new(scenario, &[("operator", "sip:anna@pbx.shop.example")]);
    let q = to_question(&mut call);
    call.input(6000, Input::PlaybackDone { id: q });
    let hold = play(&call.input(7000, Input::Dtmf('3'))).0;
    let actions = call.input(9000, Input::PlaybackDone { id: hold });
    assert_eq!(
        transfer_of(&actions).as_deref(),
        Some("sip:anna@pbx.shop.example")
    );
}
