//! Cost of in-band DTMF detection per 20 ms packet, against G.711 decoding of the same
//! packets measured in the same run (the work every received packet already costs):
//! `cargo bench --bench dtmf`.

use std::time::{Duration, Instant};

use ivrflow::media::goertzel::InbandDtmf;
use ivrflow::media::{Codec, g711};

/// Keys `0`–`9`: 60 ms tone, 60 ms pause, at -10 dBFS per tone.
fn tones() -> Vec<i16> {
    const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f32; 3] = [1209.0, 1336.0, 1477.0];
    let mut out = Vec::new();
    for k in 0..10usize {
        let (r, c) = if k == 0 {
            (3, 1)
        } else {
            ((k - 1) / 3, (k - 1) % 3)
        };
        for n in 0..480 {
            let t = n as f32 / 8000.0;
            let s = (2.0 * std::f32::consts::PI * LOW[r] * t).sin()
                + (2.0 * std::f32::consts::PI * HIGH[c] * t).sin();
            out.push((s * 0.316 * 16384.0) as i16);
        }
        out.extend(std::iter::repeat_n(0i16, 480));
    }
    out
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let speech = ivrflow::media::prompts::load_file(&root.join("audio/en/pm-invalid-option.wav"))
        .expect("audio/en/pm-invalid-option.wav");
    let silence = vec![0i16; 8000 * 3];
    let keys = tones();
    println!("in-band DTMF detection per 20 ms packet (reference: G.711 µ-law decode of it)");
    for (name, pcm) in [("silence", &silence), ("speech", &speech), ("dtmf", &keys)] {
        let mut encoded = Vec::new();
        g711::encode(Codec::Pcmu, pcm, &mut encoded);
        let rounds = 200;
        // Reference: decoding the packets.
        let mut out = Vec::with_capacity(160);
        let t0 = Instant::now();
        for _ in 0..rounds {
            for chunk in encoded.chunks(160) {
                out.clear();
                g711::decode(Codec::Pcmu, chunk, &mut out);
                std::hint::black_box(&out);
            }
        }
        let decode = t0.elapsed();
        // In-band detection of the decoded audio.
        let mut d = InbandDtmf::new();
        let (mut packets, mut found) = (0u64, 0u64);
        let t0 = Instant::now();
        for r in 0..rounds {
            for (i, chunk) in pcm.chunks(160).enumerate() {
                d.push(
                    t0 + Duration::from_millis(20 * (r * 10_000 + i) as u64),
                    chunk,
                );
                packets += 1;
                while d.poll_digit().is_some() {
                    found += 1;
                }
            }
        }
        let detect = t0.elapsed();
        let per = |d: Duration| d.as_nanos() as f64 / packets as f64;
        println!(
            "  {name:8}: {:7.0} ns/packet ({:.1}× the decode's {:.0} ns; {packets} packets, {found} keys)",
            per(detect),
            per(detect) / per(decode).max(1.0),
            per(decode)
        );
    }
}
