//! RTP playout of prompts: a sans-IO sender for one call's outgoing audio stream.
//!
//! [`Playout`] turns `play(id, prompts)` commands into 20 ms G.711 packets (RFC 3551 §4.5.14:
//! 8000 Hz clock, 160 samples per packet) with RFC 3550 §5.1 headers, and reports when a
//! playback finished on the wire or was cut short (barge-in). It never reads the clock or
//! touches a socket: the runtime calls [`Playout::poll_packet`] for every call on **one**
//! shared 20 ms pacing grid and sends whatever bytes come back.
//!
//! ```text
//!   play(id, prompts) ──► Playing ──poll_packet × ceil(samples/160)──► Idle  (+ Finished)
//!        ▲                  │  ▲                                          │
//!        │                  │  └──── play(id2, …): Stopped(id) + restart ─┤
//!        │                  └──── stop() ──────────► Idle (+ Stopped) ────┤
//!        └────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Wire behaviour:
//! - one packet per pacing tick while playing; the prompts of one `play()` form one
//!   continuous stream (a frame may span two prompts), the last frame is padded with codec
//!   silence; exactly `ceil(total_samples / 160)` packets per `play()`;
//! - sequence number +1 per packet (wrapping), timestamp +160 per packet within a playback;
//!   between playbacks no packets are sent, but the timestamp keeps following the wall clock
//!   (rounded to whole 20 ms frames), so the receiver sees one consistent media clock
//!   (RFC 3550 §5.1: the timestamp reflects the sampling instant);
//! - marker bit on the first packet of each `play()` (RFC 3551 §4.1: first packet of a
//!   talkspurt).
//!
//! Pacing: a frame is due when `now + 10 ms > due`, where `due` advances by exactly 20 ms per
//! packet. So a tick up to 10 ms early or 20 ms late neither skips nor doubles a frame, and
//! polling more often than every 20 ms does not speed playback up. When a tick comes a whole
//! interval late (a stall), the schedule restarts from that tick instead of bursting to catch
//! up: the receiver's jitter buffer absorbs the gap.
//!
//! The header is written by `rtp-rs`'s `RtpPacketBuilder::build_into`, which fills the
//! caller's buffer without allocating; the payload comes from the prompts' pre-encoded
//! PCMU/PCMA bytes. `poll_packet` performs no allocation (the event queue has room reserved
//! up front and a `play()` produces at most two events, so a driver that drains
//! `poll_event` after each tick never makes it grow).
//!
//! Between prompts, a stream set to [`Playout::set_idle_fill`] keeps sending frames of codec
//! silence on the same schedule (same SSRC, sequence +1, timestamp +160, no marker), so
//! the caller's stream has no gaps while the robot listens and NATs and SBCs that time out
//! silent media keep the path open (issue 19). Prompts report the same events either way.
//!
//! Deliberately not here: RTCP sender reports (counters are exposed for them; see
//! `media::rtcp`), comfort noise (RFC 3389), mixing, SRTP (`media::srtp`), receiving audio.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtp_rs::{RtpPacketBuilder, Seq};

use super::Codec;
use super::prompts::{Prompt, samples_to_duration};

/// Samples (and G.711 payload bytes) per packet: 20 ms at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;
/// Packet interval.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);
/// RTP fixed header length (no CSRCs, no extension).
pub const HEADER_LEN: usize = 12;
/// Length of every packet [`Playout::poll_packet`] writes; the buffer must hold this much.
pub const PACKET_LEN: usize = HEADER_LEN + SAMPLES_PER_PACKET;

const HALF_INTERVAL: Duration = Duration::from_millis(10);
/// A slot less than this ahead of an off-schedule first packet is taken as the current
/// one (the tick is running now): the next packet then waits for the slot after it.
const EARLY_SLACK: Duration = Duration::from_millis(2);

/// The one view of a received RTP packet (RFC 3550 §5.1) that everything reading RTP uses —
/// the caller's audio, RFC 4733 keys, the relay of a bridged transfer: its fixed header
/// fields and where its payload lies, from a validated datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpHeaderView {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    /// Where the payload lies in the datagram (after CSRCs and extension, before padding).
    pub payload: Range<usize>,
}

/// Parses and validates an RTP datagram: version 2, CSRC list, header extension and padding
/// lengths within bounds (via `rtp_rs::RtpReader`). `None` for anything malformed.
pub fn parse_rtp(packet: &[u8]) -> Option<RtpHeaderView> {
    let reader = rtp_rs::RtpReader::new(packet).ok()?;
    let start = reader.payload_offset();
    let padding = usize::from(reader.padding().unwrap_or(0));
    let end = packet.len().checked_sub(padding)?;
    if start > end {
        return None;
    }
    Some(RtpHeaderView {
        payload_type: reader.payload_type(),
        sequence: reader.sequence_number().into(),
        timestamp: reader.timestamp(),
        ssrc: reader.ssrc(),
        marker: reader.mark(),
        payload: start..end,
    })
}

/// What happened to a playback, for the dialogue layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayoutEvent {
    /// Every packet was produced. `at` is when the audio ends on the wire (the tick of the
    /// last packet + 20 ms): start no-input timers from here.
    Finished {
        id: u64,
        at: Instant,
        heard: Duration,
    },
    /// Cut short by [`Playout::stop`] or replaced by another [`Playout::play`]. `heard` is how
    /// much of it was on the wire by `at`.
    Stopped {
        id: u64,
        at: Instant,
        heard: Duration,
    },
}

impl PlayoutEvent {
    /// The playback this event is about.
    pub fn id(&self) -> u64 {
        match self {
            PlayoutEvent::Finished { id, .. } | PlayoutEvent::Stopped { id, .. } => *id,
        }
    }
}

struct Current {
    id: u64,
    prompts: Vec<Arc<Prompt>>,
    /// Prompt being read and the byte offset in it.
    index: usize,
    offset: usize,
    total_samples: u64,
    /// Real (non-padding) samples sent so far.
    sent_samples: u64,
    first_packet_at: Option<Instant>,
}

impl Current {
    fn heard(&self, now: Instant) -> Duration {
        match self.first_packet_at {
            None => Duration::ZERO,
            Some(t0) => {
                samples_to_duration(self.sent_samples).min(now.saturating_duration_since(t0))
            }
        }
    }
}

/// One call's outgoing RTP stream. See the module docs.
pub struct Playout {
    codec: Codec,
    ssrc: u32,
    payload_type: u8,
    /// Sequence number of the next packet.
    seq: u16,
    /// Timestamp the next packet gets if it is sent at `next_ts_at`.
    next_ts: u32,
    /// Wall time that `next_ts` belongs to (`None` before the first packet).
    next_ts_at: Option<Instant>,
    /// Pacing schedule: the next packet is due at this instant.
    next_due: Option<Instant>,
    current: Option<Current>,
    events: VecDeque<PlayoutEvent>,
    frame: [u8; SAMPLES_PER_PACKET],
    packets_sent: u64,
    octets_sent: u64,
    /// Send silence frames while idle.
    idle_fill: bool,
}

impl std::fmt::Debug for Playout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Playout")
            .field("codec", &self.codec)
            .field("ssrc", &format_args!("{:#010x}", self.ssrc))
            .field("payload_type", &self.payload_type)
            .field("seq", &self.seq)
            .field("next_ts", &self.next_ts)
            .field("playing", &self.current_id())
            .field("pending_events", &self.events.len())
            .field("packets_sent", &self.packets_sent)
            .finish()
    }
}

impl Playout {
    /// A stream with the given SSRC and starting sequence number and timestamp (RFC 3550
    /// §5.1: both should be random; pass them from the seeded RNG). `payload_type` is the
    /// negotiated PT for `codec` (only its low 7 bits are used).
    pub fn new(
        codec: Codec,
        ssrc: u32,
        initial_seq: u16,
        initial_ts: u32,
        payload_type: u8,
    ) -> Playout {
        Playout {
            codec,
            ssrc,
            payload_type: payload_type & 0x7F,
            seq: initial_seq,
            next_ts: initial_ts,
            next_ts_at: None,
            next_due: None,
            current: None,
            events: VecDeque::with_capacity(8),
            frame: [codec.silence_byte(); SAMPLES_PER_PACKET],
            packets_sent: 0,
            octets_sent: 0,
            idle_fill: false,
        }
    }

    /// While no prompt plays, send a frame of codec silence every interval instead of
    /// nothing (keeps the path open; see the module docs).
    pub fn set_idle_fill(&mut self, on: bool) {
        self.idle_fill = on;
    }

    /// A silence frame while idle, when one is due.
    fn poll_fill(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if let Some(due) = self.next_due
            && now + HALF_INTERVAL <= due
        {
            return None;
        }
        if buf.len() < PACKET_LEN {
            return None;
        }
        // The timestamp follows the wall clock, as between prompts.
        let ts = match self.next_ts_at {
            Some(at) if now > at + HALF_INTERVAL => {
                let frames = (now - at + HALF_INTERVAL).as_nanos() / PACKET_INTERVAL.as_nanos();
                let advance = (frames as u64).wrapping_mul(SAMPLES_PER_PACKET as u64);
                self.next_ts.wrapping_add(advance as u32)
            }
            _ => self.next_ts,
        };
        self.frame.fill(self.codec.silence_byte());
        let len = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .sequence(Seq::from(self.seq))
            .timestamp(ts)
            .ssrc(self.ssrc)
            .payload(&self.frame)
            .build_into(buf)
            .ok()?;
        self.seq = self.seq.wrapping_add(1);
        self.next_ts = ts.wrapping_add(SAMPLES_PER_PACKET as u32);
        self.next_ts_at = Some(now + PACKET_INTERVAL);
        self.next_due = Some(match self.next_due {
            Some(due) if now < due + PACKET_INTERVAL => due + PACKET_INTERVAL,
            _ => now + PACKET_INTERVAL,
        });
        self.packets_sent += 1;
        self.octets_sent += SAMPLES_PER_PACKET as u64;
        Some(len)
    }

    /// Plays `prompts` back to back as one stream with no gaps between them. Replaces
    /// anything already playing (that playback gets a `Stopped` event). An empty sequence
    /// finishes at once (`Finished` with `at = now`, no packets).
    pub fn play(&mut self, id: u64, prompts: Vec<Arc<Prompt>>, now: Instant) {
        self.stop(now);
        let total_samples: u64 = prompts.iter().map(|p| p.samples() as u64).sum();
        if total_samples == 0 {
            self.events.push_back(PlayoutEvent::Finished {
                id,
                at: now,
                heard: Duration::ZERO,
            });
            return;
        }
        self.current = Some(Current {
            id,
            prompts,
            index: 0,
            offset: 0,
            total_samples,
            sent_samples: 0,
            first_packet_at: None,
        });
    }

    /// Barge-in: stops the current playback, if any, with a `Stopped` event saying how much
    /// was heard by `now`.
    pub fn stop(&mut self, now: Instant) {
        if let Some(cur) = self.current.take() {
            self.events.push_back(PlayoutEvent::Stopped {
                id: cur.id,
                at: now,
                heard: cur.heard(now),
            });
        }
    }

    /// Whether packets remain to be sent (false once the last packet was produced, although
    /// that packet is still on the wire for 20 ms).
    pub fn is_playing(&self) -> bool {
        self.current.is_some()
    }

    /// The id of the playback in progress.
    pub fn current_id(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.id)
    }

    /// Whether a new talkspurt may start at `now`, off the pacing schedule: a playback
    /// that has sent nothing yet, on a stream that sent nothing at this very instant. Its
    /// first packet then goes at once, so a key or an answer is acknowledged up to 20 ms
    /// sooner than at the next slot. The packet carries the marker bit and the timestamp
    /// that follows the last one, so a receiver starts a new talkspurt with it: the one
    /// short interval is an early packet to its jitter buffer, not a gap.
    pub fn starts_talkspurt(&self, now: Instant) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.first_packet_at.is_none())
            && self
                .next_ts_at
                .is_none_or(|next| now + PACKET_INTERVAL > next)
    }

    /// Called at each pacing tick. If a frame is due, writes one complete RTP packet
    /// ([`PACKET_LEN`] bytes) into `buf` and returns its length. Returns `None` when idle,
    /// when no frame is due yet, or when `buf` is shorter than [`PACKET_LEN`] (nothing is
    /// consumed then).
    pub fn poll_packet(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let early = self.starts_talkspurt(now);
        if self.current.is_none() && self.idle_fill {
            return self.poll_fill(now, buf);
        }
        let cur = self.current.as_mut()?;
        if !early
            && let Some(due) = self.next_due
            && now + HALF_INTERVAL <= due
        {
            return None;
        }
        if buf.len() < PACKET_LEN {
            return None;
        }
        let first = cur.first_packet_at.is_none();
        let ts = if first {
            // A new talkspurt: the timestamp catches up with the wall clock.
            match self.next_ts_at {
                Some(at) if now > at => {
                    let idle = now - at;
                    let frames = (idle + HALF_INTERVAL).as_nanos() / PACKET_INTERVAL.as_nanos();
                    let advance = (frames as u64).wrapping_mul(SAMPLES_PER_PACKET as u64);
                    self.next_ts.wrapping_add(advance as u32)
                }
                _ => self.next_ts,
            }
        } else {
            self.next_ts
        };

        // Assemble the payload across prompt boundaries.
        let mut filled = 0;
        while filled < SAMPLES_PER_PACKET && cur.index < cur.prompts.len() {
            let bytes = cur.prompts[cur.index].encoded(self.codec);
            let n = (bytes.len() - cur.offset).min(SAMPLES_PER_PACKET - filled);
            self.frame[filled..filled + n].copy_from_slice(&bytes[cur.offset..cur.offset + n]);
            filled += n;
            cur.offset += n;
            if cur.offset == bytes.len() {
                cur.index += 1;
                cur.offset = 0;
            }
        }
        self.frame[filled..].fill(self.codec.silence_byte());

        let len = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .marked(first)
            .sequence(Seq::from(self.seq))
            .timestamp(ts)
            .ssrc(self.ssrc)
            .payload(&self.frame)
            .build_into(buf)
            .ok()?;

        if first {
            cur.first_packet_at = Some(now);
        }
        cur.sent_samples += filled as u64;
        self.seq = self.seq.wrapping_add(1);
        self.next_ts = ts.wrapping_add(SAMPLES_PER_PACKET as u32);
        self.next_ts_at = Some(now + PACKET_INTERVAL);
        self.next_due = Some(match self.next_due {
            // A talkspurt started between slots: the next packet keeps the stream's next
            // slot (the pacing tick's), so only this first interval is short.
            Some(due) if early && due > now + EARLY_SLACK => due,
            // On schedule (up to half an interval early, or less than one interval late).
            Some(due) if now < due + PACKET_INTERVAL => due + PACKET_INTERVAL,
            // First packet, or a tick was missed: restart the schedule rather than burst.
            _ => now + PACKET_INTERVAL,
        });
        self.packets_sent += 1;
        self.octets_sent += SAMPLES_PER_PACKET as u64;

        if cur.sent_samples >= cur.total_samples {
            let heard = samples_to_duration(cur.total_samples);
            let id = cur.id;
            self.current = None;
            self.events.push_back(PlayoutEvent::Finished {
                id,
                at: now + PACKET_INTERVAL,
                heard,
            });
        }
        Some(len)
    }

    /// The next `Finished` / `Stopped` event, oldest first.
    pub fn poll_event(&mut self) -> Option<PlayoutEvent> {
        self.events.pop_front()
    }

    /// The RTP timestamp of the media clock at `at`, once a packet was sent: what an RTCP
    /// sender report pairs with the wall clock (RFC 3550 §6.4.1).
    pub fn rtp_clock(&self) -> Option<(u32, Instant)> {
        self.next_ts_at.map(|at| (self.next_ts, at))
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The codec the payload is encoded with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Packets produced so far (RTCP SR sender's packet count, RFC 3550 §6.4.1).
    pub fn packets_sent(&self) -> u64 {
        self.packets_sent
    }

    /// Payload octets produced so far (RTCP SR sender's octet count).
    pub fn octets_sent(&self) -> u64 {
        self.octets_sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    const MS: Duration = Duration::from_millis(1);

    fn prompt(name: &str, samples: usize) -> Arc<Prompt> {
        let pcm = (0..samples)
            .map(|i| ((i * 37) % 2000) as i16 - 1000)
            .collect();
        Arc::new(Prompt::from_pcm(name, pcm))
    }

    #[derive(Debug)]
    struct Sent {
        seq: u16,
        ts: u32,
        marker: bool,
        pt: u8,
        ssrc: u32,
        payload: Vec<u8>,
    }

    /// Ticks every 20 ms from `start` until idle; returns packets and the time after.
    fn drain(p: &mut Playout, start: Instant) -> (Vec<Sent>, Instant) {
        let mut out = Vec::new();
        let mut now = start;
        let mut buf = [0u8; 1500];
        while p.is_playing() {
            if let Some(n) = p.poll_packet(now, &mut buf) {
                assert_eq!(n, PACKET_LEN);
                let r = RtpReader::new(&buf[..n]).unwrap();
                out.push(Sent {
                    seq: r.sequence_number().into(),
                    ts: r.timestamp(),
                    marker: r.mark(),
                    pt: r.payload_type(),
                    ssrc: r.ssrc(),
                    payload: r.payload().to_vec(),
                });
            }
            now += PACKET_INTERVAL;
            assert!(out.len() < 100_000);
        }
        (out, now)
    }

    #[test]
    fn one_second_is_fifty_packets() {
        let t0 = Instant::now();
        let mut p = Playout::new(Codec::Pcmu, 0xDEAD_BEEF, 1000, 5000, 0);
        let hello = prompt("hello", 8000);
        p.play(7, vec![hello.clone()], t0);
        assert!(p.is_playing());
        assert_eq!(p.current_id(), Some(7));
        let (sent, _) = drain(&mut p, t0);
        assert_eq!(sent.len(), 50);
        for (i, s) in sent.iter().enumerate() {
            assert_eq!(s.seq, 1000 + i as u16);
            assert_eq!(s.ts, 5000 + 160 * i as u32);
            assert_eq!(s.marker, i == 0);
            assert_eq!(s.pt, 0);
            assert_eq!(s.ssrc, 0xDEAD_BEEF);
        }
        let wire: Vec<u8> = sent.iter().flat_map(|s| s.payload.clone()).collect();
        assert_eq!(wire[..], hello.pcmu[..]);
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Finished {
                id: 7,
                at: t0 + 49 * PACKET_INTERVAL + PACKET_INTERVAL,
                heard: Duration::from_secs(1),
            })
        );
        assert_eq!(p.poll_event(), None);
        assert_eq!(p.packets_sent(), 50);
        assert_eq!(p.octets_sent(), 8000);
        let mut buf = [0u8; 200];
        assert_eq!(p.poll_packet(t0 + Duration::from_secs(2), &mut buf), None);
    }

    #[test]
    fn back_to_back_prompts_have_no_gap() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let t0 = Instant::now();
            let mut p = Playout::new(codec, 1, 0, 0, codec.payload_type());
            let (a, b) = (prompt("a", 4505), prompt("b", 6291));
            p.play(1, vec![a.clone(), prompt("empty", 0), b.clone()], t0);
            let (sent, _) = drain(&mut p, t0);
            assert_eq!(sent.len(), 10796usize.div_ceil(160));
            assert_eq!(sent.iter().filter(|s| s.marker).count(), 1);
            for w in sent.windows(2) {
                assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
                assert_eq!(w[1].ts, w[0].ts.wrapping_add(160));
            }
            let wire: Vec<u8> = sent.iter().flat_map(|s| s.payload.clone()).collect();
            let expected: Vec<u8> = a
                .encoded(codec)
                .iter()
                .chain(b.encoded(codec).iter())
                .copied()
                .collect();
            assert_eq!(wire[..10796], expected[..]);
            assert!(wire[10796..].iter().all(|&x| x == codec.silence_byte()));
            assert_eq!(wire.len() - 10796, 68 * 160 - 10796);
            assert!(sent.iter().all(|s| s.pt == codec.payload_type()));
        }
    }

    #[test]
    fn stop_reports_heard_duration() {
        let t0 = Instant::now();
        let mut p = Playout::new(Codec::Pcmu, 1, 0, 0, 0);
        p.play(3, vec![prompt("long", 80_000)], t0);
        let mut buf = [0u8; PACKET_LEN];
        for i in 0..10 {
            assert!(p.poll_packet(t0 + i * PACKET_INTERVAL, &mut buf).is_some());
        }
        // Stopped at the tick the 11th packet would have gone: 10 packets fully heard.
        p.stop(t0 + 200 * MS);
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Stopped {
                id: 3,
                at: t0 + 200 * MS,
                heard: 200 * MS,
            })
        );
        assert!(!p.is_playing());
        assert_eq!(p.poll_packet(t0 + 200 * MS, &mut buf), None);
        // Stopping when idle does nothing.
        p.stop(t0 + 300 * MS);
        assert_eq!(p.poll_event(), None);

        // Mid-packet: heard is bounded by wall time since the first packet.
        p.play(4, vec![prompt("long", 80_000)], t0 + 400 * MS);
        for i in 0..3 {
            p.poll_packet(t0 + 400 * MS + i * PACKET_INTERVAL, &mut buf)
                .unwrap();
        }
        p.stop(t0 + 445 * MS);
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Stopped {
                id: 4,
                at: t0 + 445 * MS,
                heard: 45 * MS,
            })
        );
        // Stopped before any packet: nothing heard.
        p.play(5, vec![prompt("x", 800)], t0 + 500 * MS);
        p.stop(t0 + 500 * MS);
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Stopped {
                id: 5,
                at: t0 + 500 * MS,
                heard: Duration::ZERO,
            })
        );
    }

    #[test]
    fn timestamp_follows_wall_clock_between_playbacks() {
        let t0 = Instant::now();
        let mut p = Playout::new(Codec::Pcma, 9, 65530, u32::MAX - 1000, 8);
        p.play(1, vec![prompt("one", 8000)], t0);
        let (first, end) = drain(&mut p, t0);
        assert_eq!(end, t0 + Duration::from_secs(1));
        let last = first.last().unwrap();
        let expected_without_gap = last.ts.wrapping_add(160);
        // One second of idle ticks: nothing is sent.
        let mut buf = [0u8; PACKET_LEN];
        let mut now = end;
        for _ in 0..50 {
            assert_eq!(p.poll_packet(now, &mut buf), None);
            now += PACKET_INTERVAL;
        }
        p.play(2, vec![prompt("two", 1600)], now);
        let (second, _) = drain(&mut p, now);
        assert_eq!(second.len(), 10);
        assert!(second[0].marker);
        assert!(second[1..].iter().all(|s| !s.marker));
        assert_eq!(second[0].ts, expected_without_gap.wrapping_add(8000));
        assert_eq!(second[0].seq, last.seq.wrapping_add(1)); // seq does not jump
        assert_eq!(p.poll_event().map(|e| e.id()), Some(1));
        assert_eq!(p.poll_event().map(|e| e.id()), Some(2));
    }

    #[test]
    fn play_replaces_current_playback() {
        let t0 = Instant::now();
        let mut p = Playout::new(Codec::Pcmu, 1, 0, 0, 0);
        p.play(1, vec![prompt("a", 8000)], t0);
        let mut buf = [0u8; PACKET_LEN];
        let mut ts = Vec::new();
        for i in 0..5 {
            p.poll_packet(t0 + i * PACKET_INTERVAL, &mut buf).unwrap();
            ts.push(RtpReader::new(&buf).unwrap().timestamp());
        }
        p.play(2, vec![prompt("b", 320)], t0 + 100 * MS);
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Stopped {
                id: 1,
                at: t0 + 100 * MS,
                heard: 100 * MS,
            })
        );
        let (sent, _) = drain(&mut p, t0 + 100 * MS);
        assert_eq!(sent.len(), 2);
        assert!(sent[0].marker);
        assert_eq!(sent[0].seq, 5);
        assert_eq!(sent[0].ts, ts[4] + 160); // contiguous: no idle time passed
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Finished {
                id: 2,
                at: t0 + 140 * MS,
                heard: 40 * MS,
            })
        );
    }

    #[test]
    fn pacing_is_one_packet_per_interval() {
        let t0 = Instant::now();
        let mut p = Playout::new(Codec::Pcmu, 1, 0, 0, 0);
        p.play(1, vec![prompt("a", 8000)], t0);
        let mut buf = [0u8; PACKET_LEN];
        // Same tick twice: one packet.
        assert!(p.poll_packet(t0, &mut buf).is_some());
        assert!(p.poll_packet(t0, &mut buf).is_none());
        // Polling every 5 ms still yields 50 packets per second.
        let mut p = Playout::new(Codec::Pcmu, 1, 0, 0, 0);
        p.play(1, vec![prompt("a", 80_000)], t0);
        let mut count = 0;
        for i in 0..400u32 {
            if p.poll_packet(t0 + i * 5 * MS, &mut buf).is_some() {
                count += 1;
            }
        }
        assert!((100..=101).contains(&count), "{count} packets in 2 s");
        // Jittery ticks (up to 8 ms late) neither skip nor double.
        let mut p = Playout::new(Codec::Pcmu, 1, 0, 0, 0);
        p.play(2, vec![prompt("b", 8000)], t0 + Duration::from_secs(2));
        let mut count = 0;
        for i in 0..50u32 {
            let jitter = [0, 8, 3, 0, 7, 1][i as usize % 6] * MS;
            let now = t0 + Duration::from_secs(2) + i * PACKET_INTERVAL + jitter;
            if p.poll_packet(now, &mut buf).is_some() {
                count += 1;
            }
        }
        assert_eq!(count, 50);
        // A stall does not cause a burst.
        let mut p = Playout::new(Codec::Pcmu, 1, 0, 0, 0);
        p.play(3, vec![prompt("c", 8000)], t0 + Duration::from_secs(4));
        let t = t0 + Duration::from_secs(4);
        assert!(p.poll_packet(t, &mut buf).is_some());
        assert!(p.poll_packet(t + 100 * MS, &mut buf).is_some());
        assert!(p.poll_packet(t + 101 * MS, &mut buf).is_none());
        assert!(p.poll_packet(t + 120 * MS, &mut buf).is_some());
    }

    #[test]
    fn edge_cases() {
        let t0 = Instant::now();
        let mut p = Playout::new(Codec::Pcmu, 1, 0, 0, 0x80);
        // Empty playback finishes at once without packets.
        p.play(1, vec![], t0);
        p.play(2, vec![prompt("empty", 0)], t0);
        assert!(!p.is_playing());
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Finished {
                id: 1,
                at: t0,
                heard: Duration::ZERO
            })
        );
        assert_eq!(p.poll_event().map(|e| e.id()), Some(2));
        // A short buffer consumes nothing.
        p.play(3, vec![prompt("x", 100)], t0);
        let mut small = [0u8; PACKET_LEN - 1];
        assert_eq!(p.poll_packet(t0, &mut small), None);
        let mut buf = [0u8; PACKET_LEN];
        assert_eq!(p.poll_packet(t0, &mut buf), Some(PACKET_LEN));
        let r = RtpReader::new(&buf).unwrap();
        assert!(r.mark());
        assert_eq!(r.payload_type(), 0);
        assert_eq!(&r.payload()[100..], &[0xFF; 60][..]);
        assert_eq!(
            p.poll_event(),
            Some(PlayoutEvent::Finished {
                id: 3,
                at: t0 + PACKET_INTERVAL,
                heard: Duration::from_micros(12_500),
            })
        );
    }

    /// With idle fill on, the stream never pauses: silence between prompts on the same
    /// schedule, sequence and timestamp continuous, a marker only where a prompt starts,
    /// also when the prompt starts between ticks.
    #[test]
    fn idle_fill_keeps_the_stream_gapless() {
        let t0 = Instant::now();
        let mut p = Playout::new(Codec::Pcma, 9, 65530, 0, 8);
        p.set_idle_fill(true);
        let mut buf = [0u8; 1500];
        let mut sent: Vec<(Instant, u16, u32, bool, u8)> = Vec::new();
        let mut now = t0;
        for i in 0..200u32 {
            // A prompt starts at tick 150, and one off the grid 7 ms after tick 50.
            if i == 150 {
                p.play(2, vec![prompt("b", 320)], now);
            }
            if let Some(n) = p.poll_packet(now, &mut buf) {
                let r = RtpReader::new(&buf[..n]).unwrap();
                sent.push((
                    now,
                    r.sequence_number().into(),
                    r.timestamp(),
                    r.mark(),
                    r.payload()[0],
                ));
            }
            if i == 50 {
                let at = now + Duration::from_millis(7);
                p.play(1, vec![prompt("a", 1600)], at);
                assert!(p.starts_talkspurt(at));
                if let Some(n) = p.poll_packet(at, &mut buf) {
                    let r = RtpReader::new(&buf[..n]).unwrap();
                    sent.push((
                        at,
                        r.sequence_number().into(),
                        r.timestamp(),
                        r.mark(),
                        r.payload()[0],
                    ));
                }
            }
            now += PACKET_INTERVAL;
        }
        assert!(sent.len() >= 200, "{}", sent.len());
        for w in sent.windows(2) {
            assert_eq!(w[1].1, w[0].1.wrapping_add(1), "sequence");
            assert_eq!(w[1].2.wrapping_sub(w[0].2), 160, "timestamp");
            assert!(w[1].0 - w[0].0 <= PACKET_INTERVAL, "gap");
        }
        assert_eq!(
            sent.iter().filter(|s| s.3).count(),
            2,
            "markers at the prompts only"
        );
        assert_eq!(sent[0].4, Codec::Pcma.silence_byte());
        let events: Vec<_> = std::iter::from_fn(|| p.poll_event()).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(p.packets_sent() as usize, sent.len());
    }
}
