//! ITU-T G.711 µ-law and A-law companding, sample by sample.
//!
//! The arithmetic follows the ITU-T reference implementation (G.191 Software Tool Library,
//! `g711.c`: `ulaw_compress`/`ulaw_expand`, `alaw_compress`/`alaw_expand`) applied to 16-bit
//! linear samples: µ-law works on the top 14 bits, A-law on the top 13 bits, negative values
//! use the one's complement (so the quantiser is symmetric around zero, as G.711 specifies),
//! and decoding returns the midpoint of each quantisation interval scaled back to 16 bits.
//!
//! Properties the tests pin down:
//! - every code byte survives decode→encode unchanged, except µ-law `0x7F` ("negative
//!   zero"), which decodes to 0 and re-encodes as `0xFF` (positive zero);
//! - µ-law `0xFF` ↔ 0, µ-law `0x00` ↔ −32124, A-law `0xD5` ↔ 8, A-law `0x2A` ↔ −32256;
//! - encoding is monotonic in the input.
//!
//! Not here: G.711 Appendix I packet-loss concealment, Appendix II DTX/comfort noise, and
//! any resampling (input must already be 8 kHz; see [`super::prompts`]).

use super::Codec;

/// µ-law encode one 16-bit linear sample (ITU-T G.711 §2, 14-bit magnitude domain).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let x = i32::from(sample);
    // One's complement for negatives keeps the quantiser symmetric (STL `ulaw_compress`).
    let magnitude = if x < 0 { (!x) >> 2 } else { x >> 2 };
    let biased = (magnitude + 33).min(0x1FFF);
    // Segment 1..=8: position of the leading one above bit 5.
    let mut segment = 1;
    let mut i = biased >> 6;
    while i != 0 {
        segment += 1;
        i >>= 1;
    }
    let high = 8 - segment;
    let low = 0x0F - ((biased >> segment) & 0x0F);
    let code = ((high << 4) | low) as u8;
    if x >= 0 { code | 0x80 } else { code }
}

/// µ-law decode one code byte to a 16-bit linear sample (STL `ulaw_expand`).
pub fn ulaw_to_linear(code: u8) -> i16 {
    let inverted = !code;
    let exponent = i32::from((inverted >> 4) & 0x07);
    let mantissa = i32::from(inverted & 0x0F);
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * 33;
    let value = if code < 0x80 { -magnitude } else { magnitude };
    value as i16
}

/// A-law encode one 16-bit linear sample (ITU-T G.711 §3, 13-bit magnitude domain).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let x = i32::from(sample);
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut exponent = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            exponent += 1;
        }
        ix -= 16; // drop the implicit leading one
        ix += exponent << 4;
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix as u8) ^ 0x55 // even-bit inversion
}

/// A-law decode one code byte to a 16-bit linear sample (STL `alaw_expand`).
pub fn alaw_to_linear(code: u8) -> i16 {
    let ix = i32::from((code ^ 0x55) & 0x7F);
    let exponent = ix >> 4;
    let mut mantissa = ix & 0x0F;
    if exponent > 0 {
        mantissa += 16;
    }
    mantissa = (mantissa << 4) + 8;
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    let value = if code > 0x7F { mantissa } else { -mantissa };
    value as i16
}

/// Encode `pcm` (8 kHz linear) with `codec`, **appending** one byte per sample to `out`.
pub fn encode(codec: Codec, pcm: &[i16], out: &mut Vec<u8>) {
    out.reserve(pcm.len());
    match codec {
        Codec::Pcmu => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
        Codec::Pcma => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
    }
}

/// Decode `bytes` with `codec`, **appending** one linear sample per byte to `out`.
pub fn decode(codec: Codec, bytes: &[u8], out: &mut Vec<i16>) {
    out.reserve(bytes.len());
    match codec {
        Codec::Pcmu => out.extend(bytes.iter().map(|&b| ulaw_to_linear(b))),
        Codec::Pcma => out.extend(bytes.iter().map(|&b| alaw_to_linear(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_every_code_round_trips() {
        for code in 0..=255u8 {
            let back = linear_to_ulaw(ulaw_to_linear(code));
            if code == 0x7F {
                // Negative zero decodes to 0, which encodes as positive zero.
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, code, "µ-law code {code:#04x}");
            }
        }
    }

    #[test]
    fn alaw_every_code_round_trips() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn known_vectors() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        // Smallest non-zero steps.
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);

        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn decoded_values_are_symmetric() {
        for code in 0..0x80u8 {
            assert_eq!(ulaw_to_linear(code), -ulaw_to_linear(code | 0x80));
            assert_eq!(alaw_to_linear(code), -alaw_to_linear(code | 0x80));
        }
    }

    #[test]
    fn encoding_is_monotonic_and_close() {
        let mut prev_u = ulaw_to_linear(linear_to_ulaw(i16::MIN));
        let mut prev_a = alaw_to_linear(linear_to_alaw(i16::MIN));
        for x in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(x));
            let a = alaw_to_linear(linear_to_alaw(x));
            assert!(u >= prev_u && a >= prev_a, "non-monotonic at {x}");
            prev_u = u;
            prev_a = a;
            // Quantisation error stays within half a step of the top segment (+ clipping).
            let x = i32::from(x);
            assert!((i32::from(u) - x).abs() <= 1024, "µ-law error at {x}");
            assert!((i32::from(a) - x).abs() <= 1024, "A-law error at {x}");
        }
    }

    #[test]
    fn slices_append() {
        let pcm = [0i16, 1000, -1000, 32767];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut bytes = vec![0x42];
            encode(codec, &pcm, &mut bytes);
            assert_eq!(bytes.len(), 5);
            assert_eq!(bytes[0], 0x42);
            let mut back = Vec::new();
            decode(codec, &bytes[1..], &mut back);
            assert_eq!(back.len(), 4);
            assert!(back[0].abs() <= 8); // A-law has no code for exactly 0

            assert!((i32::from(back[1]) - 1000).abs() < 40);
        }
    }
}
