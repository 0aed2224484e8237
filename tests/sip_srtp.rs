//! SIP over TLS with SRTP (SDES) from a second real UA (issue 19): Debian's `baresip`
//! calls order-confirmation over TLS with `mediaenc=srtp-mand` (it refuses plain RTP),
//! verifies ivrflow's certificate against a CA made for the test, presses 1 as an RFC 4733
//! event inside SRTP, and the CRM gets `confirmed`. What baresip played out is recorded: the
//! robot's prompts, decrypted by libsrtp, are audible in it.

mod common;
mod interop;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use interop::*;

fn silent_wav(path: &std::path::Path, seconds: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for _ in 0..8000 * seconds {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn baresip_over_tls_with_srtp_confirms() {
    require_tool("baresip", "baresip");
    let dir = TempDir::new("srtp");
    let (ca, cert, key) = pki(&dir.0);
    let crm = Crm::start();
    let port = free_tcp_port();
    let udp: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tls: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
    let server = Server::start(
        udp,
        &[
            "--sip-listen",
            &format!("tls:{tls}"),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--webhook-url",
            &crm.url,
            "--rtp-ports",
            "35000-35999",
        ],
    );

    // baresip: TLS transport, SRTP mandatory, G.711 µ-law, audio from and to files.
    let bs = dir.path("baresip");
    std::fs::create_dir_all(&bs).unwrap();
    let input = bs.join("in.wav");
    silent_wav(&input, 40);
    std::fs::write(
        bs.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\nsip_cafile {}\nnet_interface 127.0.0.1\n\
             audio_source aufile,{inp}\nsnd_path {dump}\n\
             rtcp_mux no\nmodule_path /usr/lib/baresip/modules\nmodule stdio.so\nmodule g711.so\n\
             module aufile.so\nmodule sndfile.so\nmodule srtp.so\nmodule_app account.so\n\
             module_app menu.so\n",
            free_tcp_port(),
            ca.display(),
            dump = bs.display(),
            inp = input.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        bs.join("accounts"),
        "<sip:caller@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU\n",
    )
    .unwrap();
    let mut child = Command::new("timeout")
        .args(["--kill-after=5", "60", "baresip", "-f"])
        .arg(&bs)
        .arg("-e")
        .arg(format!(
            "/dial sip:order-confirmation@127.0.0.1:{};transport=tls",
            tls.port()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baresip");
    // Listen through the greeting (~5 s) into the question, then press 1; the robot
    // thanks and hangs up. Then quit.
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let _ = stdin.write_all(b"1");
    let _ = stdin.flush();
    let events = crm.wait_for_event("call.completed", 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    let _ = stdin.write_all(b"q");
    let _ = stdin.flush();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let bs_log = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    let log = format!(
        "baresip:\n{}\n{}\nserver log:\n{}",
        bs_log
            .lines()
            .filter(|l| !l.contains("audio="))
            .collect::<Vec<_>>()
            .join("\n"),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );

    assert!(
        bs_log.contains("SRTP is Enabled"),
        "baresip did not set up SRTP\n{log}"
    );
    assert!(
        server.log_text().contains("srtp=true"),
        "ivrflow answered without SRTP\n{log}"
    );
    assert_eq!(events.len(), 1, "one call.completed expected\n{log}");
    let ev = &events[0];
    assert_eq!(ev["outcome"], "confirmed", "{ev:#}\n{log}");
    assert_eq!(ev["answers"]["confirm"]["input"], "dtmf", "{ev:#}");
    assert_eq!(ev["answers"]["confirm"]["value"], "1");

    // What baresip decoded (its `sndfile` filter dumps each direction to a WAV file; the
    // decoder's is `dump-…-dec.wav`): the prompts, decrypted by libsrtp. Speech is loud;
    // SRTP garbage or nothing would not be.
    let dec = std::fs::read_dir(&bs)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"));
    let samples: Vec<i16> = dec
        .and_then(|p| hound::WavReader::open(p).ok())
        .map(|r| r.into_samples::<i16>().filter_map(Result::ok).collect())
        .unwrap_or_default();
    let loud = samples.iter().filter(|s| s.unsigned_abs() > 1000).count();
    assert!(
        samples.len() > 8000 * 5 && loud > 8000,
        "{} samples played, {loud} loud\n{log}",
        samples.len()
    );
    drop(server);
}
