//! RFC 4475 torture messages sent over UDP to a running `ivrflow serve`: each gets the
//! verdict `tests/fixtures/torture/INDEX.md` (copied from `../shared/sip-torture/`) gives it,
//! the server never falls over, and it still answers OPTIONS afterwards.
//!
//! Many of the messages name foreign hosts in Via and Contact, so the test re-runs itself
//! inside a network namespace that has only a loopback interface (`ip netns add`, root):
//! no reply can leave the machine whatever the server decides.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const IN_NETNS: &str = "IVRFLOW_TEST_IN_NETNS";

/// What a user agent must answer, per RFC 4475 and the INDEX. An empty list means "no
/// response at all" (responses are never answered; invalid responses are dropped).
/// Where the RFC allows either rejecting or tolerating, both are listed.
/// "Processed normally" requests get what this UA answers any such request: 404 for an
/// INVITE to a number with no scenario, 481 for an INVITE naming a dialog we do not have,
/// 405 for REGISTER and MESSAGE (we are not a registrar), 200 for OPTIONS.
const VERDICTS: &[(&str, &[u16])] = &[
    ("wsinv.dat", &[404, 481]),
    ("intmeth.dat", &[501]),
    ("esc01.dat", &[404, 481]),
    ("escnull.dat", &[405]),
    ("esc02.dat", &[501]),
    ("lwsdisp.dat", &[200]),
    ("longreq.dat", &[404, 481]),
    ("dblreq.dat", &[405]),
    ("semiuri.dat", &[200]),
    ("transports.dat", &[200]),
    ("mpart01.dat", &[405]),
    ("unreason.dat", &[]),
    ("noreason.dat", &[]),
    ("badinv01.dat", &[400]),
    ("clerr.dat", &[400]),
    ("ncl.dat", &[400]),
    ("scalar02.dat", &[400]),
    ("scalarlg.dat", &[]),
    ("quotbal.dat", &[400]),
    ("ltgtruri.dat", &[400]),
    ("lwsruri.dat", &[400]),
    ("lwsstart.dat", &[400, 404, 481]),
    ("trws.dat", &[400, 200]),
    ("escruri.dat", &[400, 404, 481]),
    ("baddate.dat", &[400, 404, 481]),
    ("regbadct.dat", &[400]),
    ("badaspec.dat", &[400]),
    ("extras/baddn.crlf-terminated.dat", &[400]),
    ("badvers.dat", &[505]),
    ("mismatch01.dat", &[400]),
    ("mismatch02.dat", &[501, 400]),
    ("bigcode.dat", &[]),
    ("badbranch.dat", &[200, 400]),
    ("insuf.dat", &[400]),
    ("unkscm.dat", &[416]),
    ("novelsc.dat", &[416]),
    ("unksm2.dat", &[400, 405]),
    ("bext01.dat", &[420]),
    ("invut.dat", &[415]),
    ("regaut01.dat", &[405]),
    ("multi01.dat", &[400]),
    ("mcl01.dat", &[400]),
    ("bcast.dat", &[]),
    ("zeromf.dat", &[200]),
    ("cparam01.dat", &[405]),
    ("cparam02.dat", &[405]),
    ("regescrt.dat", &[405]),
    ("sdp01.dat", &[406, 400]),
    ("inv2543.dat", &[404]),
];

/// Messages that may be unframeable as sent: dropped without a response, or 400.
const DROP_OR_400: &[&str] = &["baddn.dat", "extras/test.dat"];

#[test]
fn rfc4475_torture_messages_get_their_verdicts() {
    if std::env::var_os(IN_NETNS).is_none() {
        rerun_in_private_netns("rfc4475_torture_messages_get_their_verdicts");
        return;
    }
    let sip: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let server = Server::start(sip, &["--rtp-ports", "32000-32999"]);
    let sock = UdpSocket::bind("127.0.0.1:5070").expect("bind test socket");
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let dir = fixture("fixtures/torture");
    let mut failures = Vec::new();
    let mut seen = HashSet::new();

    let cases: Vec<(&str, Vec<u16>, bool)> = VERDICTS
        .iter()
        .map(|(f, v)| (*f, v.to_vec(), false))
        .chain(DROP_OR_400.iter().map(|f| (*f, vec![400], true)))
        .collect();
    assert_eq!(
        VERDICTS.len() + DROP_OR_400.len(),
        51,
        "all 49 messages + 2 extras"
    );
    for (file, allowed, may_drop) in cases {
        let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        sock.send_to(&bytes, sip).expect("send");
        let finals = collect_finals(&sock, Duration::from_millis(250), &mut seen);
        let ok = match finals.as_slice() {
            [] => allowed.is_empty() || may_drop,
            [one] => allowed.contains(one),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{file}: got {finals:?}, expected one of {allowed:?}"
            ));
        }
    }
    // Still alive and well.
    assert_eq!(
        options_ping(sip, Duration::from_secs(2)),
        Some(200),
        "server stopped answering OPTIONS; log:\n{}",
        server.log_text()
    );
    assert!(
        failures.is_empty(),
        "verdicts differ from RFC 4475:\n{}\n\nserver log:\n{}",
        failures.join("\n"),
        server.log_text()
    );
}

/// Final (≥ 200) response codes received until `quiet` passes with nothing new.
/// Byte-identical repeats of earlier responses are Timer G retransmissions of a final
/// response to an INVITE that this test never ACKs: they are not new verdicts.
fn collect_finals(sock: &UdpSocket, quiet: Duration, seen: &mut HashSet<Vec<u8>>) -> Vec<u16> {
    let mut finals = Vec::new();
    let mut buf = [0u8; 65535];
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            last = Instant::now();
            if !seen.insert(buf[..n].to_vec()) {
                continue;
            }
            if let Some(code) = status_of(&buf[..n])
                && code >= 200
            {
                finals.push(code);
            }
        }
    }
    finals
}

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Create a namespace with only `lo`, and run this test binary's `test` inside it.
fn rerun_in_private_netns(test: &str) {
    require_tool("ip", "iproute2");
    let name = format!("ivrflow-t{}", std::process::id());
    let st = Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .expect("run ip");
    assert!(
        st.success(),
        "`ip netns add` failed: this test needs root (CI runs as root) to isolate the torture traffic"
    );
    let ns = Netns(name);
    let st = Command::new("ip")
        .args(["-n", &ns.0, "link", "set", "lo", "up"])
        .status()
        .expect("run ip");
    assert!(st.success(), "bring up lo in the namespace");
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.0])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .output()
        .expect("run the test inside the namespace");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "inside the namespace:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the inner run executed the test:\n{text}"
    );
}
