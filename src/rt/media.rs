//! RTP sockets kept out of the async reactor.
//!
//! Profiling `ivrflow serve` at 1,000 calls (perf, issue 7) showed the per-packet cost was
//! not ours but the reactor's: every RTP socket was a tokio `UdpSocket`, registered for
//! both readable and writable readiness, so each `send_to` freed an skb whose destructor
//! woke the reactor's epoll with an EPOLLOUT edge (`sock_wfree` → `ep_poll_callback`,
//! context switches, `ScheduledIo::wake`), and each socket had a task of its own that
//! woke, allocated a `Vec` and went through an mpsc hop for every received packet.
//!
//! Here instead:
//! - sockets are plain non-blocking `std::net::UdpSocket`s; the pacing tick sends on them
//!   directly (one `sendto` per packet, nothing registered for write readiness);
//! - one receive thread (`ivrflow-rtp-rx`) waits on an epoll set (mio) over every RTP
//!   socket, registered for readable only, edge-triggered; on each wake it drains every
//!   ready socket into one [`RtpBatch`] (a byte arena plus `(call, offset, len)` entries)
//!   and hands the batch to the engine task in one channel message. Batches are recycled,
//!   so receiving allocates nothing per packet in the steady state.
//!
//! - the packet path reads one small map: a call's socket descriptor is kept inline in
//!   [`MediaSockets::fds`] (16 bytes an entry, hashed by a multiply), not behind the
//!   socket's `Arc`. Profiling at 1,000 calls (`cargo bench --bench capacity -- --perf`)
//!   showed the send's own time was almost all two cache misses per packet — the hash
//!   bucket and then the `Arc`'s allocation for the descriptor — because between two ticks
//!   the kernel's send path for every other call evicts them;
//! - each call has two sockets on its port (`SO_REUSEPORT`, [`bind_pair`]): one receives
//!   (in the epoll set; a one-instruction BPF program gives it every datagram of the port)
//!   and one only sends. The same profile showed ~0.5 µs of every send spent waking the
//!   epoll entry on the socket's wait queue when the sent packet is freed (`sock_wfree` →
//!   write space → `ep_poll_callback`, under a lock with interrupts off); a socket nobody
//!   waits on skips that. Symmetric RTP is kept: both share the port.
//!
//! The engine task remains the only owner of call state; this module makes no decisions.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use tokio::sync::mpsc;

use crate::sip::ua::CallHandle;

/// Largest datagram kept (anything longer is truncated, as RTP never is).
const MAX_DATAGRAM: usize = 2048;
/// Batches in flight between the receive thread and the engine before packets are dropped.
const BATCH_QUEUE: usize = 1024;

/// Packets received on the RTP sockets during one wake of the receive thread.
#[derive(Default)]
pub struct RtpBatch {
    data: Vec<u8>,
    packets: Vec<(CallHandle, SocketAddr, u32, u32)>,
}

impl RtpBatch {
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// `(call, source, datagram)` in arrival order (per socket).
    pub fn iter(&self) -> impl Iterator<Item = (CallHandle, SocketAddr, &[u8])> {
        self.packets
            .iter()
            .map(|&(c, src, off, len)| (c, src, &self.data[off as usize..(off + len) as usize]))
    }

    fn clear(&mut self) {
        self.data.clear();
        self.packets.clear();
    }
}

/// Hashes a [`CallHandle`] (a `u64`) with one multiply: the packet path's map needs no
/// protection from chosen keys (handles are ours, never from the wire).
#[derive(Default)]
struct CallHasher(u64);

impl Hasher for CallHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type CallMap<V> = HashMap<CallHandle, V, BuildHasherDefault<CallHasher>>;

/// `addr` as a C socket address for `sendto`.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid `sockaddr_storage`.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_in`.
            unsafe { std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in>(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for `sockaddr_in6`.
            unsafe { std::ptr::write((&raw mut ss).cast::<libc::sockaddr_in6>(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

enum Cmd {
    Open(Token, CallHandle, Arc<UdpSocket>),
    Close(Token),
}

/// Real RTP sockets, one per call, bound on the configured range.
pub struct MediaSockets {
    ip: IpAddr,
    range: (u16, u16),
    /// Where each search for a free port starts: random, so a stranger cannot guess the
    /// next call's port (issue 14.3).
    rng: rand::rngs::StdRng,
    /// Each open call's receiving socket (shared with the receive thread) and its sending
    /// socket, when the port has two (see [`bind_pair`]).
    sockets: CallMap<(Token, Arc<UdpSocket>, Option<UdpSocket>)>,
    /// Each open call's socket descriptor, for the packet path (valid while `sockets`
    /// holds the socket).
    fds: CallMap<RawFd>,
    next_token: usize,
    registry: Registry,
    cmds: std_mpsc::Sender<Cmd>,
    recycle: std_mpsc::Sender<RtpBatch>,
    pub send_errors: u64,
    pub packets_sent: u64,
}

impl MediaSockets {
    /// Start the receive thread; batches of received packets arrive on the returned channel.
    pub fn start(
        ip: IpAddr,
        range: (u16, u16),
    ) -> std::io::Result<(MediaSockets, mpsc::Receiver<RtpBatch>)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let (cmd_tx, cmd_rx) = std_mpsc::channel();
        let (recycle_tx, recycle_rx) = std_mpsc::channel();
        let (tx, rx) = mpsc::channel(BATCH_QUEUE);
        std::thread::Builder::new()
            .name("ivrflow-rtp-rx".to_owned())
            .spawn(move || receive_loop(poll, cmd_rx, recycle_rx, tx))?;
        Ok((
            MediaSockets {
                ip,
                range,
                rng: rand::make_rng::<rand::rngs::StdRng>(),
                sockets: CallMap::default(),
                fds: CallMap::default(),
                next_token: 0,
                registry,
                cmds: cmd_tx,
                recycle: recycle_tx,
                send_errors: 0,
                packets_sent: 0,
            },
            rx,
        ))
    }

    fn bind_next(&mut self) -> std::io::Result<(UdpSocket, Option<UdpSocket>)> {
        use rand::RngExt;
        let (lo, hi) = self.range;
        let start = self.rng.random::<u32>();
        let mut last_err = None;
        for port in rtp_port_candidates(lo, hi, start) {
            match bind_pair(SocketAddr::new(self.ip, port)) {
                Ok(pair) => return Ok(pair),
                // Out of descriptors is not "no free port": say so (an operator raises
                // LimitNOFILE, not the port range).
                Err(e)
                    if e.raw_os_error() == Some(libc::EMFILE)
                        || e.raw_os_error() == Some(libc::ENFILE) =>
                {
                    tracing::error!(error = %e, "out of file descriptors: cannot open an RTP socket (raise LimitNOFILE / ulimit -n)");
                    return Err(e);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!(
                "no free RTP port in {lo}-{hi}{}",
                last_err
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default()
            ),
        ))
    }

    /// Send one packet from `call`'s socket (non-blocking; a full buffer drops it).
    pub fn send(&mut self, call: CallHandle, dest: SocketAddr, packet: &[u8]) {
        let Some(&fd) = self.fds.get(&call) else {
            return;
        };
        let (addr, len) = sockaddr(dest);
        // SAFETY: `fd` is the open socket `sockets` holds for `call` (both maps change
        // together); the buffer and address outlive the call.
        let sent = unsafe {
            libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                (&raw const addr).cast::<libc::sockaddr>(),
                len,
            )
        };
        if sent < 0 {
            self.send_errors += 1;
        } else {
            self.packets_sent += 1;
        }
    }

    /// Give a processed batch back to the receive thread for reuse.
    pub fn recycle(&self, mut batch: RtpBatch) {
        batch.clear();
        let _ = self.recycle.send(batch);
    }
}

impl MediaSockets {
    /// Bind a local RTP port for `call`; returns the port.
    pub fn open(&mut self, call: CallHandle) -> std::io::Result<u16> {
        let (sock, tx) = self.bind_next()?;
        sock.set_nonblocking(true)?;
        let port = sock.local_addr()?.port();
        let sock = Arc::new(sock);
        let send_fd = tx.as_ref().map_or(sock.as_raw_fd(), AsRawFd::as_raw_fd);
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1) % (usize::MAX - 1);
        // The command goes first: the thread reads commands before it handles the events
        // of the same wake, so it knows the token before the socket's first packet.
        let _ = self.cmds.send(Cmd::Open(token, call, sock.clone()));
        self.registry
            .register(&mut SourceFd(&sock.as_raw_fd()), token, Interest::READABLE)?;
        self.fds.insert(call, send_fd);
        self.sockets.insert(call, (token, sock, tx));
        Ok(port)
    }

    pub fn close(&mut self, call: CallHandle) {
        self.fds.remove(&call);
        if let Some((token, sock, _tx)) = self.sockets.remove(&call) {
            let _ = self.registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
            let _ = self.cmds.send(Cmd::Close(token));
        }
    }
}

/// A non-blocking UDP socket with `SO_REUSEPORT`, bound to `addr`.
fn reuseport_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use std::os::fd::FromRawFd;
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2); the descriptor is owned by the `UdpSocket` at once.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nothing else owns.
    let sock = unsafe { UdpSocket::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: a valid socket, option and `c_int` value.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (ss, len) = sockaddr(addr);
    // SAFETY: `ss` holds a socket address of `len` bytes.
    if unsafe { libc::bind(fd, (&raw const ss).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

/// Makes every datagram for the port of `sock`'s `SO_REUSEPORT` group go to the group's
/// first socket (a classic BPF program of one instruction: return 0).
fn steer_to_first(sock: &UdpSocket) -> std::io::Result<()> {
    let mut prog = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let fprog = libc::sock_fprog {
        len: 1,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: a valid socket and a program that outlives the call (the kernel copies it).
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A call's sockets on `addr`: the one that receives, and — where the kernel allows a
/// second socket on the port that gets no datagrams — one that only sends (see the module
/// docs). The port must be free first: binding it alone proves no other socket (of this
/// process or another, with `SO_REUSEPORT` or not) holds it, so the pair never joins
/// somebody else's group.
fn bind_pair(addr: SocketAddr) -> std::io::Result<(UdpSocket, Option<UdpSocket>)> {
    drop(UdpSocket::bind(addr)?);
    // Taken between the probe and now: the caller tries another port.
    let rx = reuseport_socket(addr)?;
    if steer_to_first(&rx).is_err() {
        return Ok((rx, None));
    }
    match reuseport_socket(addr) {
        Ok(tx) => Ok((rx, Some(tx))),
        Err(_) => Ok((rx, None)),
    }
}

fn receive_loop(
    mut poll: Poll,
    cmds: std_mpsc::Receiver<Cmd>,
    recycle: std_mpsc::Receiver<RtpBatch>,
    tx: mpsc::Sender<RtpBatch>,
) {
    let mut events = Events::with_capacity(1024);
    let mut socks: HashMap<Token, (CallHandle, Arc<UdpSocket>)> = HashMap::new();
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut dropped = 0u64;
    loop {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::error!(error = %e, "RTP receive poll failed; RTP input stops");
            return;
        }
        loop {
            match cmds.try_recv() {
                Ok(Cmd::Open(t, call, s)) => {
                    socks.insert(t, (call, s));
                }
                Ok(Cmd::Close(t)) => {
                    socks.remove(&t);
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => return,
            }
        }
        if events.is_empty() {
            continue;
        }
        let mut batch = recycle.try_recv().unwrap_or_default();
        batch.clear();
        for ev in events.iter() {
            let Some((call, sock)) = socks.get(&ev.token()) else {
                continue;
            };
            // Edge-triggered: read until the socket is empty. Errors (ICMP port
            // unreachable surfaces as ECONNREFUSED on Linux) are one-shot: keep reading.
            for _ in 0..4096 {
                match sock.recv_from(&mut buf) {
                    Ok((n, src)) => {
                        let off = batch.data.len() as u32;
                        batch.data.extend_from_slice(&buf[..n]);
                        batch.packets.push((*call, src, off, n as u32));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => tracing::trace!(error = %e, "rtp recv error"),
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len() as u64;
        match tx.try_send(batch) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The engine is behind: drop rather than stall the sockets.
                dropped += n;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "RTP input queue full; packets dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The even ports of `lo..=hi`, each once, starting at a position chosen by `start`.
fn rtp_port_candidates(lo: u16, hi: u16, start: u32) -> impl Iterator<Item = u16> {
    let first = u32::from(lo) + u32::from(lo % 2);
    let hi = u32::from(hi);
    let count = if hi < first { 0 } else { (hi - first) / 2 + 1 };
    let offset = if count == 0 { 0 } else { start % count };
    (0..count).map(move |i| (first + ((offset + i) % count) * 2) as u16)
}

#[cfg(test)]
mod port_tests {
    use super::rtp_port_candidates;

    #[test]
    fn every_even_port_once_from_the_chosen_start() {
        let v: Vec<u16> = rtp_port_candidates(10001, 10010, 3).collect();
        assert_eq!(v, vec![10008, 10010, 10002, 10004, 10006]);
        let mut all: Vec<u16> = rtp_port_candidates(20000, 20100, 12345).collect();
        all.sort();
        assert_eq!(all, (20000..=20100).step_by(2).collect::<Vec<_>>());
        assert_eq!(rtp_port_candidates(5, 4, 0).count(), 0);
        assert_eq!(rtp_port_candidates(u16::MAX, u16::MAX, 0).count(), 0);
        assert_eq!(
            rtp_port_candidates(u16::MAX - 1, u16::MAX, 7).collect::<Vec<_>>(),
            vec![u16::MAX - 1]
        );
    }
}

#[cfg(test)]
mod send_tests {
    use super::*;

    /// The packet path's own `sendto` delivers what it is given, to IPv4 and IPv6 peers,
    /// from the call's port; a closed call sends nothing.
    #[test]
    fn packets_leave_from_the_calls_port_to_v4_and_v6_peers() {
        let (mut m, _rx) =
            MediaSockets::start("127.0.0.1".parse().unwrap(), (40000, 40998)).unwrap();
        let call = CallHandle(7);
        let port = m.open(call).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        m.send(call, peer.local_addr().unwrap(), b"rtp-1");
        let mut buf = [0u8; 64];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"rtp-1");
        assert_eq!(from.port(), port);
        assert_eq!(m.packets_sent, 1);
        m.close(call);
        m.send(call, peer.local_addr().unwrap(), b"rtp-2");
        assert_eq!(m.packets_sent, 1);

        let (mut m6, _rx6) = MediaSockets::start("::1".parse().unwrap(), (40000, 40998)).unwrap();
        let port6 = m6.open(call).unwrap();
        let peer6 = UdpSocket::bind("[::1]:0").unwrap();
        peer6
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        m6.send(call, peer6.local_addr().unwrap(), b"rtp-6");
        let (n, from) = peer6.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"rtp-6");
        assert_eq!(from.port(), port6);
        // A peer of the other family cannot be reached from this socket: counted, not sent.
        m6.send(call, peer.local_addr().unwrap(), b"x");
        assert_eq!(m6.send_errors, 1);
    }
}

#[cfg(test)]
mod pair_tests {
    use super::*;

    /// The receiving socket gets every datagram sent to the port (never the sending one),
    /// replies leave from the same port, and another socket cannot join the port while
    /// the pair holds it.
    #[test]
    fn the_sending_socket_never_receives_and_shares_the_port() {
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let (rx, tx) = bind_pair(addr).unwrap();
        let tx = tx.expect("this kernel allows a sending socket on the port");
        rx.set_nonblocking(false).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let peers: Vec<UdpSocket> = (0..16)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, p) in peers.iter().enumerate() {
            p.send_to(&[i as u8], addr).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        for _ in 0..16 {
            let (n, _) = rx.recv_from(&mut buf).unwrap();
            got.push(buf[..n][0]);
        }
        got.sort_unstable();
        assert_eq!(got, (0..16).collect::<Vec<u8>>());
        assert!(
            tx.recv_from(&mut buf).is_err(),
            "the sending socket received a datagram"
        );
        tx.send_to(b"reply", peers[0].local_addr().unwrap())
            .unwrap();
        peers[0]
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let (_, from) = peers[0].recv_from(&mut buf).unwrap();
        assert_eq!(
            from, addr,
            "symmetric RTP: replies come from the call's port"
        );
        // Nobody else gets in: not a plain socket, nor another SO_REUSEPORT pair.
        assert!(UdpSocket::bind(addr).is_err());
        assert!(bind_pair(addr).is_err());
    }
}
