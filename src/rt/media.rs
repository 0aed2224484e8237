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
//! The engine task remains the only owner of call state; this module makes no decisions.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
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
    sockets: HashMap<CallHandle, (Token, Arc<UdpSocket>)>,
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
                sockets: HashMap::new(),
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

    fn bind_next(&mut self) -> std::io::Result<UdpSocket> {
        use rand::RngExt;
        let (lo, hi) = self.range;
        let start = self.rng.random::<u32>();
        let mut last_err = None;
        for port in rtp_port_candidates(lo, hi, start) {
            match UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                Ok(s) => return Ok(s),
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
        if let Some((_, sock)) = self.sockets.get(&call) {
            if sock.send_to(packet, dest).is_err() {
                self.send_errors += 1;
            } else {
                self.packets_sent += 1;
            }
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
        let sock = self.bind_next()?;
        sock.set_nonblocking(true)?;
        let port = sock.local_addr()?.port();
        let sock = Arc::new(sock);
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1) % (usize::MAX - 1);
        // The command goes first: the thread reads commands before it handles the events
        // of the same wake, so it knows the token before the socket's first packet.
        let _ = self.cmds.send(Cmd::Open(token, call, sock.clone()));
        self.registry
            .register(&mut SourceFd(&sock.as_raw_fd()), token, Interest::READABLE)?;
        self.sockets.insert(call, (token, sock));
        Ok(port)
    }

    pub fn close(&mut self, call: CallHandle) {
        if let Some((token, sock)) = self.sockets.remove(&call) {
            let _ = self.registry.deregister(&mut SourceFd(&sock.as_raw_fd()));
            let _ = self.cmds.send(Cmd::Close(token));
        }
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
