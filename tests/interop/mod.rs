//! Helpers of the carrier-interop tests (issue 19): test certificates, an RTP/RTCP sink
//! that timestamps every packet, and peers (socat as a TLS client in front of SIPp).
//! Tools missing fail loudly (`scripts/setup.sh` installs them); waits are bounded.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::require_tool;

/// A scratch directory for one test, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("ivrflow-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create a scratch directory");
        TempDir(d)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Test PKI written into `dir`: a CA, and a server certificate it signed for `localhost`
/// and 127.0.0.1. Returns (ca.pem, cert.pem, key.pem).
pub fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "ivrflow test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    let (ca_p, cert_p, key_p) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_p, ca_cert.pem()).unwrap();
    std::fs::write(&cert_p, cert.pem()).unwrap();
    std::fs::write(&key_p, key.serialize_pem()).unwrap();
    (ca_p, cert_p, key_p)
}

/// A free TCP port on loopback.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral TCP port")
}

/// One packet the sink received.
#[derive(Debug, Clone, Copy)]
pub struct Got {
    pub at: Instant,
    pub len: usize,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub marker: bool,
}

/// Two sockets on an even port and the next one (RTP and RTCP), recording what arrives.
pub struct RtpSink {
    pub port: u16,
    pub rtp: Arc<Mutex<Vec<Got>>>,
    pub rtcp: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl RtpSink {
    pub fn start(limit: Duration) -> RtpSink {
        let (a, b) = (0..200)
            .find_map(|_| {
                let a = UdpSocket::bind("127.0.0.1:0").ok()?;
                let p = a.local_addr().ok()?.port();
                if p % 2 != 0 || p == u16::MAX {
                    return None;
                }
                let b = UdpSocket::bind(("127.0.0.1", p + 1)).ok()?;
                Some((a, b))
            })
            .expect("an even/odd UDP port pair on loopback");
        let port = a.local_addr().unwrap().port();
        let rtp: Arc<Mutex<Vec<Got>>> = Arc::default();
        let rtcp: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (r, c) = (rtp.clone(), rtcp.clone());
        for (sock, is_rtcp) in [(a, false), (b, true)] {
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let (r, c) = (r.clone(), c.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let stop = Instant::now() + limit;
                while Instant::now() < stop {
                    let Ok((n, _)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    let at = Instant::now();
                    if is_rtcp {
                        c.lock().unwrap().push(buf[..n].to_vec());
                    } else if n >= 12 && buf[0] >> 6 == 2 {
                        r.lock().unwrap().push(Got {
                            at,
                            len: n,
                            pt: buf[1] & 0x7f,
                            marker: buf[1] & 0x80 != 0,
                            seq: u16::from_be_bytes([buf[2], buf[3]]),
                            ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
                            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
                        });
                    }
                }
            });
        }
        RtpSink { port, rtp, rtcp }
    }

    pub fn packets(&self) -> Vec<Got> {
        self.rtp.lock().unwrap().clone()
    }
}

/// The gaps between consecutive packets, sorted ascending.
pub fn gaps(p: &[Got]) -> Vec<Duration> {
    let mut g: Vec<Duration> = p.windows(2).map(|w| w[1].at - w[0].at).collect();
    g.sort();
    g
}

/// socat listening on TCP `listen` and relaying each connection over TLS to `target`,
/// verifying the server's certificate against `ca` for `localhost`. OpenSSL's TLS client:
/// a TLS implementation that is not ours. Killed on drop.
pub struct Socat(Child);

impl Socat {
    pub fn start(listen: u16, target: SocketAddr, ca: &Path) -> Socat {
        require_tool("socat", "socat");
        let child = Command::new("socat")
            .arg(format!("TCP-LISTEN:{listen},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!(
                "OPENSSL:{target},cafile={},verify=1,commonname=localhost",
                ca.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(
                Instant::now() < deadline,
                "socat did not listen on {listen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Socat(child)
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
