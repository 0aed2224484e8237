//! Scenario reload on the real binary (issue 14.5): a scenario edited while a call runs is
//! used by the next call only, the call up finishes on the graph it started on; a broken
//! edit keeps the version in service and is reported (422 with `file:line:col`, and in the
//! log on SIGHUP); a new file is reachable after a reload without a restart. At start a
//! broken scenario that inbound calls can reach stops `serve` with the reason; inbound calls
//! reach scenarios by file name only when allowed, and a reload re-reads the routes.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::crm::{Api, DataDir, TOKEN, free_tcp_port};
use common::uac::{Uac, wait_prompt};
use common::*;

fn desk(outcome: &str) -> String {
    format!(
        r#"version: 1
name: desk
languages: [en]
start: q
nodes:
  q:
    ask:
      prompt: [hello]
      input: [dtmf]
      timeout: 30s
      intents:
        "yes": {{ dtmf: ["1"] }}
    on:
      "yes": done
      noinput: done
      nomatch: done
  done:
    hangup: {{ outcome: {outcome}, play: [goodbye] }}
"#
    )
}

struct Setup {
    dir: DataDir,
    scenarios: PathBuf,
}

impl Setup {
    fn new(tag: &str) -> Setup {
        let dir = DataDir::new(tag);
        let scenarios = dir.path().join("scenarios");
        std::fs::create_dir_all(&scenarios).unwrap();
        Setup { dir, scenarios }
    }

    fn write(&self, name: &str, text: &str) {
        // Write then rename: a reload never reads half a file.
        let tmp = self.scenarios.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.scenarios.join(name)).unwrap();
    }

    fn start(&self, crm: &Crm, extra: &[&str]) -> (Server, Api) {
        let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let data = self.dir.path().join("data");
        let mut args = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "--scenarios",
            self.scenarios.to_str().unwrap(),
            "--webhook-url",
            &crm.url,
            "--api-listen",
        ];
        let api_arg = api.to_string();
        args.push(&api_arg);
        args.extend_from_slice(extra);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
        cmd.env("IVRFLOW_API_TOKEN", TOKEN);
        (Server::start_with(cmd, sip, &args), Api::new(api))
    }
}

/// An answered call to `user` that has started hearing its question.
fn call(server: &Server, user: &str) -> Uac {
    let mut uac = Uac::new(server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite(user, "", &offer);
    let ok = uac
        .final_response(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no answer; log:\n{}", server.log_text()));
    assert_eq!(
        ok.status(),
        Some(200),
        "{ok:?}\nlog:\n{}",
        server.log_text()
    );
    uac.ack(user);
    assert!(
        wait_prompt(&uac.rtp, 1, Duration::from_secs(10)),
        "the question plays"
    );
    uac
}

/// Press 1 and wait for the robot's BYE (answered).
fn answer_and_hang_up(server: &Server, uac: &mut Uac) {
    uac.send_key(1, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no BYE; log:\n{}", server.log_text()));
        if let Some(m) = uac.recv(left)
            && m.method() == Some("BYE")
        {
            uac.ok_to(&m);
            return;
        }
    }
}

fn outcomes(crm: &Crm, n: usize) -> Vec<String> {
    let done = crm.wait_for_event("call.completed", n, Duration::from_secs(10));
    assert_eq!(done.len(), n, "{done:#?}");
    done.iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn sighup(server: &Server) {
    // SAFETY: a plain kill(2) of our own child.
    let r = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(r, 0, "kill -HUP");
}

/// Waits (bounded) until `needle` appears in the log more than `before` times.
fn wait_log(server: &Server, needle: &str, before: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server.log_text().matches(needle).count() > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn an_edit_reaches_the_next_call_and_a_broken_edit_keeps_the_version_in_service() {
    let setup = Setup::new("reload");
    setup.write("desk.yaml", &desk("first_version"));
    let crm = Crm::start();
    let (server, api) = setup.start(&crm, &[]);

    // A call starts on the first version; the file changes under it.
    let mut up = call(&server, "desk");
    setup.write("desk.yaml", &desk("second_version"));
    let r = api.post("/v1/scenarios/reload", "");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["updated"], serde_json::json!(["desk"]), "{}", r.text);
    assert_eq!(r.json["problems"], serde_json::json!([]));

    // The next call gets the new graph; the one up finishes on its own.
    let mut next = call(&server, "desk");
    answer_and_hang_up(&server, &mut next);
    assert_eq!(outcomes(&crm, 1), ["second_version"]);
    answer_and_hang_up(&server, &mut up);
    assert_eq!(outcomes(&crm, 2), ["second_version", "first_version"]);

    // A broken edit: 422 with where, and the version in service stays.
    setup.write("desk.yaml", "version: 1\nname: desk\nstart: q\nnodes:\n  q:\n    hangup: { outcome: x, play: [no-such-prompt] }\n");
    let r = api.post("/v1/scenarios/reload", "");
    assert_eq!(r.status, 422, "{}", r.text);
    let problem = &r.json["problems"][0];
    assert_eq!(problem["scenario"], "desk");
    assert_eq!(problem["kept_previous"], true);
    let error = problem["errors"][0].as_str().unwrap();
    assert!(
        error.contains("desk.yaml:6:") && error.contains("no-such-prompt"),
        "{error}"
    );
    let mut third = call(&server, "desk");
    answer_and_hang_up(&server, &mut third);
    assert_eq!(outcomes(&crm, 3)[2], "second_version");

    // SIGHUP reloads too: a new file is served without a restart; the broken one is logged.
    setup.write(
        "late.yaml",
        &desk("late_arrival").replace("name: desk", "name: late"),
    );
    let before = server.log_text().matches("scenarios reloaded").count();
    sighup(&server);
    assert!(
        wait_log(&server, "scenarios reloaded", before),
        "log:\n{}",
        server.log_text()
    );
    assert!(server.log_text().contains("no-such-prompt"));
    let mut late = call(&server, "late");
    answer_and_hang_up(&server, &mut late);
    assert_eq!(outcomes(&crm, 4)[3], "late_arrival");
    assert!(
        api.metric("ivrflow_scenario_reloads_total{result=\"partial\"}")
            .unwrap_or(0.0)
            >= 1.0
    );
    // The process survived SIGHUP (it used to kill it).
    assert_eq!(options_ping(server.sip, Duration::from_secs(2)), Some(200));
}

#[test]
fn a_broken_inbound_scenario_stops_serve_unless_allowed() {
    let setup = Setup::new("broken-start");
    setup.write("desk.yaml", &desk("ok"));
    setup.write(
        "broken.yaml",
        "version: 1\nname: broken\nstart: nowhere\nnodes:\n  a:\n    hangup: { outcome: x, play: [hello] }\n",
    );
    let data = setup.dir.path().join("data");
    let sip = format!("127.0.0.1:{}", free_udp_port());
    let out = Command::new(env!("CARGO_BIN_EXE_ivrflow"))
        .args(["serve", "--sip-listen", &sip, "--data-dir"])
        .arg(&data)
        .arg("--scenarios")
        .arg(&setup.scenarios)
        .current_dir(repo())
        .env_remove("IVRFLOW_API_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml:"), "{err}");
    assert!(err.contains("--allow-broken-scenarios"), "{err}");

    // Allowed: it starts without the broken one, which answers 404.
    let crm = Crm::start();
    let (server, _api) = setup.start(&crm, &["--allow-broken-scenarios"]);
    let mut uac = Uac::new(server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("broken", "", &offer);
    let r = uac.final_response(Duration::from_secs(5)).expect("answer");
    assert_eq!(r.status(), Some(404));
}

#[test]
fn without_inbound_by_name_only_routed_numbers_are_answered() {
    let setup = Setup::new("routes");
    setup.write("desk.yaml", &desk("routed"));
    setup.write(
        "outbound-only.yaml",
        &desk("x").replace("name: desk", "name: outbound-only"),
    );
    let config = setup
        .dir
        .config("routes:\n  \"100\": desk\ninbound_by_name: false\n");
    let crm = Crm::start();
    let (server, api) = setup.start(&crm, &["--config", &config]);
    for user in ["outbound-only", "desk"] {
        let mut uac = Uac::new(server.sip);
        let offer = uac.offer("127.0.0.1");
        uac.invite(user, "", &offer);
        let r = uac.final_response(Duration::from_secs(5)).expect("answer");
        assert_eq!(r.status(), Some(404), "{user}: {r:?}");
    }
    let mut routed = call(&server, "100");
    answer_and_hang_up(&server, &mut routed);
    assert_eq!(outcomes(&crm, 1), ["routed"]);
    // A reload re-reads the routes: 200 reaches the scenario now; a route to nothing is
    // reported and the rest applies.
    setup
        .dir
        .config("routes:\n  \"200\": desk\n  \"300\": nothing\ninbound_by_name: false\n");
    let r = api.post("/v1/scenarios/reload", "");
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.json["route_errors"][0]
            .as_str()
            .unwrap()
            .contains("`nothing`")
    );
    let mut rerouted = call(&server, "200");
    answer_and_hang_up(&server, &mut rerouted);
    assert_eq!(outcomes(&crm, 2), ["routed", "routed"]);
    // The stateless 404 leaves nothing for the CRM.
    assert!(
        crm.bodies
            .lock()
            .unwrap()
            .iter()
            .all(|b| b["event"] != "call.failed")
    );
}
