//! RFC 4733 telephone-events (DTMF over RTP): a per-call receiver, a payload encoder for
//! the sending side, and an allocation-free RTP header parser for incoming datagrams.
//!
//! Payload (RFC 4733 §2.3): `event:8 | E:1 R:1 volume:6 | duration:16`, all packets of one
//! event share the RTP timestamp of its start (§2.5.1.1), the first carries the marker bit
//! (§2.5.1.2), the end is sent three times (§2.5.1.4), and events longer than 0xFFFF
//! timestamp units continue in a new segment with a new timestamp (§2.5.1.3).
//!
//! [`DtmfReceiver`] reports a key **once, on the first packet it sees of an event** — the
//! robot has to react within a packet time, not after the key is released — and never again
//! for the same event, whatever arrives after: continuation packets, the redundant end
//! packets, network duplicates, late retransmissions of an older event, or the segments of
//! a long press.
//!
//! ```text
//!               new timestamp (newer than the last event)        same timestamp
//!   Idle ─────────────────────────────────────────────► InEvent ──────────────► (absorbed)
//!                          ▲  report digit                │ E bit
//!                          │                              ▼
//!                          └────── new timestamp ───── Ended ── same ts + M bit + newer
//!                                                            seq + shorter duration:
//!                                                            a new press (ts reused)
//! ```
//!
//! Decisions: a timestamp that is *older* than the current event's (by less than 10 s of
//! clock) is a late packet of an old event and is ignored; an SSRC change starts afresh.
//! Events other than the 16 DTMF keys (§3.2: flash, modem tones…) are tracked (so their
//! packets are absorbed) but not reported.
//!
//! Not here: in-band (Goertzel) DTMF detection, RFC 2198 redundancy payloads, jitter
//! buffering, reporting key-up/final durations (only the duration known at the first packet).

use std::time::Instant;

use super::rtp::parse_rtp;

/// A DTMF key press, reported when its first packet arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfDigit {
    /// `'0'`–`'9'`, `'*'`, `'#'`, `'A'`–`'D'`.
    pub digit: char,
    /// When the first packet of the event was handled.
    pub at: Instant,
    /// Event duration carried by that packet (usually 0–20 ms: the key is still down).
    pub duration_ms: u32,
}

/// RFC 4733 §3.2 event code of a DTMF key (`'a'`–`'d'` accepted as `'A'`–`'D'`).
pub fn event_code(digit: char) -> Option<u8> {
    Some(match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        'a'..='d' => digit as u8 - b'a' + 12,
        _ => return None,
    })
}

/// The DTMF key of an RFC 4733 event code (0–15).
pub fn event_digit(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => (b'0' + code) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + code - 12) as char,
        _ => return None,
    })
}

/// Writes a 4-byte RFC 4733 payload for `digit` (§2.3): E bit from `end`, volume in −dBm0
/// (clamped to 0–63), `duration` in timestamp units. Returns `false` (and leaves `out`
/// untouched) when `digit` is not a DTMF key.
#[must_use]
pub fn encode_event(digit: char, end: bool, volume: u8, duration: u16, out: &mut [u8; 4]) -> bool {
    let Some(code) = event_code(digit) else {
        return false;
    };
    out[0] = code;
    out[1] = (if end { 0x80 } else { 0 }) | volume.min(63);
    out[2..4].copy_from_slice(&duration.to_be_bytes());
    true
}

/// Timestamps this far behind the current event (in clock units) are late packets of old
/// events; farther than that, a sender that jumped its clock backwards.
const STALE_WINDOW: u32 = 10 * 8000;

#[derive(Clone, Copy, Debug)]
struct Event {
    ssrc: u32,
    timestamp: u32,
    code: u8,
    ended: bool,
    /// Highest duration seen for this event (segment).
    duration: u16,
    /// Sequence number of the newest packet of this event.
    last_seq: u16,
}

/// Per-call RFC 4733 receiver. See the module docs.
#[derive(Clone, Debug)]
pub struct DtmfReceiver {
    event_pt: u8,
    clock_rate: u32,
    current: Option<Event>,
}

impl DtmfReceiver {
    /// A receiver for the negotiated `telephone-event` payload type, 8000 Hz clock.
    pub fn new(event_pt: u8) -> Self {
        DtmfReceiver::with_clock_rate(event_pt, 8000)
    }

    /// A receiver for a `telephone-event/<clock_rate>` negotiated with another clock
    /// (e.g. 48000 alongside Opus). A zero rate is treated as 8000.
    pub fn with_clock_rate(event_pt: u8, clock_rate: u32) -> Self {
        DtmfReceiver {
            event_pt: event_pt & 0x7F,
            clock_rate: if clock_rate == 0 { 8000 } else { clock_rate },
            current: None,
        }
    }

    /// The payload type this receiver listens to.
    pub fn event_pt(&self) -> u8 {
        self.event_pt
    }

    /// Feeds one incoming RTP datagram. Returns the digit when this packet starts a new
    /// DTMF event; `None` for everything else (other payload types, continuation / end /
    /// duplicate packets, non-DTMF events, malformed packets).
    pub fn handle_rtp(&mut self, now: Instant, packet: &[u8]) -> Option<DtmfDigit> {
        let header = parse_rtp(packet)?;
        if header.payload_type != self.event_pt {
            return None;
        }
        let payload = packet.get(header.payload)?;
        let [code, flags, d0, d1, ..] = *payload else {
            return None;
        };
        let end = flags & 0x80 != 0;
        let duration = u16::from_be_bytes([d0, d1]);
        let seq = header.sequence;
        let ts = header.timestamp;

        if let Some(cur) = self.current.as_mut()
            && cur.ssrc == header.ssrc
        {
            if ts == cur.timestamp {
                let newer = seq_newer(seq, cur.last_seq);
                // A sender that reuses the timestamp for the next press (seen in the
                // wild): the previous event ended, and a fresh start packet follows it.
                let reused = cur.ended && header.marker && !end && newer && duration < cur.duration;
                if !reused {
                    cur.ended |= end;
                    cur.duration = cur.duration.max(duration);
                    if newer {
                        cur.last_seq = seq;
                    }
                    return None;
                }
            } else {
                let behind = cur.timestamp.wrapping_sub(ts);
                if behind < STALE_WINDOW {
                    return None; // a late packet of an older event
                }
                // Next segment of a long event (§2.5.1.3): same key, not ended, the previous
                // segment ran up to the duration limit and this one starts where it stopped.
                let ahead = ts.wrapping_sub(cur.timestamp);
                if !cur.ended
                    && code == cur.code
                    && cur.duration >= 0xFF00
                    && ahead <= u32::from(cur.duration) + 8 * 160
                {
                    cur.timestamp = ts;
                    cur.duration = duration;
                    cur.ended = end;
                    cur.last_seq = seq;
                    return None;
                }
            }
        }

        self.current = Some(Event {
            ssrc: header.ssrc,
            timestamp: ts,
            code,
            ended: end,
            duration,
            last_seq: seq,
        });
        let digit = event_digit(code)?;
        Some(DtmfDigit {
            digit,
            at: now,
            duration_ms: (u64::from(duration) * 1000 / u64::from(self.clock_rate)) as u32,
        })
    }
}

/// RFC 3550 §A.1-style serial comparison: `a` comes after `b` (within half the space).
fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::{RtpPacketBuilder, Seq};
    use std::time::Duration;

    const PT: u8 = 101;

    struct Sender {
        seq: u16,
        ssrc: u32,
    }

    impl Sender {
        fn packet(&mut self, pt: u8, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
            let p = RtpPacketBuilder::new()
                .payload_type(pt)
                .marked(marker)
                .sequence(Seq::from(self.seq))
                .timestamp(ts)
                .ssrc(self.ssrc)
                .payload(payload)
                .build()
                .unwrap();
            self.seq = self.seq.wrapping_add(1);
            p
        }

        /// One key press as a conforming sender emits it: start (M), `cont` continuation
        /// packets, 3 end packets. Durations step by 160.
        fn press(&mut self, digit: char, ts: u32, cont: u16) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            let mut payload = [0u8; 4];
            for i in 0..=cont {
                assert!(encode_event(digit, false, 10, i * 160, &mut payload));
                out.push(self.packet(PT, ts, i == 0, &payload));
            }
            for _ in 0..3 {
                assert!(encode_event(
                    digit,
                    true,
                    10,
                    (cont + 1) * 160,
                    &mut payload
                ));
                out.push(self.packet(PT, ts, false, &payload));
            }
            out
        }
    }

    fn feed(rx: &mut DtmfReceiver, t0: Instant, packets: &[Vec<u8>]) -> Vec<char> {
        packets
            .iter()
            .enumerate()
            .filter_map(|(i, p)| rx.handle_rtp(t0 + Duration::from_millis(20 * i as u64), p))
            .map(|d| d.digit)
            .collect()
    }

    #[test]
    fn one_press_is_one_digit() {
        let t0 = Instant::now();
        let mut tx = Sender { seq: 100, ssrc: 7 };
        let mut rx = DtmfReceiver::new(PT);
        let packets = tx.press('5', 16000, 5);
        assert_eq!(packets.len(), 1 + 5 + 3);
        // Reported on the very first packet.
        let first = rx.handle_rtp(t0, &packets[0]).unwrap();
        assert_eq!(
            first,
            DtmfDigit {
                digit: '5',
                at: t0,
                duration_ms: 0
            }
        );
        assert_eq!(feed(&mut rx, t0, &packets[1..]), Vec::<char>::new());
        // Duplicates of any of them later: still nothing.
        assert_eq!(feed(&mut rx, t0, &packets), Vec::<char>::new());
    }

    #[test]
    fn two_presses_of_the_same_key_are_two_digits() {
        let t0 = Instant::now();
        let mut tx = Sender {
            seq: 65530,
            ssrc: 7,
        };
        let mut rx = DtmfReceiver::new(PT);
        let mut packets = tx.press('1', u32::MAX - 500, 4); // timestamp wraps between presses
        packets.extend(tx.press('1', 1000, 4));
        packets.extend(tx.press('#', 3000, 2));
        assert_eq!(feed(&mut rx, t0, &packets), ['1', '1', '#']);
    }

    #[test]
    fn lost_start_and_lost_end_packets() {
        let t0 = Instant::now();
        let mut tx = Sender { seq: 1, ssrc: 7 };
        let mut rx = DtmfReceiver::new(PT);
        // Only the end packets of '9' arrive: still reported, once.
        let p = tx.press('9', 8000, 3);
        assert_eq!(feed(&mut rx, t0, &p[4..]), ['9']);
        // '9' again without any end packet, then '0': two more digits.
        let a = tx.press('9', 9600, 3);
        let b = tx.press('0', 11200, 3);
        let mut packets = a[..4].to_vec();
        packets.extend(b);
        assert_eq!(feed(&mut rx, t0, &packets), ['9', '0']);
    }

    #[test]
    fn late_packets_of_an_old_event_are_ignored() {
        let t0 = Instant::now();
        let mut tx = Sender { seq: 1, ssrc: 7 };
        let mut rx = DtmfReceiver::new(PT);
        let a = tx.press('4', 8000, 2);
        let b = tx.press('6', 9600, 2);
        let mut packets = a.clone();
        packets.extend(b[..2].iter().cloned());
        packets.push(a[5].clone()); // a retransmitted end of '4' after '6' started
        packets.push(a[0].clone());
        packets.extend(b[2..].iter().cloned());
        assert_eq!(feed(&mut rx, t0, &packets), ['4', '6']);
    }

    #[test]
    fn reused_timestamp_after_end_is_a_new_press() {
        let t0 = Instant::now();
        let mut tx = Sender { seq: 1, ssrc: 7 };
        let mut rx = DtmfReceiver::new(PT);
        let mut packets = tx.press('2', 8000, 2);
        packets.extend(tx.press('3', 8000, 2));
        assert_eq!(feed(&mut rx, t0, &packets), ['2', '3']);
        // But a network duplicate of the first start packet (old seq) is not.
        let dup = packets[0].clone();
        assert_eq!(rx.handle_rtp(t0, &dup), None);
    }

    #[test]
    fn long_press_segments_are_one_digit() {
        let t0 = Instant::now();
        let mut tx = Sender { seq: 1, ssrc: 7 };
        let mut rx = DtmfReceiver::new(PT);
        let mut payload = [0u8; 4];
        let mut packets = Vec::new();
        assert!(encode_event('7', false, 10, 0, &mut payload));
        packets.push(tx.packet(PT, 1000, true, &payload));
        assert!(encode_event('7', false, 10, 0xFFFF, &mut payload));
        packets.push(tx.packet(PT, 1000, false, &payload));
        // Second segment starts at ts + 0xFFFF.
        assert!(encode_event('7', false, 10, 160, &mut payload));
        packets.push(tx.packet(PT, 1000 + 0xFFFF, false, &payload));
        assert!(encode_event('7', true, 10, 320, &mut payload));
        packets.push(tx.packet(PT, 1000 + 0xFFFF, false, &payload));
        assert_eq!(feed(&mut rx, t0, &packets), ['7']);
    }

    #[test]
    fn other_payload_types_ssrcs_and_events() {
        let t0 = Instant::now();
        let mut tx = Sender { seq: 1, ssrc: 7 };
        let mut rx = DtmfReceiver::new(PT);
        let mut payload = [0u8; 4];
        assert!(encode_event('8', false, 10, 0, &mut payload));
        // Audio payload type: ignored even if it looks like an event.
        assert_eq!(rx.handle_rtp(t0, &tx.packet(0, 500, true, &payload)), None);
        // Flash (event 16): absorbed, not reported.
        let flash = [16u8, 10, 0, 0];
        assert_eq!(rx.handle_rtp(t0, &tx.packet(PT, 500, true, &flash)), None);
        assert_eq!(rx.handle_rtp(t0, &tx.packet(PT, 500, false, &flash)), None);
        // Short payload.
        assert_eq!(
            rx.handle_rtp(t0, &tx.packet(PT, 700, true, &[1, 2, 3])),
            None
        );
        // A different SSRC with an "older" timestamp is a new source, not a stale packet.
        let mut other = Sender { seq: 9, ssrc: 8 };
        let d = rx.handle_rtp(t0, &other.packet(PT, 100, true, &payload));
        assert_eq!(d.map(|d| d.digit), Some('8'));
        // duration_ms uses the clock rate.
        let mut rx48 = DtmfReceiver::with_clock_rate(PT, 48000);
        assert!(encode_event('D', false, 10, 960, &mut payload));
        let d = rx48
            .handle_rtp(t0, &tx.packet(PT, 1, true, &payload))
            .unwrap();
        assert_eq!((d.digit, d.duration_ms), ('D', 20));
    }

    #[test]
    fn event_codes() {
        let keys = "0123456789*#ABCD";
        for (code, key) in keys.chars().enumerate() {
            assert_eq!(event_code(key), Some(code as u8));
            assert_eq!(event_digit(code as u8), Some(key));
        }
        assert_eq!(event_code('b'), Some(13));
        assert_eq!(event_code('x'), None);
        assert_eq!(event_digit(16), None);
        let mut out = [9u8; 4];
        assert!(!encode_event('x', true, 10, 5, &mut out));
        assert_eq!(out, [9; 4]);
        assert!(encode_event('#', true, 200, 0x1234, &mut out));
        assert_eq!(out, [11, 0x80 | 63, 0x12, 0x34]);
    }

    #[test]
    fn parse_rtp_headers() {
        // CSRCs, extension and padding.
        let mut p = vec![
            0x80 | 0x20 | 0x10 | 2, // V=2, P, X, CC=2
            0x80 | 101,             // M, PT
            0x12,
            0x34,
            0,
            0,
            0x01,
            0x00,
            0xAA,
            0xBB,
            0xCC,
            0xDD,
        ];
        p.extend_from_slice(&[0; 8]); // 2 CSRCs
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // extension, 1 word
        p.extend_from_slice(&[5, 0x80, 0, 160]); // payload
        p.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let h = parse_rtp(&p).unwrap();
        assert_eq!(h.payload_type, 101);
        assert!(h.marker);
        assert_eq!(h.sequence, 0x1234);
        assert_eq!(h.timestamp, 256);
        assert_eq!(h.ssrc, 0xAABB_CCDD);
        assert_eq!(&p[h.payload.clone()], &[5, 0x80, 0, 160]);
        // Bad version, truncated CSRCs / extension, padding longer than the packet.
        let mut bad = p.clone();
        bad[0] = (bad[0] & 0x3F) | 0x40;
        assert_eq!(parse_rtp(&bad), None);
        assert_eq!(parse_rtp(&p[..16]), None);
        assert_eq!(parse_rtp(&p[..24]), None);
        let mut bad = p.clone();
        *bad.last_mut().unwrap() = 200;
        assert_eq!(parse_rtp(&bad), None);
        let mut bad = p.clone();
        *bad.last_mut().unwrap() = 0;
        assert_eq!(parse_rtp(&bad), None);
        assert_eq!(parse_rtp(&[0x80; 11]), None);
        assert_eq!(parse_rtp(&[]), None);
    }

    #[test]
    fn garbage_never_panics() {
        let t0 = Instant::now();
        let mut tx = Sender { seq: 1, ssrc: 7 };
        let mut seeds: Vec<Vec<u8>> = tx.press('5', 1000, 2);
        seeds.push(parse_seed());
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut rx = DtmfReceiver::new(PT);
        for round in 0..20_000 {
            let mut p = seeds[round % seeds.len()].clone();
            match next() % 4 {
                0 => {
                    let i = next() as usize % p.len();
                    p[i] = next() as u8;
                }
                1 => p.truncate(next() as usize % (p.len() + 1)),
                2 => {
                    for b in p.iter_mut() {
                        if next() % 3 == 0 {
                            *b = next() as u8;
                        }
                    }
                }
                _ => {
                    let len = next() as usize % 64;
                    p = (0..len).map(|_| next() as u8).collect();
                    if len > 0 {
                        p[0] = 0x80 | (p[0] & 0x3F); // mostly version 2
                    }
                }
            }
            if let Some(h) = parse_rtp(&p) {
                assert!(h.payload.start <= h.payload.end && h.payload.end <= p.len());
            }
            let _ = rx.handle_rtp(t0, &p);
        }
    }

    fn parse_seed() -> Vec<u8> {
        let mut p = vec![0xB2, 0xE5, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7];
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4, 5, 0x80, 0, 160, 0, 2]);
        p
    }
}
