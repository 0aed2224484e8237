//! Media plane: everything between a prompt file on disk and RTP datagrams on the wire.
//!
//! - [`g711`]: ITU-T G.711 µ-law / A-law sample codecs (the only codecs we send).
//! - [`prompts`]: the prompt cache. Audio files are decoded, downmixed, resampled to 8 kHz
//!   and encoded to PCMU and PCMA **once**, at load time.
//! - [`rtp`]: [`rtp::Playout`], a sans-IO RTP sender that turns a queue of prompts into
//!   20 ms packets (RFC 3550, RFC 3551 §4.5.14) on the runtime's single pacing grid.
//! - [`vad`]: voice-activity detection and endpointing of the caller's audio (sans-IO).
//! - [`dtmf`]: RFC 4733 telephone-event receiver (and a sender-side payload encoder), and an
//!   allocation-free RTP header parser.
//! - [`goertzel`]: in-band DTMF detection (ITU-T Q.24 limits) on the caller's decoded audio.
//! - [`dtmf_dedup`]: one press counted once when it arrives by RFC 4733, SIP INFO and/or
//!   in-band tone.
//! - [`amd`]: answering-machine detection (greeting cadence, then the beep).
//!
//! Like the rest of the core (see `DESIGN.md`), nothing here opens sockets, spawns threads or
//! reads the clock: time comes in as a `now: Instant` argument. Deliberately not here yet:
//! RTCP, jitter buffering of received audio, codecs other than G.711.

pub mod amd;
pub mod dtmf;
pub mod dtmf_dedup;
pub mod g711;
pub mod goertzel;
pub mod latch;
pub mod prompts;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod vad;

/// An audio codec we can negotiate and send: G.711 at 8 kHz, one channel
/// (RFC 3551 §4.5.14, static payload types 0 and 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// Both codecs, in our order of preference when offering.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// The static RTP payload type (RFC 3551 table 4): 0 for PCMU, 8 for PCMA.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name used in SDP `a=rtpmap` (`PCMU` / `PCMA`).
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec for a static payload type, if it is one of ours.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// RTP clock rate in Hz (8000 for both).
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// The code byte for digital silence: `0xFF` for µ-law (decodes to 0), `0xD5` for A-law
    /// (decodes to +8, the smallest level A-law has).
    pub fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encoding_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_round_trip() {
        for c in Codec::ALL {
            assert_eq!(Codec::from_payload_type(c.payload_type()), Some(c));
        }
        assert_eq!(Codec::from_payload_type(101), None);
        assert_eq!(Codec::Pcmu.encoding_name(), "PCMU");
        assert_eq!(Codec::Pcma.to_string(), "PCMA");
    }

    #[test]
    fn silence_bytes_are_the_codes_for_zero() {
        for c in Codec::ALL {
            let mut out = Vec::new();
            g711::decode(c, &[c.silence_byte()], &mut out);
            assert!(out[0].abs() <= 8);
            let mut bytes = Vec::new();
            g711::encode(c, &[0], &mut bytes);
            assert_eq!(bytes, [c.silence_byte()]);
        }
    }
}
