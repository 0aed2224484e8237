//! Sample-rate conversion for prompt and caller audio: a windowed-sinc low-pass with a
//! polyphase table, run at load time (prompts to 8 kHz) and per utterance (8 → 16 kHz for
//! Whisper), never on the packet path.
//!
//! Not here: reading audio files (`prompts`), G.711 (`g711`).

pub(crate) fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

/// Half-width of the resampling kernel, in zero crossings of the cutoff sinc.
const ZERO_CROSSINGS: f64 = 32.0;
/// Cutoff as a fraction of the lower of the two Nyquist frequencies.
const CUTOFF: f64 = 0.92;
/// Largest polyphase table kept (coefficients); beyond it kernels are computed per sample.
const MAX_TABLE: usize = 1 << 20;

/// Converts mono samples from `from_hz` to `to_hz` with a windowed-sinc low-pass
/// (Blackman window, 32 zero crossings per side, cutoff 0.92 × the lower Nyquist frequency,
/// per-phase DC gain 1). Output length is `round(len × to / from)`. Meant for load time, not
/// for the packet path. Returns the input unchanged when the rates are equal or one is 0.
pub fn resample(pcm: &[i16], from_hz: u32, to_hz: u32) -> Vec<i16> {
    if from_hz == to_hz || from_hz == 0 || to_hz == 0 {
        return pcm.to_vec();
    }
    let input: Vec<f32> = pcm.iter().map(|&s| f32::from(s) / 32768.0).collect();
    to_i16(&resample_f32(&input, from_hz, to_hz))
}

pub(crate) fn resample_f32(input: &[f32], from_hz: u32, to_hz: u32) -> Vec<f32> {
    if from_hz == to_hz || from_hz == 0 || to_hz == 0 || input.is_empty() {
        return input.to_vec();
    }
    let g = gcd(from_hz, to_hz);
    // Output sample n sits at input position n·step/phases.
    let step = u64::from(from_hz / g);
    let phases = u64::from(to_hz / g);
    let out_len = ((input.len() as u64 * phases + step / 2) / step) as usize;
    // Cutoff relative to the input Nyquist frequency.
    let fc = CUTOFF * (f64::from(to_hz) / f64::from(from_hz)).min(1.0);
    let half_width = ZERO_CROSSINGS / fc;
    let reach = half_width.ceil() as i64;
    let taps = (2 * reach + 1) as usize;

    let kernel = |frac: f64, out: &mut [f32]| {
        let mut sum = 0.0f64;
        for (k, w) in out.iter_mut().enumerate() {
            let d = (k as i64 - reach) as f64 - frac;
            let v = if d.abs() >= half_width {
                0.0
            } else {
                let x = std::f64::consts::PI * d / half_width;
                let window = 0.42 + 0.5 * x.cos() + 0.08 * (2.0 * x).cos();
                fc * sinc(fc * d) * window
            };
            sum += v;
            *w = v as f32;
        }
        if sum != 0.0 {
            let norm = (1.0 / sum) as f32;
            out.iter_mut().for_each(|w| *w *= norm);
        }
    };

    let table: Option<Vec<f32>> = (phases as usize)
        .checked_mul(taps)
        .filter(|&n| n <= MAX_TABLE)
        .map(|n| {
            let mut t = vec![0.0f32; n];
            for (p, chunk) in t.chunks_mut(taps).enumerate() {
                kernel(p as f64 / phases as f64, chunk);
            }
            t
        });
    let mut scratch = vec![0.0f32; taps];
    let mut out = Vec::with_capacity(out_len);
    for n in 0..out_len as u64 {
        let pos = n * step;
        let centre = (pos / phases) as i64;
        let phase = (pos % phases) as usize;
        let weights: &[f32] = match &table {
            Some(t) => &t[phase * taps..(phase + 1) * taps],
            None => {
                kernel(phase as f64 / phases as f64, &mut scratch);
                &scratch
            }
        };
        let first = centre - reach;
        let lo = (-first).max(0) as usize;
        let hi = ((input.len() as i64 - first).min(taps as i64)).max(0) as usize;
        let mut acc = 0.0f32;
        if lo < hi {
            let start = (first + lo as i64) as usize;
            for (w, x) in weights[lo..hi].iter().zip(&input[start..start + (hi - lo)]) {
                acc += w * x;
            }
        }
        out.push(acc);
    }
    out
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
