//! Basic RTCP (RFC 3550 §6) for one call's audio stream, sans-IO.
//!
//! What it does: keeps the reception statistics of the caller's stream (RFC 3550 A.1
//! sequence tracking, A.3 loss, A.8 interarrival jitter), notes the caller's sender reports
//! (for LSR/DLSR), and writes compound packets — a sender report (or a receiver report
//! while we have sent nothing) with one report block about the caller and an SDES CNAME,
//! every [`REPORT_INTERVAL`], and a BYE at the end of the call. SRTCP protection is the
//! caller's business (`media::srtp`); so is where the packets go (RTP port + 1, or the RTP
//! port under RFC 5761 multiplexing).
//!
//! What it deliberately does not do: the RFC 3550 §6.3 interval algorithm (one media
//! stream between two parties needs no bandwidth sharing: a fixed ~5 s interval with
//! ±50 % jitter is what SBCs expect), extended reports (RFC 3611), or acting on what the
//! caller reports. Parsing never panics.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Time between reports (randomised by the caller within ±50 %, RFC 3550 §6.3.1).
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// The largest compound packet [`Rtcp::write_report`] or [`Rtcp::write_bye`] writes.
pub const MAX_RTCP: usize = 128;

/// Packet types (RFC 3550 §12.1).
const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;
const BYE: u8 = 203;

/// Whether a datagram on a multiplexed port is RTCP (RFC 5761 §4: second byte 192..=223).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (192..=223).contains(&packet[1])
}

/// What we sent, for the sender info of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// RTP timestamp that corresponds to the report's wall-clock time.
    pub rtp_ts: u32,
    pub packets: u32,
    pub octets: u32,
}

/// Reception statistics of one source (RFC 3550 Appendix A).
#[derive(Debug, Clone, Default)]
struct Source {
    ssrc: u32,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the last packet (timestamp units).
    transit: Option<i64>,
    /// Interarrival jitter ×16 (A.8's integer form).
    jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR from this source, and when it came.
    lsr: Option<(u32, Instant)>,
}

/// One call's RTCP state.
#[derive(Debug)]
pub struct Rtcp {
    ssrc: u32,
    cname: String,
    source: Option<Source>,
    clock_rate: u32,
    /// The instant reception times are measured from (A.8 needs a monotonic clock in
    /// timestamp units).
    epoch: Instant,
    next_report: Instant,
    sent_any: bool,
}

impl Rtcp {
    /// `ssrc`: our stream's; `cname`: our canonical name (`ivrflow@host`, no personal
    /// data); the first report goes out at `first_report`.
    pub fn new(
        ssrc: u32,
        cname: &str,
        clock_rate: u32,
        now: Instant,
        first_report: Instant,
    ) -> Rtcp {
        Rtcp {
            ssrc,
            cname: cname.chars().take(64).collect(),
            source: None,
            clock_rate: clock_rate.max(1),
            epoch: now,
            next_report: first_report,
            sent_any: false,
        }
    }

    /// One RTP packet from the peer was accepted (authenticated, from the right source).
    pub fn handle_rtp(&mut self, now: Instant, ssrc: u32, seq: u16, rtp_ts: u32) {
        let arrival = (now.saturating_duration_since(self.epoch).as_micros() as u64)
            .saturating_mul(u64::from(self.clock_rate))
            / 1_000_000;
        let s = match &mut self.source {
            Some(s) if s.ssrc == ssrc => s,
            _ => {
                // A new (or changed) source: start its statistics afresh (A.1).
                self.source = Some(Source {
                    ssrc,
                    base_seq: u32::from(seq),
                    max_seq: seq,
                    ..Source::default()
                });
                self.source.as_mut().expect("just set")
            }
        };
        s.received = s.received.wrapping_add(1);
        let delta = seq.wrapping_sub(s.max_seq);
        if s.received > 1 && delta != 0 && delta < 0x8000 {
            if seq < s.max_seq {
                s.cycles = s.cycles.wrapping_add(1 << 16);
            }
            s.max_seq = seq;
        }
        // A.8: J += (|D| - J) / 16, in timestamp units.
        let transit = arrival as i64 - i64::from(rtp_ts);
        if let Some(prev) = s.transit {
            let d = (transit - prev).unsigned_abs().min(u64::from(u32::MAX)) as u32;
            let j = s.jitter as i64 + ((i64::from(d) << 4) - s.jitter as i64) / 16;
            s.jitter = j.clamp(0, i64::from(u32::MAX)) as u32;
        }
        s.transit = Some(transit);
    }

    /// An RTCP packet from the peer (already decrypted). Only its sender report is used.
    pub fn handle_rtcp(&mut self, now: Instant, packet: &[u8]) {
        let mut rest = packet;
        while rest.len() >= 4 {
            let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
            if rest[0] >> 6 != 2 || len > rest.len() {
                return;
            }
            if rest[1] == SR && len >= 28 {
                let ssrc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
                let mid = u32::from_be_bytes([rest[10], rest[11], rest[12], rest[13]]);
                if let Some(s) = self.source.as_mut().filter(|s| s.ssrc == ssrc) {
                    s.lsr = Some((mid, now));
                }
            }
            rest = &rest[len..];
        }
    }

    /// When the next report is due.
    pub fn next_report(&self) -> Instant {
        self.next_report
    }

    /// Writes the report due at `now` (SR if `sender`, else RR; with SDES) into `buf`
    /// ([`MAX_RTCP`] bytes); the next is due at `next`. Returns the length.
    pub fn write_report(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sender: Option<SenderInfo>,
        next: Instant,
        buf: &mut [u8],
    ) -> usize {
        self.next_report = next;
        self.sent_any = true;
        let n = self.write_sr_rr(now, wall, sender, buf);
        n + self.write_sdes(&mut buf[n..])
    }

    /// Writes the last compound packet of the call: a report, SDES and BYE.
    pub fn write_bye(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sender: Option<SenderInfo>,
        buf: &mut [u8],
    ) -> usize {
        let mut n = self.write_sr_rr(now, wall, sender, buf);
        n += self.write_sdes(&mut buf[n..]);
        if buf.len() >= n + 8 {
            buf[n] = 0x81;
            buf[n + 1] = BYE;
            buf[n + 2..n + 4].copy_from_slice(&1u16.to_be_bytes());
            buf[n + 4..n + 8].copy_from_slice(&self.ssrc.to_be_bytes());
            n += 8;
        }
        n
    }

    /// Whether any report was written (a BYE without one is still fine).
    pub fn reported(&self) -> bool {
        self.sent_any
    }

    fn write_sr_rr(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sender: Option<SenderInfo>,
        buf: &mut [u8],
    ) -> usize {
        let block = self.report_block(now);
        let rc = u8::from(block.is_some());
        let mut n = 8;
        buf[0] = 0x80 | rc;
        buf[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        match sender {
            Some(s) => {
                buf[1] = SR;
                let (sec, frac) = ntp(wall);
                buf[8..12].copy_from_slice(&sec.to_be_bytes());
                buf[12..16].copy_from_slice(&frac.to_be_bytes());
                buf[16..20].copy_from_slice(&s.rtp_ts.to_be_bytes());
                buf[20..24].copy_from_slice(&s.packets.to_be_bytes());
                buf[24..28].copy_from_slice(&s.octets.to_be_bytes());
                n = 28;
            }
            None => buf[1] = RR,
        }
        if let Some(b) = block {
            buf[n..n + 24].copy_from_slice(&b);
            n += 24;
        }
        let words = (n / 4 - 1) as u16;
        buf[2..4].copy_from_slice(&words.to_be_bytes());
        n
    }

    /// One report block about the caller's stream (RFC 3550 §6.4.1), updating the
    /// "prior" counters for the next interval's fraction lost.
    fn report_block(&mut self, now: Instant) -> Option<[u8; 24]> {
        let s = self.source.as_mut()?;
        let extended_max = s.cycles.wrapping_add(u32::from(s.max_seq));
        let expected = extended_max.wrapping_sub(s.base_seq).wrapping_add(1);
        let lost = i64::from(expected) - i64::from(s.received);
        let lost = lost.clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let expected_interval = expected.wrapping_sub(s.expected_prior);
        let received_interval = s.received.wrapping_sub(s.received_prior);
        s.expected_prior = expected;
        s.received_prior = s.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction = if expected_interval == 0 || lost_interval <= 0 {
            0u8
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (lsr, dlsr) = match s.lsr {
            Some((mid, at)) => {
                let d = now.saturating_duration_since(at);
                (
                    mid,
                    (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32,
                )
            }
            None => (0, 0),
        };
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&s.ssrc.to_be_bytes());
        b[4] = fraction;
        b[5..8].copy_from_slice(&(lost as u32).to_be_bytes()[1..]);
        b[8..12].copy_from_slice(&extended_max.to_be_bytes());
        b[12..16].copy_from_slice(&(s.jitter >> 4).to_be_bytes());
        b[16..20].copy_from_slice(&lsr.to_be_bytes());
        b[20..24].copy_from_slice(&dlsr.to_be_bytes());
        Some(b)
    }

    fn write_sdes(&self, buf: &mut [u8]) -> usize {
        // One chunk: SSRC, CNAME item, end marker, padded to 32 bits.
        let name = self.cname.as_bytes();
        let name = &name[..name.len().min(255)];
        let chunk = 4 + 2 + name.len() + 1;
        let padded = chunk.div_ceil(4) * 4;
        let total = 4 + padded;
        if buf.len() < total {
            return 0;
        }
        buf[..total].fill(0);
        buf[0] = 0x81;
        buf[1] = SDES;
        buf[2..4].copy_from_slice(&((total / 4 - 1) as u16).to_be_bytes());
        buf[4..8].copy_from_slice(&self.ssrc.to_be_bytes());
        buf[8] = 1; // CNAME
        buf[9] = name.len() as u8;
        buf[10..10 + name.len()].copy_from_slice(name);
        total
    }
}

/// NTP timestamp (seconds since 1900, fraction) of a wall-clock time.
fn ntp(wall: SystemTime) -> (u32, u32) {
    let d = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let sec = d.as_secs().wrapping_add(2_208_988_800) as u32;
    let frac = ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    (sec, frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_ok(p: &[u8]) -> Vec<u8> {
        // Walks a compound packet, checking each length; returns the packet types.
        let mut types = Vec::new();
        let mut rest = p;
        while !rest.is_empty() {
            assert!(rest.len() >= 4);
            assert_eq!(rest[0] >> 6, 2);
            let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
            assert!(len <= rest.len(), "length word");
            types.push(rest[1]);
            rest = &rest[len..];
        }
        types
    }

    #[test]
    fn reports_loss_jitter_and_lsr() {
        let t0 = Instant::now();
        let mut r = Rtcp::new(0x1111, "ivrflow@test", 8000, t0, t0 + REPORT_INTERVAL);
        // 100 packets on time, every 10th lost, sequence wrapping.
        for i in 0..100u16 {
            if i % 10 == 5 {
                continue;
            }
            let seq = 65500u16.wrapping_add(i);
            r.handle_rtp(
                t0 + Duration::from_millis(20 * u64::from(i)),
                0xABCD,
                seq,
                160 * u32::from(i),
            );
        }
        // The peer's SR: NTP middle bits 0x12345678.
        let mut sr = vec![
            0x80, SR, 0, 6, 0, 0, 0xAB, 0xCD, 0, 0, 0x12, 0x34, 0x56, 0x78,
        ];
        sr.extend_from_slice(&[0; 14]);
        r.handle_rtcp(t0 + Duration::from_secs(2), &sr);
        let mut buf = [0u8; MAX_RTCP];
        let now = t0 + Duration::from_secs(3);
        let n = r.write_report(
            now,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            Some(SenderInfo {
                rtp_ts: 42,
                packets: 7,
                octets: 1120,
            }),
            now + REPORT_INTERVAL,
            &mut buf,
        );
        let p = &buf[..n];
        assert_eq!(words_ok(p), vec![SR, SDES]);
        assert!(is_rtcp(p));
        assert_eq!(p[0] & 0x1F, 1, "one report block");
        let block = &p[28..52];
        assert_eq!(&block[0..4], &0xABCDu32.to_be_bytes());
        assert_eq!(block[4], (10 * 256 / 100) as u8, "fraction lost 10 %");
        assert_eq!(&block[5..8], &[0, 0, 10], "cumulative lost");
        assert_eq!(
            u32::from_be_bytes(block[8..12].try_into().unwrap()),
            (1 << 16) + u32::from(65500u16.wrapping_add(99)),
            "extended highest sequence number (one wrap)"
        );
        assert_eq!(
            u32::from_be_bytes(block[12..16].try_into().unwrap()),
            0,
            "no jitter"
        );
        assert_eq!(&block[16..20], &0x12345678u32.to_be_bytes());
        assert_eq!(
            u32::from_be_bytes(block[20..24].try_into().unwrap()),
            65536,
            "1 s since the SR"
        );
        assert_eq!(&p[20..24], &7u32.to_be_bytes());
        assert_eq!(r.next_report(), now + REPORT_INTERVAL);
        // The next interval lost nothing new.
        let n = r.write_report(now, UNIX_EPOCH, None, now, &mut buf);
        assert_eq!(words_ok(&buf[..n]), vec![RR, SDES]);
        assert_eq!(buf[8 + 4], 0);
        let n = r.write_bye(now, UNIX_EPOCH, None, &mut buf);
        assert_eq!(words_ok(&buf[..n]), vec![RR, SDES, BYE]);
    }

    #[test]
    fn jitter_follows_a8() {
        let t0 = Instant::now();
        let mut r = Rtcp::new(1, "x", 8000, t0, t0);
        // Arrivals alternate 10 ms early/late against the 20 ms media clock.
        for i in 0..2000u32 {
            let skew = if i % 2 == 0 { 0 } else { 10 };
            r.handle_rtp(
                t0 + Duration::from_millis(u64::from(20 * i + skew)),
                9,
                i as u16,
                160 * i,
            );
        }
        let j = r.source.as_ref().unwrap().jitter >> 4;
        assert!(
            (75..=85).contains(&j),
            "jitter {j} ≈ 80 timestamp units (10 ms)"
        );
    }

    #[test]
    fn garbage_rtcp_is_ignored() {
        let t0 = Instant::now();
        let mut r = Rtcp::new(1, "x", 8000, t0, t0);
        for junk in [
            &[][..],
            &[0x80, 200, 0xFF, 0xFF][..],
            &[0x80, 200, 0, 0, 1, 2, 3, 4][..],
            &[0u8; 40][..],
        ] {
            r.handle_rtcp(t0, junk);
        }
        assert!(!is_rtcp(&[0x80, 0, 0, 0, 0, 0, 0, 0]));
        assert!(is_rtcp(&[0x80, 200, 0, 1, 0, 0, 0, 0]));
        let mut buf = [0u8; MAX_RTCP];
        let n = r.write_report(t0, UNIX_EPOCH, None, t0, &mut buf);
        assert_eq!(words_ok(&buf[..n]), vec![RR, SDES]);
    }
}
