//! The control API's connection limits on the real binary (issue 14.3): a client that sends
//! nothing, or trickles its headers, is cut off at the header deadline; a keep-alive
//! connection left idle is closed; connections over the ceiling are closed at once and the
//! API serves again as soon as the idle ones are gone. SIP keeps answering throughout.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::crm::{DataDir, TOKEN, free_tcp_port};
use common::*;

/// How long until the server closes `s` (reads until EOF or reset), at most `limit`.
fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn healthz(api: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(api).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    (!out.is_empty()).then_some(out)
}

#[test]
fn idle_and_trickling_connections_are_cut_and_the_api_recovers() {
    let dir = DataDir::new("api-timeouts");
    let config =
        dir.config("api:\n  header_timeout: 1s\n  idle_timeout: 2s\n  max_connections: 8\n");
    let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let api: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ivrflow"));
    cmd.env("IVRFLOW_API_TOKEN", TOKEN);
    let server = Server::start_with(
        cmd,
        sip,
        &[
            "--config",
            &config,
            "--data-dir",
            dir.arg(),
            "--api-listen",
            &api.to_string(),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while healthz(api).is_none() {
        assert!(Instant::now() < deadline, "the API never answered");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Silent: cut at the header deadline.
    let mut silent = TcpStream::connect(api).unwrap();
    let t = closed_after(&mut silent, Duration::from_secs(8)).expect("a silent client is cut");
    assert!(t >= Duration::from_millis(500), "{t:?}");

    // Trickling one header byte every 200 ms: cut too, though bytes keep coming.
    let mut slow = TcpStream::connect(api).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let start = Instant::now();
    let mut cut = None;
    while start.elapsed() < Duration::from_secs(8) {
        if slow.write_all(b"a").is_err() {
            cut = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        slow.set_nonblocking(true).unwrap();
        let mut b = [0u8; 512];
        let r = slow.read(&mut b);
        slow.set_nonblocking(false).unwrap();
        if matches!(r, Ok(0)) || matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
        {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("a trickling client is cut");
    assert!(cut < Duration::from_secs(5), "{cut:?}");

    // A keep-alive connection after its answer: closed when idle (the wait for its next
    // request's headers counts against the header deadline too).
    let mut kept = TcpStream::connect(api).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let t = closed_after(&mut kept, Duration::from_secs(8)).expect("an idle keep-alive is closed");
    assert!(t < Duration::from_secs(3), "{t:?}");

    // The ceiling: 8 idle connections, the 9th is closed at once...
    let mut held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(api).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = TcpStream::connect(api).unwrap();
    let t = closed_after(&mut ninth, Duration::from_secs(1)).expect("over the limit: closed");
    assert!(t < Duration::from_millis(900), "{t:?}");
    // ... SIP is not starved meanwhile ...
    assert_eq!(options_ping(sip, Duration::from_secs(2)), Some(200));
    // ... and once the idle ones are cut, the API serves again.
    for s in &mut held {
        closed_after(s, Duration::from_secs(8)).expect("held connections are cut");
    }
    let ok = healthz(api).expect("the API serves again");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(
        server.log_text().contains("API connection limit reached"),
        "{}",
        server.log_text()
    );
}
