//! Capacity benchmark: `ivrflow serve` driven by SIPp on loopback, side by side with a
//! reference peer measured in the same run.
//!
//! ```text
//! cargo bench --bench capacity -- [--steps 250,500,1000,2000,2500] [--rate 200]
//!     [--measure 10] [--reference sipp] [--peer 127.0.0.1:5090 --peer-user 100 [--peer-pid PID]]
//!     [--setup-rates 250,500,1000,1500] [--skip-ivrflow] [--probes 10]
//!     [--over 3000 --max-calls 2500] [--overload-tick-ms 15] [--srtp-only]
//!     [--perf] [--baseline PATH/TO/ivrflow]
//! ```
//! `--perf` samples the server with `perf record` during each step's window and prints
//! where its CPU per packet goes: the pacing tick, building packets, the send syscall
//! (entry, UDP and IP output), loopback delivery (the receive half the kernel runs in the
//! sender's context), the rest of the kernel, the rest of user space. `--baseline BIN` runs
//! the same steps against another ivrflow binary (the previous main, built side by side)
//! and prints ratios against it.
//! First, SRTP's per-packet cost (protect and unprotect, both SDES suites) is measured
//! in-process and printed beside the plain calls' CPU µs per packet of the steps (SIPp has
//! no SRTP to drive SRTP calls with); `--srtp-only` stops there.
//! For each concurrency step, SIPp (tests/sipp/uac_load.xml) ramps calls up at `--rate`
//! calls/s into the `hold` scenario (benches/scenarios/hold.yaml: prompts back to back until
//! the caller presses 1); once every call is up, a `--measure`-second window records:
//! calls held and failed, the server's CPU (user+sys from /proc) and RSS, CPU µs per RTP
//! packet, and the RTP send-interval deviation (|arrival gap − 20 ms| between consecutive
//! packets of a stream) from this process's receiver, which every call's SDP points at.
//! Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS, as a packet capture
//! takes them), so the receiver thread's own scheduling on a busy box does not count.
//! During the window, probe calls (`--probes`, made by this process, one at a time) time
//! the first prompt packet after the 200 OK and, after an RFC 2833 key press, the first
//! packet of the next prompt (the marker bit of a new talkspurt), both on kernel stamps.
//! `--over N` adds a step of N calls above capacity (with `--max-calls M` passed to
//! ivrflow as `max_calls`): refused calls (503) are counted and the quality of the calls
//! that are up is measured as in any step.
//! After the window each caller presses 1 (RFC 2833) and the CRM webhook says whether the
//! key was recognised. `--setup-rates` runs short calls (INVITE, ACK, BYE) at each rate for
//! 10 s and reports failures. `--reference sipp` runs the same steps against SIPp's own UAS
//! replaying an RTP capture (tests/sipp/uas_reference.xml); `--peer` against any RFC 3261
//! UAS. Ratios are printed against the reference. Everything stays on 127.0.0.1, bounded in
//! count and time.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const PTIME_US: i64 = 20_000;

// ───────────────────────────── arguments ─────────────────────────────

struct Args {
    steps: Vec<usize>,
    rate: usize,
    measure: Duration,
    reference: bool,
    peer: Option<(SocketAddr, String, Option<u32>)>,
    setup_rates: Vec<usize>,
    skip_ivrflow: bool,
    probes: usize,
    over: Option<usize>,
    max_calls: Option<usize>,
    /// `media.overload_tick_ms` for the server (its back-pressure threshold).
    overload_tick_ms: Option<f64>,
    /// Sample the server with `perf` in each window and print the split.
    perf: bool,
    /// Another ivrflow binary to run the same steps against.
    baseline: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        steps: vec![250, 500, 1000, 2000, 2500],
        rate: 200,
        measure: Duration::from_secs(10),
        reference: false,
        peer: None,
        setup_rates: vec![],
        skip_ivrflow: false,
        probes: 10,
        over: None,
        max_calls: None,
        overload_tick_ms: None,
        perf: false,
        baseline: None,
    };
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|s| s != "--bench")
        .collect();
    let list =
        |s: &str| -> Vec<usize> { s.split(',').filter_map(|x| x.trim().parse().ok()).collect() };
    let mut peer_addr = None;
    let mut peer_user = "100".to_owned();
    let mut peer_pid = None;
    let mut i = 0;
    while i < argv.len() {
        let v = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--steps" => a.steps = list(&v),
            "--rate" => a.rate = v.parse().expect("--rate N"),
            "--measure" => a.measure = Duration::from_secs(v.parse().expect("--measure SECONDS")),
            "--reference" => a.reference = v == "sipp",
            "--peer" => peer_addr = Some(v.parse().expect("--peer IP:PORT")),
            "--peer-user" => peer_user = v,
            "--peer-pid" => peer_pid = Some(v.parse().expect("--peer-pid PID")),
            "--setup-rates" => a.setup_rates = list(&v),
            "--probes" => a.probes = v.parse().expect("--probes N"),
            "--over" => a.over = Some(v.parse().expect("--over N")),
            "--max-calls" => a.max_calls = Some(v.parse().expect("--max-calls N")),
            "--overload-tick-ms" => {
                a.overload_tick_ms = Some(v.parse().expect("--overload-tick-ms MS"))
            }
            "--skip-ivrflow" => {
                a.skip_ivrflow = true;
                i += 1;
                continue;
            }
            "--perf" => {
                a.perf = true;
                i += 1;
                continue;
            }
            "--baseline" => a.baseline = Some(PathBuf::from(v)),
            // Only the SRTP per-packet cost (see `srtp_cost`).
            "--srtp-only" => {
                i += 1;
                continue;
            }
            other => {
                panic!("unknown argument {other:?} (see the doc comment of benches/capacity.rs)")
            }
        }
        i += 2;
    }
    a.peer = peer_addr.map(|p| (p, peer_user, peer_pid));
    a
}

// ───────────────────────────── RTP receiver ─────────────────────────────

const SO_TIMESTAMPNS: libc::c_int = 35;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Ask the kernel to stamp every datagram's arrival (CLOCK_REALTIME, nanoseconds).
fn enable_timestamps(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: valid fd, option value is a c_int that outlives the call.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One datagram and its kernel arrival stamp (ns, CLOCK_REALTIME; now when missing).
fn recv_stamped(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, i64)> {
    recv_stamped_from(sock, buf).map(|(n, at, _)| (n, at))
}

/// As [`recv_stamped`], with the sender's UDP port (IPv4).
fn recv_stamped_from(sock: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, i64, u16)> {
    use std::os::fd::AsRawFd;
    // SAFETY: sockaddr_in is plain data.
    let mut from: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; every pointer in it is valid for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_in).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut at = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                let t: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                at = Some(t.tv_sec as i64 * 1_000_000_000 + t.tv_nsec as i64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((
        n as usize,
        at.unwrap_or_else(now_ns),
        u16::from_be(from.sin_port),
    ))
}

#[derive(Default)]
struct StreamState {
    last_seq: u16,
    last_at: Option<i64>,
}

#[derive(Default)]
struct Window {
    packets: u64,
    /// Keyed by source port and SSRC: a peer replaying one capture for every call (the
    /// SIPp reference) repeats the SSRC, but each call sends from its own port.
    streams: HashMap<u64, StreamState>,
    deviations_us: Vec<u32>,
}

struct Receiver {
    port: u16,
    window: Arc<Mutex<Window>>,
    stop: Arc<AtomicBool>,
    total: Arc<AtomicU64>,
}

impl Receiver {
    fn start() -> Receiver {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        let _ = sock.set_recv_buffer_size(16 << 20);
        sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .expect("bind receiver");
        let sock: UdpSocket = sock.into();
        // Polled, not woken per packet: on loopback a receiver that sleeps in recv is
        // woken (and preempts the sender) once per packet, a cost a remote receiver never
        // puts on the server. Arrival times come from the kernel's stamps either way.
        sock.set_nonblocking(true).unwrap();
        {
            use std::os::fd::AsRawFd;
            let size: libc::c_int = 64 << 20;
            // SAFETY: valid fd and option value. SO_RCVBUFFORCE (root) passes rmem_max.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        enable_timestamps(&sock);
        let port = sock.local_addr().unwrap().port();
        let window: Arc<Mutex<Window>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let (w, s, t) = (window.clone(), stop.clone(), total.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, at, src_port)) = recv_stamped_from(&sock, &mut buf) else {
                    thread::sleep(Duration::from_millis(1));
                    continue;
                };
                if n < 12 || buf[0] >> 6 != 2 {
                    continue;
                }
                t.fetch_add(1, Ordering::Relaxed);
                let marker = buf[1] & 0x80 != 0;
                let seq = u16::from_be_bytes([buf[2], buf[3]]);
                let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                let mut win = w.lock().unwrap();
                win.packets += 1;
                let st = win
                    .streams
                    .entry(u64::from(src_port) << 32 | u64::from(ssrc))
                    .or_default();
                let prev = st.last_at.replace(at);
                let consecutive = seq == st.last_seq.wrapping_add(1) && !marker;
                st.last_seq = seq;
                if let (Some(p), true) = (prev, consecutive) {
                    let gap = (at - p) / 1000;
                    let dev = (gap - PTIME_US).unsigned_abs() as u32;
                    win.deviations_us.push(dev);
                }
            }
        });
        Receiver {
            port,
            window,
            stop,
            total,
        }
    }

    fn reset(&self) {
        *self.window.lock().unwrap() = Window::default();
    }

    fn take(&self) -> Window {
        std::mem::take(&mut *self.window.lock().unwrap())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ───────────────────────────── CRM stand-in ─────────────────────────────

/// A minimal HTTP/1.1 server counting `call.completed` outcomes.
struct Crm {
    url: String,
    outcomes: Arc<Mutex<HashMap<String, u64>>>,
}

impl Crm {
    fn start() -> Crm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind CRM");
        let url = format!("http://{}/crm", listener.local_addr().unwrap());
        let outcomes: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let o = outcomes.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let o = o.clone();
                thread::spawn(move || serve_http(stream, o));
            }
        });
        Crm { url, outcomes }
    }

    fn count(&self, outcome: &str) -> u64 {
        self.outcomes
            .lock()
            .unwrap()
            .get(outcome)
            .copied()
            .unwrap_or(0)
    }
}

fn serve_http(stream: std::net::TcpStream, outcomes: Arc<Mutex<HashMap<String, u64>>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if first && line.trim().is_empty() {
                continue;
            }
            first = false;
            if line == "\r\n" || line == "\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            // Outbox payloads may wrap the event; accept both shapes.
            let ev = v.get("data").unwrap_or(&v);
            if v["event"] == "call.completed" || v["type"] == "call.completed" {
                let outcome = ev["outcome"].as_str().unwrap_or("none").to_owned();
                *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
            }
        }
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

// ───────────────────────────── processes ─────────────────────────────

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// user+sys CPU seconds of a process.
fn cpu_seconds(pid: u32, tck: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (utime + stime) / tck
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn options_ok(to: SocketAddr) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(300)));
    let me = sock.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:ping@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKbench{}\r\nMax-Forwards: 70\r\nFrom: <sip:bench@{me}>;tag=b\r\nTo: <sip:ping@{to}>\r\nCall-ID: bench-{}@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        me.port(),
        me.port()
    );
    let _ = sock.send_to(msg.as_bytes(), to);
    let mut buf = [0u8; 2048];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 200"))
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_ivrflow(
    exe: &Path,
    sip: SocketAddr,
    crm: &str,
    scenarios: &Path,
    max_calls: Option<usize>,
    overload_tick_ms: Option<f64>,
) -> Proc {
    let exe = exe.display();
    let dir = scenarios.parent().unwrap_or(scenarios);
    let config = dir.join("bench-config.yaml");
    let mut yaml = max_calls
        .map(|m| format!("max_calls: {m}\n"))
        .unwrap_or_default();
    if let Some(ms) = overload_tick_ms {
        yaml.push_str(&format!("media: {{ overload_tick_ms: {ms} }}\n"));
    }
    std::fs::write(&config, yaml).expect("write bench config");
    let cmd = format!(
        "ulimit -n 20000 2>/dev/null; exec {exe} serve --config {} --data-dir {} --sip-listen {sip} --webhook-url {crm} --scenarios {} --rtp-ports 20000-39999",
        config.display(),
        dir.join("data").display(),
        scenarios.display()
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(repo())
        .env("IVRFLOW_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ivrflow");
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !options_ok(sip) {
        assert!(Instant::now() < deadline, "ivrflow did not come up");
    }
    p
}

fn start_reference(sip: SocketAddr) -> Proc {
    let scen = repo().join("tests/sipp/uas_reference.xml");
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 20000 2>/dev/null; exec sipp -sf {} -i 127.0.0.1 -p {} -mp 16000 -nostdin -bind_local",
            scen.display(),
            sip.port()
        ))
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start SIPp reference UAS");
    thread::sleep(Duration::from_millis(800));
    Proc(child)
}

/// Final SIPp counters from its -trace_stat CSV.
fn sipp_counts(stats: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(stats).unwrap_or_default();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(';').collect();
    let last: Vec<&str> = lines
        .rfind(|l| !l.trim().is_empty())
        .unwrap_or("")
        .split(';')
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| last.get(i))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (col("SuccessfulCall(C)"), col("FailedCall(C)"))
}

#[allow(clippy::too_many_arguments)]
fn run_sipp(
    scenario: &str,
    target: SocketAddr,
    user: &str,
    rtp_port: u16,
    rate: usize,
    limit: usize,
    total: usize,
    hold_ms: u64,
    stats: &Path,
    timeout: Duration,
) -> Child {
    let _ = std::fs::remove_file(stats);
    let cmd = format!(
        "ulimit -n 20000 2>/dev/null; exec timeout --kill-after=5 {} sipp -sf {} -s {user} {target} -i 127.0.0.1 -p 0 -mp 17000 -r {rate} -rp 1000 -l {limit} -m {total} -d {hold_ms} -key rtp_port {rtp_port} -key order_id 1234 -nostdin -timeout {}s -trace_stat -stf {} -fd 1 -max_socket 30000",
        timeout.as_secs() + 10,
        repo().join("tests/sipp").join(scenario).display(),
        timeout.as_secs(),
        stats.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sipp")
}

// ───────────────────────────── probe calls ─────────────────────────────

/// Latencies seen by the probe calls of one window (milliseconds).
#[derive(Debug, Clone, Default)]
struct Probes {
    /// 200 OK → first RTP packet of the first prompt.
    first: Vec<f64>,
    /// Key press (first RFC 2833 packet sent) → first packet of the next prompt.
    key: Vec<f64>,
    attempted: usize,
    refused: usize,
}

fn header<'a>(msg: &'a str, names: &[&str]) -> Option<&'a str> {
    msg.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        names
            .iter()
            .any(|x| n.trim().eq_ignore_ascii_case(x))
            .then(|| v.trim())
    })
}

/// One probe call: INVITE → 200 (stamped) → ACK → first RTP packet (stamped) → after a
/// moment key 1 (RFC 2833) → first packet with the marker bit → BYE either way.
fn probe_call(target: SocketAddr, user: &str, i: usize, out: &mut Probes) {
    out.attempted += 1;
    let (Ok(sip), Ok(rtp)) = (
        UdpSocket::bind("127.0.0.1:0"),
        UdpSocket::bind("127.0.0.1:0"),
    ) else {
        return;
    };
    enable_timestamps(&sip);
    enable_timestamps(&rtp);
    let _ = sip.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = rtp.set_read_timeout(Some(Duration::from_millis(50)));
    let me = sip.local_addr().unwrap();
    let rtp_port = rtp.local_addr().unwrap().port();
    let call_id = format!("probe-{}-{i}-{}@127.0.0.1", std::process::id(), now_ns());
    let sdp = format!(
        "v=0\r\no=probe 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    );
    let from = format!("<sip:probe@{me}>;tag=p{i}");
    let invite = format!(
        "INVITE sip:{user}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{i}x{}\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: <sip:{user}@{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:probe@{me}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        now_ns(),
        sdp.len()
    );
    let _ = sip.send_to(invite.as_bytes(), target);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    let (t200, ok) = loop {
        if Instant::now() > deadline {
            return;
        }
        let Ok((n, at)) = recv_stamped(&sip, &mut buf) else {
            continue;
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let code: u16 = msg
            .strip_prefix("SIP/2.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        if code >= 200 {
            break (at, (code == 200).then_some(msg).ok_or(code));
        }
    };
    let msg = match ok {
        Ok(m) => m,
        Err(code) => {
            if code == 503 {
                out.refused += 1;
            }
            let ack = format!(
                "ACK sip:{user}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{i}a\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: <sip:{user}@{target}>\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = sip.send_to(ack.as_bytes(), target);
            return;
        }
    };
    let to = header(&msg, &["To", "t"]).unwrap_or("").to_owned();
    let body = msg.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    let media_port: Option<u16> = body
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok());
    let ack = format!(
        "ACK sip:{user}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{i}ack\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = sip.send_to(ack.as_bytes(), target);
    // First prompt packet (the socket kept everything since the INVITE, with stamps).
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Ok((n, at)) = recv_stamped(&rtp, &mut buf)
            && n >= 12
        {
            out.first.push((at - t200) as f64 / 1e6);
            break;
        }
    }
    // Listen a while, then press 1.
    let until = Instant::now() + Duration::from_millis(400);
    while Instant::now() < until {
        let _ = recv_stamped(&rtp, &mut buf);
    }
    if let Some(port) = media_port {
        let dest = SocketAddr::from(([127, 0, 0, 1], port));
        let ts: u32 = 12345;
        let t_key = now_ns();
        for (k, (end, dur)) in [
            (false, 160u16),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
            (true, 640),
        ]
        .into_iter()
        .enumerate()
        {
            let mut p = vec![0x80u8, 101 | if k == 0 { 0x80 } else { 0 }];
            p.extend_from_slice(&(1000 + k as u16).to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
            p.extend_from_slice(&[1, if end { 0x8a } else { 0x0a }]);
            p.extend_from_slice(&dur.to_be_bytes());
            let _ = rtp.send_to(&p, dest);
        }
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            if let Ok((n, at)) = recv_stamped(&rtp, &mut buf)
                && n >= 12
                && at > t_key
                && buf[1] & 0x80 != 0
            {
                out.key.push((at - t_key) as f64 / 1e6);
                break;
            }
        }
    }
    // The robot hangs up after its answer; otherwise (a peer that keeps the call) we do.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let Ok((n, _)) = recv_stamped(&sip, &mut buf) else {
            continue;
        };
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        if m.starts_with("BYE ") {
            let keep = ["Via", "From", "To", "Call-ID", "CSeq"]
                .iter()
                .filter_map(|h| header(&m, &[h]).map(|v| format!("{h}: {v}\r\n")))
                .collect::<String>();
            let ok = format!("SIP/2.0 200 OK\r\n{keep}Content-Length: 0\r\n\r\n");
            let _ = sip.send_to(ok.as_bytes(), target);
            return;
        }
    }
    let bye = format!(
        "BYE sip:{user}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe{i}bye\r\nMax-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = sip.send_to(bye.as_bytes(), target);
}

fn run_probes(target: SocketAddr, user: String, max: usize, until: Instant) -> Probes {
    let mut out = Probes::default();
    let mut i = 0;
    while i < max && Instant::now() + Duration::from_secs(3) < until {
        probe_call(target, &user, i, &mut out);
        i += 1;
    }
    out
}

fn median_max(v: &[f64]) -> String {
    if v.is_empty() {
        return "n/a".into();
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    format!("{:.1}/{:.1}", s[s.len() / 2], s[s.len() - 1])
}

// ───────────────────────────── one step ─────────────────────────────

#[derive(Debug, Clone, Default)]
struct Step {
    target: usize,
    held: usize,
    ok: u64,
    failed: u64,
    cpu_pct: f64,
    rss_per_call_kib: f64,
    us_per_packet: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    keys: Option<(u64, usize)>,
    probes: Probes,
    /// Where the CPU went (`--perf`): (bucket, share of samples).
    split: Vec<(&'static str, f64)>,
}

// ───────────────────────────── where the time goes ─────────────────────────────

/// The buckets of `--perf`, in print order.
const BUCKETS: [&str; 6] = [
    "pacing tick",
    "packet build",
    "send syscall",
    "loopback delivery",
    "other kernel",
    "other user",
];

/// Which bucket one sample belongs to, from its call chain (leaf first): loopback
/// delivery (the receive softirq the loopback device runs at once, in the sender's
/// context, up to waking the receiver) wherever it is reached from; else the send syscall
/// (entry, UDP and IP output, the loopback transmit); else ours by what the leaf is doing
/// (building a packet, or the rest of the tick and drive loop); else the rest.
fn bucket(chain: &[&str]) -> &'static str {
    let has = |pats: &[&str]| chain.iter().any(|f| pats.iter().any(|p| f.contains(p)));
    if has(&["net_rx_action", "process_backlog", "__netif_receive_skb"]) {
        return "loopback delivery";
    }
    if has(&["sys_sendto", "__libc_sendto", "sys_sendmsg", "io_uring"]) {
        return "send syscall";
    }
    let leaf_kernel = chain.first().is_some_and(|f| f.starts_with('k'));
    if leaf_kernel {
        return "other kernel";
    }
    if has(&[
        "Playout::poll_packet",
        "protect_rtp",
        "g711",
        "RtpPacketBuilder",
    ]) {
        return "packet build";
    }
    if has(&["ivrflow::"]) {
        return "pacing tick";
    }
    "other user"
}

/// `perf record` on `pid` for `secs`; returns the running recorder and its data file.
fn perf_start(pid: u32, name: &str, n: usize, secs: u64) -> Option<(Child, PathBuf)> {
    let out = std::env::temp_dir().join(format!("ivrflow-bench-perf-{name}-{n}.data"));
    Command::new("perf")
        .args(["record", "-q", "-g", "-F", "1999", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(&out)
        .args(["--", "sleep"])
        .arg(secs.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
        .map(|c| (c, out))
}

/// The samples of a `perf record -g` file by bucket (shares summing to 1).
fn perf_split(data: &Path) -> Vec<(&'static str, f64)> {
    let out = Command::new("perf")
        .arg("script")
        .arg("-i")
        .arg(data)
        .args(["-F", "ip,sym"])
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut by: HashMap<&'static str, f64> = HashMap::new();
    let mut chain: Vec<String> = Vec::new();
    let mut flush = |chain: &mut Vec<String>| {
        if !chain.is_empty() {
            let frames: Vec<&str> = chain.iter().map(String::as_str).collect();
            *by.entry(bucket(&frames)).or_default() += 1.0;
            chain.clear();
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            flush(&mut chain);
            continue;
        }
        // "ffffffff81eb6173 dev_hard_start_xmit": kernel addresses start with ffff; the
        // frame is kept as "k sym" or "u sym".
        let Some((addr, sym)) = line.split_once(' ') else {
            continue;
        };
        let kernel = addr.starts_with("ffff");
        chain.push(format!("{} {}", if kernel { 'k' } else { 'u' }, sym.trim()));
    }
    flush(&mut chain);
    let total: f64 = by.values().sum();
    BUCKETS
        .iter()
        .map(|b| (*b, by.get(b).copied().unwrap_or(0.0) / total.max(1e-9)))
        .collect()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Target<'a> {
    name: &'a str,
    sip: SocketAddr,
    user: &'a str,
    pid: Option<u32>,
    /// The peer ends calls itself after the key (ivrflow) or waits for our BYE.
    robot_hangs_up: bool,
}

fn run_step(
    t: &Target<'_>,
    n: usize,
    args: &Args,
    rx: &Receiver,
    crm: Option<&Crm>,
    idle_rss: u64,
    tck: f64,
) -> Step {
    let rate = args.rate.min(n).max(1);
    let ramp = Duration::from_secs_f64(n as f64 / rate as f64);
    let settle = Duration::from_secs(3);
    let hold = ramp + settle + args.measure + Duration::from_secs(2);
    let stats = std::env::temp_dir().join(format!("ivrflow-bench-{}-{n}.csv", t.name));
    let scenario = if t.robot_hangs_up {
        "uac_load.xml"
    } else {
        "uac_hold_bye.xml"
    };
    let confirmed_before = crm.map(|c| c.count("confirmed")).unwrap_or(0);
    let mut sipp = run_sipp(
        scenario,
        t.sip,
        t.user,
        rx.port,
        rate,
        n,
        n,
        hold.as_millis() as u64,
        &stats,
        hold + ramp + Duration::from_secs(60),
    );
    thread::sleep(ramp + settle);
    rx.reset();
    let perf = match (args.perf, t.pid) {
        (true, Some(pid)) if t.name != "sipp-uas" => {
            perf_start(pid, t.name, n, args.measure.as_secs())
        }
        _ => None,
    };
    let cpu0 = t.pid.map(|p| cpu_seconds(p, tck));
    let w0 = Instant::now();
    let (psip, puser, pmax) = (t.sip, t.user.to_owned(), args.probes);
    let until = w0 + args.measure;
    let probes = thread::spawn(move || run_probes(psip, puser, pmax, until));
    thread::sleep(args.measure);
    let window = rx.take();
    let elapsed = w0.elapsed().as_secs_f64();
    let cpu1 = t.pid.map(|p| cpu_seconds(p, tck));
    let rss = t.pid.map(rss_kib).unwrap_or(0);
    let probes = probes.join().unwrap_or_default();
    let split = match perf {
        Some((mut rec, data)) => {
            let _ = rec.wait();
            perf_split(&data)
        }
        None => Vec::new(),
    };
    let _ = sipp.wait();
    let (ok, failed) = sipp_counts(&stats);
    let mut dev = window.deviations_us;
    dev.sort_unstable();
    let cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => b - a,
        _ => f64::NAN,
    };
    let keys = crm.map(|c| {
        // Give the last webhooks a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        // Probe calls that got an answer to their key were confirmed too.
        let extra = probes.key.len() as u64;
        while c.count("confirmed") - confirmed_before < ok + extra && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
        }
        (
            (c.count("confirmed") - confirmed_before).saturating_sub(extra),
            n,
        )
    });
    Step {
        target: n,
        held: window.streams.len(),
        ok,
        failed,
        cpu_pct: cpu / elapsed * 100.0,
        rss_per_call_kib: (rss.saturating_sub(idle_rss)) as f64 / n as f64,
        us_per_packet: cpu * 1e6 / window.packets.max(1) as f64,
        p50_ms: percentile(&dev, 0.50),
        p99_ms: percentile(&dev, 0.99),
        max_ms: dev.last().map(|v| *v as f64 / 1000.0).unwrap_or(f64::NAN),
        keys,
        probes,
        split,
    }
}

fn print_header(name: &str) {
    println!("\n{name}");
    println!(
        "{:>6} {:>6} {:>6} {:>6} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>12} {:>11} {:>11}",
        "calls",
        "held",
        "ok",
        "failed",
        "cpu%",
        "KiB/call",
        "µs/pkt",
        "p50 ms",
        "p99 ms",
        "max ms",
        "keys",
        "1st pkt ms",
        "key→prompt"
    );
    println!(
        "{:>118}",
        "(probe calls: median/max ms after the 200 OK / after the key)"
    );
}

fn print_step(s: &Step) {
    let keys = s
        .keys
        .map(|(k, n)| format!("{k}/{n}"))
        .unwrap_or_else(|| "n/a".into());
    println!(
        "{:>6} {:>6} {:>6} {:>6} {:>7.1} {:>10.1} {:>8.2} {:>8.3} {:>8.3} {:>8.3} {:>12} {:>11} {:>11}",
        s.target,
        s.held,
        s.ok,
        s.failed,
        s.cpu_pct,
        s.rss_per_call_kib,
        s.us_per_packet,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        keys,
        median_max(&s.probes.first),
        median_max(&s.probes.key)
    );
    if !s.split.is_empty() {
        let parts: Vec<String> = s
            .split
            .iter()
            .map(|(b, share)| {
                format!(
                    "{b} {:.2} µs ({:.0} %)",
                    share * s.us_per_packet,
                    share * 100.0
                )
            })
            .collect();
        println!("       per packet: {}", parts.join(", "));
    }
    if s.probes.refused > 0 || s.probes.first.len() < s.probes.attempted {
        println!(
            "       probes: {} attempted, {} refused (503), {} answered",
            s.probes.attempted,
            s.probes.refused,
            s.probes.first.len()
        );
    }
}

fn setup_rate(t: &Target<'_>, r: usize, rx: &Receiver) -> (u64, u64, f64) {
    let stats = std::env::temp_dir().join(format!("ivrflow-bench-setup-{}-{r}.csv", t.name));
    let total = r * 10;
    let start = Instant::now();
    let mut sipp = run_sipp(
        "uac_short.xml",
        t.sip,
        t.user,
        rx.port,
        r,
        r * 4,
        total,
        0,
        &stats,
        Duration::from_secs(60),
    );
    let _ = sipp.wait();
    let secs = start.elapsed().as_secs_f64();
    let (ok, failed) = sipp_counts(&stats);
    (ok, failed, ok as f64 / secs)
}

/// The per-packet cost SRTP adds (issue 19), measured in-process on one core: protecting a
/// 20 ms G.711 packet (172 bytes) and checking and decrypting it, for both SDES suites,
/// beside building the plain packet. SIPp has no SRTP, so SRTP calls cannot be driven
/// through the load steps; the CPU µs per packet the steps print for plain calls plus this
/// is the cost of an SRTP call's packet. Returns the µs per packet of protect + unprotect.
fn srtp_cost() -> f64 {
    use ivrflow::media::srtp::{MAX_TRAILER, MasterKey, SrtpSession, Suite};
    const N: u32 = 200_000;
    let mut plain = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0xCA, 0xFE, 0xBA, 0xBE];
    plain.extend(std::iter::repeat_n(0xFFu8, 160));
    let mut worst = 0.0f64;
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let (a, b) = (
            MasterKey::from_bytes([7; 30]),
            MasterKey::from_bytes([9; 30]),
        );
        let mut tx = SrtpSession::new(suite, &a, &b).expect("keys");
        let mut rx = SrtpSession::new(suite, &b, &a).expect("keys");
        let mut buf = vec![0u8; plain.len() + MAX_TRAILER];
        // Protect into a reused buffer (what the pacing tick does), keeping the packets
        // outside the timing for the unprotect pass.
        let mut packets: Vec<Vec<u8>> = Vec::with_capacity(N as usize);
        let mut spent = Duration::ZERO;
        for i in 0..N {
            buf[..plain.len()].copy_from_slice(&plain);
            buf[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            let t = Instant::now();
            let n = tx.protect_rtp(&mut buf, plain.len()).expect("protect");
            spent += t.elapsed();
            packets.push(buf[..n].to_vec());
        }
        let protect = spent.as_secs_f64() * 1e6 / f64::from(N);
        let t2 = Instant::now();
        for p in &mut packets {
            rx.unprotect_rtp(p).expect("unprotect");
        }
        let unprotect = t2.elapsed().as_secs_f64() * 1e6 / f64::from(N);
        println!(
            "SRTP {}: protect {protect:.2} µs/packet, unprotect {unprotect:.2} µs/packet (172-byte RTP, one core, {N} packets)",
            suite.name()
        );
        worst = worst.max(protect + unprotect);
    }
    worst
}

/// The steps, the set-up rates and (`extras`: the build under test) the over-capacity
/// step against the ivrflow binary `exe`, on SIP port `port`.
#[allow(clippy::too_many_arguments)]
fn run_ivrflow(
    exe: &Path,
    name: &str,
    port: u16,
    args: &Args,
    rx: &Receiver,
    crm: &Crm,
    tck: f64,
    extras: bool,
) -> Vec<Step> {
    let mut ours = Vec::new();
    let scen_dir = std::env::temp_dir().join(format!(
        "ivrflow-bench-scenarios-{}-{name}",
        std::process::id()
    ));
    let scen_dir = scen_dir.join("scenarios");
    let _ = std::fs::create_dir_all(&scen_dir);
    std::fs::copy(
        repo().join("benches/scenarios/hold.yaml"),
        scen_dir.join("hold.yaml"),
    )
    .expect("copy hold.yaml");
    let sip: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = start_ivrflow(
        exe,
        sip,
        &crm.url,
        &scen_dir,
        args.max_calls,
        args.overload_tick_ms,
    );
    let pid = server.0.id();
    thread::sleep(Duration::from_millis(500));
    let idle = rss_kib(pid);
    println!(
        "{name} ({}) pid {pid}, idle RSS {idle} KiB (prompt cache included)",
        exe.display()
    );
    let t = Target {
        name,
        sip,
        user: "hold",
        pid: Some(pid),
        robot_hangs_up: true,
    };
    print_header(&format!("{name} (release build)"));
    for &n in &args.steps {
        let s = run_step(&t, n, args, rx, Some(crm), idle, tck);
        print_step(&s);
        ours.push(s);
        thread::sleep(Duration::from_secs(3));
    }
    if let Some(n) = args.over.filter(|_| extras) {
        println!(
            "over capacity: {n} calls offered (max_calls {}; pacing back-pressure on); failed = refused",
            args.max_calls
                .map(|m| m.to_string())
                .unwrap_or_else(|| "default".into())
        );
        let s = run_step(&t, n, args, rx, Some(crm), idle, tck);
        print_step(&s);
        thread::sleep(Duration::from_secs(3));
    }
    for &r in &args.setup_rates {
        let (ok, failed, cps) = setup_rate(&t, r, rx);
        println!("set-up rate {r}/s for 10 s: {ok} ok, {failed} failed, {cps:.0} calls/s achieved");
    }
    drop(server);
    ours
}

fn main() {
    let args = parse_args();
    let srtp_us = srtp_cost();
    if std::env::args().any(|a| a == "--srtp-only") {
        return;
    }
    println!(
        "(an SRTP call adds up to {srtp_us:.2} µs of CPU per packet sent and received to the plain cost below)"
    );
    let sipp_ok = Command::new("sh")
        .arg("-c")
        .arg("command -v sipp")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        sipp_ok,
        "sipp is not installed: ./scripts/setup.sh installs it (Debian package sip-tester)"
    );
    let tck = clk_tck();
    let rx = Receiver::start();
    let crm = Crm::start();
    println!(
        "capacity benchmark — SIPp on loopback; RTP receiver on 127.0.0.1:{}; {} cores",
        rx.port,
        thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "command: cargo bench --bench capacity -- {}",
        std::env::args()
            .skip(1)
            .filter(|s| s != "--bench")
            .collect::<Vec<_>>()
            .join(" ")
    );

    let ours = if args.skip_ivrflow {
        Vec::new()
    } else {
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_ivrflow"));
        run_ivrflow(&exe, "ivrflow", 15060, &args, &rx, &crm, tck, true)
    };
    // The previous build, same steps, same run: the change measured against what it
    // changed.
    let before = match &args.baseline {
        Some(exe) => run_ivrflow(exe, "baseline", 15080, &args, &rx, &crm, tck, false),
        None => Vec::new(),
    };
    if !ours.is_empty() && !before.is_empty() {
        println!(
            "\nratios ivrflow / baseline {} (lower is better for cost and deviation)",
            args.baseline
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        for (a, b) in ours.iter().zip(&before) {
            println!(
                "{:>6} calls: cpu {:.2}x, µs/pkt {:.2}x, KiB/call {:.2}x, p99 dev {:.2}x",
                a.target,
                a.cpu_pct / b.cpu_pct,
                a.us_per_packet / b.us_per_packet,
                a.rss_per_call_kib / b.rss_per_call_kib,
                a.p99_ms / b.p99_ms
            );
        }
    }

    let mut theirs = Vec::new();
    let mut reference_name = String::new();
    if args.reference {
        let sip: SocketAddr = "127.0.0.1:15070".parse().unwrap();
        let peer = start_reference(sip);
        let pid = peer.0.id();
        let idle = rss_kib(pid);
        let t = Target {
            name: "sipp-uas",
            sip,
            user: "100",
            pid: Some(pid),
            robot_hangs_up: false,
        };
        reference_name = "SIPp UAS replaying g711a.pcap".into();
        print_header(&format!("reference: {reference_name}"));
        for &n in &args.steps {
            let s = run_step(&t, n, &args, &rx, None, idle, tck);
            print_step(&s);
            theirs.push(s);
            thread::sleep(Duration::from_secs(3));
        }
    } else if let Some((sip, user, pid)) = &args.peer {
        let idle = pid.map(rss_kib).unwrap_or(0);
        let t = Target {
            name: "peer",
            sip: *sip,
            user,
            pid: *pid,
            robot_hangs_up: false,
        };
        reference_name = format!("peer {sip} user {user}");
        print_header(&format!("reference: {reference_name}"));
        for &n in &args.steps {
            let s = run_step(&t, n, &args, &rx, None, idle, tck);
            print_step(&s);
            theirs.push(s);
        }
    }
    if !ours.is_empty() && !theirs.is_empty() {
        println!("\nratios ivrflow / {reference_name} (lower is better for cost and deviation)");
        for (a, b) in ours.iter().zip(&theirs) {
            println!(
                "{:>6} calls: cpu {:.2}x, µs/pkt {:.2}x, KiB/call {:.2}x, p99 dev {:.2}x",
                a.target,
                a.cpu_pct / b.cpu_pct,
                a.us_per_packet / b.us_per_packet,
                a.rss_per_call_kib / b.rss_per_call_kib,
                a.p99_ms / b.p99_ms
            );
        }
    }
    println!(
        "\nreceiver saw {} RTP packets in all",
        rx.total.load(Ordering::Relaxed)
    );
}
