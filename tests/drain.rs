//! Graceful drain (issue 14.4), against the real process: SIGTERM during a call lets the call
//! reach its outcome with the robot's BYE, while a new INVITE gets 503 and OPTIONS 503
//! (a load balancer moves away); then the process exits 0 by itself. A second SIGTERM
//! ends the calls at once (`call.failed`, reason `shutdown`).
//!
//! Needs the speech model (the bundled scenarios take speech): `./scripts/setup.sh`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::uac::{Uac, wait_prompt};
use common::*;

fn sigterm(server: &Server) {
    // SAFETY: a plain kill(2) of our own child.
    let r = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(r, 0, "kill -TERM");
}

/// Waits (bounded) for the server to exit; its exit status.
fn exit_status(server: &mut Server, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = server.child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn start(crm: &Crm) -> Server {
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    Server::start(sip, &["--webhook-url", &crm.url])
}

fn answered(server: &Server) -> Uac {
    let mut uac = Uac::new(server.sip);
    let offer = uac.offer("127.0.0.1");
    uac.invite("order-confirmation", "X-Order-Id: 4711\r\n", &offer);
    let ok = uac
        .final_response(Duration::from_secs(10))
        .expect("answered");
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    uac.ack("order-confirmation");
    uac
}

#[test]
fn sigterm_lets_the_call_finish_refuses_new_ones_and_exits() {
    let crm = Crm::start();
    let mut server = start(&crm);
    let mut uac = answered(&server);
    assert!(
        wait_prompt(&uac.rtp, 2, Duration::from_secs(15)),
        "the question started"
    );
    sigterm(&server);
    std::thread::sleep(Duration::from_millis(300));
    // A new caller is refused; the load balancer's probe is told.
    let mut late = Uac::new(server.sip);
    let offer = late.offer("127.0.0.1");
    late.invite("order-confirmation", "X-Order-Id: 1\r\n", &offer);
    let r = late
        .final_response(Duration::from_secs(5))
        .expect("an answer");
    assert_eq!(r.status(), Some(503), "{r:?}");
    assert!(r.header("Retry-After").is_some());
    late.ack("order-confirmation");
    assert_eq!(options_ping(server.sip, Duration::from_secs(2)), Some(503));
    // The caller in the middle of the question answers; the robot thanks and hangs up.
    uac.send_key(1, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let bye = loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no BYE; log:\n{}", server.log_text()));
        if let Some(m) = uac.recv(left)
            && m.method() == Some("BYE")
        {
            break m;
        }
    };
    uac.ok_to(&bye);
    let st = exit_status(&mut server, Duration::from_secs(15)).unwrap_or_else(|| {
        panic!(
            "still running after the last call; log:\n{}",
            server.log_text()
        )
    });
    assert!(
        st.success(),
        "exit status {st:?}; log:\n{}",
        server.log_text()
    );
    // With the CRM up, what was pending is delivered before the exit.
    let done = crm.wait_for_event("call.completed", 1, Duration::from_secs(2));
    assert_eq!(done.len(), 1, "log:\n{}", server.log_text());
    assert_eq!(done[0]["outcome"], "confirmed", "{:#}", done[0]);
}

#[test]
fn a_second_sigterm_ends_the_calls_at_once() {
    let crm = Crm::start();
    let mut server = start(&crm);
    let uac = answered(&server);
    assert!(wait_prompt(&uac.rtp, 1, Duration::from_secs(15)));
    sigterm(&server);
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&server);
    let deadline = Instant::now() + Duration::from_secs(10);
    let bye = loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| panic!("no BYE; log:\n{}", server.log_text()));
        if let Some(m) = uac.recv(left)
            && m.method() == Some("BYE")
        {
            break m;
        }
    };
    uac.ok_to(&bye);
    let st = exit_status(&mut server, Duration::from_secs(15)).expect("exited");
    assert!(st.success(), "{st:?}");
    let log = server.log_text();
    assert!(
        log.contains("drain deadline: ending the calls still up"),
        "{log}"
    );
}
