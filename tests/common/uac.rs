//! A small SIP caller for tests that need what SIPp cannot script easily: a hostile caller.
//! It sends hand-written requests over real UDP on loopback, reads the answers, and sends
//! RTP (G.711 audio, RFC 4733 keys) from a socket of its own — or from any other socket,
//! to play a stranger injecting packets into somebody else's call.
//!
//! Every wait is bounded. Nothing here is ivrflow's code: the messages are written out.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ivrflow::media::Codec;

pub struct Uac {
    pub sip: UdpSocket,
    pub rtp: UdpSocket,
    pub server: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    /// The To tag of our dialog, once a final response came.
    pub to_tag: Option<String>,
    /// Where the robot wants our RTP (from its SDP answer).
    pub robot_rtp: Option<SocketAddr>,
    seq: u16,
    ts: u32,
    cseq: u32,
}

/// One SIP message as received: its first line, its headers, its body.
#[derive(Debug, Clone)]
pub struct Msg {
    pub first: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Msg {
    pub fn status(&self) -> Option<u16> {
        let mut p = self.first.split(' ');
        (p.next()? == "SIP/2.0").then_some(())?;
        p.next()?.parse().ok()
    }

    pub fn method(&self) -> Option<&str> {
        (!self.first.starts_with("SIP/2.0")).then(|| self.first.split(' ').next().unwrap_or(""))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn parse(bytes: &[u8]) -> Option<Msg> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.split("\r\n");
        let first = lines.next()?.to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Some(Msg {
            first,
            headers,
            body: body.to_owned(),
            at: Instant::now(),
        })
    }
}

impl Uac {
    pub fn new(server: SocketAddr) -> Uac {
        Uac::new_at(server, "127.0.0.1")
    }

    /// A caller whose sockets are on `ip` (another loopback address, 127.0.0.0/8).
    pub fn new_at(server: SocketAddr, ip: &str) -> Uac {
        let sip = UdpSocket::bind((ip, 0)).expect("bind the caller's SIP socket");
        let rtp = UdpSocket::bind((ip, 0)).expect("bind the caller's RTP socket");
        let port = sip.local_addr().unwrap().port();
        Uac {
            sip,
            rtp,
            server,
            call_id: format!("uac-{port}-{}@test", std::process::id()),
            from_tag: format!("t{port}"),
            to_tag: None,
            robot_rtp: None,
            seq: 1000,
            ts: 0,
            cseq: 1,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.sip.local_addr().unwrap()
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().unwrap().port()
    }

    /// An SDP offer: PCMU and telephone-event, media at `c` (our RTP socket's port).
    pub fn offer(&self, c: &str) -> String {
        format!(
            "v=0\r\no=uac 1 1 IN IP4 {c}\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
            self.rtp_port()
        )
    }

    /// Send an INVITE for `user` with `extra` header lines (each ending in CRLF).
    pub fn invite(&mut self, user: &str, extra: &str, sdp: &str) {
        let me = self.local();
        let msg = format!(
            "INVITE sip:{user}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{cid}-1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:15551230000@{me}>;tag={tag}\r\nTo: <sip:{user}@{srv}>\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{me}>\r\n{extra}Content-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
            srv = self.server,
            cid = self.call_id,
            tag = self.from_tag,
            len = sdp.len(),
        );
        self.sip.send_to(msg.as_bytes(), self.server).unwrap();
    }

    /// The next SIP message within `wait`.
    pub fn recv(&self, wait: Duration) -> Option<Msg> {
        self.sip
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .ok()?;
        let mut buf = vec![0u8; 65535];
        let (n, _) = self.sip.recv_from(&mut buf).ok()?;
        Msg::parse(&buf[..n])
    }

    /// Wait for the final response to our INVITE (provisionals skipped); remembers the To
    /// tag and the robot's RTP address.
    pub fn final_response(&mut self, wait: Duration) -> Option<Msg> {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let m = self.recv(left)?;
            match m.status() {
                Some(s) if s >= 200 => {
                    self.to_tag = m
                        .header("To")
                        .and_then(|t| t.split(";tag=").nth(1))
                        .map(|t| t.split(';').next().unwrap_or(t).to_owned());
                    self.robot_rtp = sdp_addr(&m.body);
                    return Some(m);
                }
                _ => continue,
            }
        }
        None
    }

    fn dialog_request(&mut self, method: &str, to_user: &str) -> String {
        let me = self.local();
        self.cseq += 1;
        let cseq = if method == "ACK" { 1 } else { self.cseq };
        format!(
            "{method} sip:{to_user}@{srv} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{cid}-{method}{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:15551230000@{me}>;tag={tag}\r\nTo: <sip:{to_user}@{srv}>;tag={tt}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            srv = self.server,
            cid = self.call_id,
            tag = self.from_tag,
            tt = self.to_tag.clone().unwrap_or_default(),
        )
    }

    pub fn ack(&mut self, user: &str) {
        let m = self.dialog_request("ACK", user);
        self.sip.send_to(m.as_bytes(), self.server).unwrap();
    }

    pub fn bye(&mut self, user: &str) {
        let m = self.dialog_request("BYE", user);
        self.sip.send_to(m.as_bytes(), self.server).unwrap();
    }

    /// Answer a request the robot sent us (BYE) with 200.
    pub fn ok_to(&self, req: &Msg) {
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for (k, v) in &req.headers {
                if k.eq_ignore_ascii_case(name) {
                    resp.push_str(&format!("{name}: {v}\r\n"));
                }
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        self.sip.send_to(resp.as_bytes(), self.server).unwrap();
    }

    /// One 20 ms PCMU packet of `pcm` (160 samples) to the robot, from `from` (our own RTP
    /// socket unless another is given).
    pub fn send_audio(&mut self, pcm: &[i16], from: Option<&UdpSocket>) {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&self.ts.to_be_bytes());
        p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
        ivrflow::media::g711::encode(Codec::Pcmu, pcm, &mut p);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        let dest = self.robot_rtp.expect("the robot's RTP address");
        from.unwrap_or(&self.rtp).send_to(&p, dest).unwrap();
    }

    /// A key as RFC 4733 events (PT 101): 3 packets, the last three with the end bit, 20 ms
    /// apart, from `from` (our own RTP socket unless another is given).
    pub fn send_key(&mut self, digit: u8, from: Option<&UdpSocket>) {
        let dest = self.robot_rtp.expect("the robot's RTP address");
        let ts = self.ts;
        for i in 0..6u16 {
            let end = i >= 3;
            let mut p = vec![0x80, if i == 0 { 0x80 | 101 } else { 101 }];
            p.extend_from_slice(&self.seq.to_be_bytes());
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
            let duration = 160 * (i.min(3) + 1);
            p.extend_from_slice(&[digit, if end { 0x80 | 10 } else { 10 }]);
            p.extend_from_slice(&duration.to_be_bytes());
            self.seq = self.seq.wrapping_add(1);
            from.unwrap_or(&self.rtp).send_to(&p, dest).unwrap();
            std::thread::sleep(Duration::from_millis(if end { 2 } else { 20 }));
        }
        self.ts = self.ts.wrapping_add(160 * 4);
    }
}

/// The `c=` address and `m=audio` port of an SDP body.
pub fn sdp_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim()
        .to_owned();
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?
        .to_owned();
    format!("{ip}:{port}").parse().ok()
}

/// Real speech with its silences cut out (the human recordings of the ASR tests), so that
/// any 200 ms of it is voice.
pub fn voice() -> Vec<i16> {
    let dir = super::repo().join("tests/fixtures/speech/human/en");
    let mut out = Vec::new();
    for n in ["1", "2", "3", "4", "5", "6"] {
        let pcm = ivrflow::media::prompts::load_file(&dir.join(format!("{n}.wav"))).unwrap();
        for frame in pcm.chunks(160) {
            if frame.len() == 160 && ivrflow::media::prompts::rms_dbfs(frame) > -30.0 {
                out.extend_from_slice(frame);
            }
        }
    }
    out
}

/// Waits (bounded) until the robot starts its `n`-th prompt: RTP with the marker bit
/// (each prompt sequence begins a talkspurt). Returns false on timeout.
pub fn wait_prompt(sock: &UdpSocket, n: usize, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    let mut seen = 0;
    let mut buf = [0u8; 2048];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok();
        if let Ok(len) = sock.recv(&mut buf)
            && len >= 12
            && buf[1] & 0x80 != 0
        {
            seen += 1;
            if seen == n {
                return true;
            }
        }
    }
    false
}

/// Counts the RTP packets arriving on `sock` (with when) until `stop`.
pub fn count_rtp(sock: &UdpSocket, until: Instant) -> Vec<Instant> {
    let mut at = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok();
        if let Ok(n) = sock.recv(&mut buf)
            && n >= 12
        {
            at.push(Instant::now());
        }
    }
    at
}
