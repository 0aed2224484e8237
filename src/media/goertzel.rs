//! In-band DTMF detection (ITU-T Q.23 frequencies, Q.24 acceptance limits) for carriers
//! that send keys only as audio.
//!
//! Method: 20 ms analysis windows (160 samples at 8 kHz) hopping every 10 ms, so any tone
//! of 40 ms or more fills at least two consecutive windows whatever its alignment. In each
//! window a Hann-windowed Goertzel filter measures the eight DTMF frequencies; the strongest
//! row and column tones must be loud enough, stand out from the other tones of their group
//! and from everything else in the window (talk-off protection: speech spreads its energy),
//! and respect the twist limits. The frequency of each of the two tones is then *measured*
//! from the phase advance of its DFT between the window's two 10 ms halves, which resolves
//! a few hertz: a tone within ±1.5 % of nominal is accepted, one more than 2.5 % off is
//! refused (Q.24 requires rejection beyond ±3.5 %). A key is reported when two consecutive
//! windows agree, once per press.
//!
//! Cost: no allocation per packet (the sample ring and the output queue are allocated once);
//! a window with too little energy for two valid tones (silence, most speech) is dismissed
//! after one pass over its samples, before any filter runs. Measured figures per 20 ms
//! packet are in `tests/dtmf_inband.rs` (`inband_cost_per_packet`).
//!
//! Sans-IO: samples in (with the instant of their first sample), digits out. It does not
//! decode G.711 (the caller's audio path does) or de-duplicate against RFC 4733 events
//! and SIP INFO (`super::dtmf_dedup` does that, in the call core).

use std::collections::VecDeque;
use std::f32::consts::PI;
use std::time::{Duration, Instant};

use super::dtmf::DtmfDigit;

const RATE: f32 = 8000.0;
const WINDOW: usize = 160;
const HOP: usize = 80;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Largest accepted frequency deviation (Q.24: accept ±1.5 %, reject beyond ±3.5 %).
const MAX_DEVIATION: f32 = 0.025;
/// Minimum Goertzel power per sample of each tone: a sine of peak 150 (about −44 dBm0).
const MIN_TONE_POWER: f32 = 2.25e5;
/// Twist limits in dB (high group relative to low group).
const MAX_NORMAL_TWIST_DB: f32 = 8.0;
const MAX_REVERSE_TWIST_DB: f32 = 8.0;
/// The strongest tone of a group must exceed the others of its group by this ratio (≈ 8 dB).
const GROUP_DOMINANCE: f32 = 6.3;
/// The two tones must carry this share of the window's energy.
const MIN_PURITY: f32 = 0.70;

/// Streaming in-band DTMF detector for one call.
#[derive(Debug)]
pub struct InbandDtmf {
    buf: VecDeque<i16>,
    /// Instant of `buf[0]`.
    buf_start: Option<Instant>,
    hann: [f32; WINDOW],
    /// Digit seen in the previous window (candidate), and whether it was already reported.
    last: Option<char>,
    reported: Option<char>,
    /// Windows since the last valid one (a press ends after two).
    quiet: u32,
    out: VecDeque<DtmfDigit>,
    /// `2·Σw² / (Σw)²`: windowed energy of a pure tone per unit of Goertzel power.
    tone_gain: f32,
    /// Least windowed energy two tones at [`MIN_TONE_POWER`] can have (with margin).
    min_total: f32,
}

impl Default for InbandDtmf {
    fn default() -> Self {
        Self::new()
    }
}

impl InbandDtmf {
    pub fn new() -> InbandDtmf {
        let mut hann = [0f32; WINDOW];
        for (i, w) in hann.iter_mut().enumerate() {
            *w = 0.5 - 0.5 * (2.0 * PI * i as f32 / (WINDOW as f32 - 1.0)).cos();
        }
        let w2: f32 = hann.iter().map(|w| w * w).sum();
        let w1: f32 = hann.iter().sum();
        let tone_gain = 2.0 * w2 / (w1 * w1);
        InbandDtmf {
            tone_gain,
            min_total: 0.5 * 2.0 * MIN_TONE_POWER * WINDOW as f32 * tone_gain,
            buf: VecDeque::with_capacity(WINDOW * 2),
            buf_start: None,
            hann,
            last: None,
            reported: None,
            quiet: 2,
            out: VecDeque::with_capacity(4),
        }
    }

    /// Feed decoded 8 kHz audio; `at` is the instant of its first sample.
    pub fn push(&mut self, at: Instant, samples: &[i16]) {
        if self.buf.is_empty() {
            self.buf_start = Some(at);
        }
        self.buf.extend(samples.iter().copied());
        while self.buf.len() >= WINDOW {
            let start = self.buf_start.unwrap_or(at);
            let (a, b) = self.buf.as_slices();
            let mut win = [0f32; WINDOW];
            for (i, s) in a.iter().chain(b.iter()).take(WINDOW).enumerate() {
                win[i] = f32::from(*s);
            }
            let digit = self.analyse(&win);
            self.step(digit, start);
            self.buf.drain(..HOP);
            self.buf_start = Some(start + Duration::from_micros(HOP as u64 * 125));
        }
    }

    /// The next detected key, if any.
    pub fn poll_digit(&mut self) -> Option<DtmfDigit> {
        self.out.pop_front()
    }

    fn step(&mut self, digit: Option<char>, window_start: Instant) {
        match digit {
            Some(d) => {
                let confirmed = self.last == Some(d);
                self.last = Some(d);
                self.quiet = 0;
                if confirmed && self.reported != Some(d) {
                    self.reported = Some(d);
                    // The tone began one hop before the first of the two agreeing windows.
                    let at = window_start - Duration::from_micros(HOP as u64 * 125);
                    self.out.push_back(DtmfDigit {
                        digit: d,
                        at,
                        duration_ms: 40,
                    });
                }
            }
            None => {
                self.last = None;
                self.quiet += 1;
                if self.quiet >= 2 {
                    self.reported = None;
                }
            }
        }
    }

    /// The key present in one window, if a valid tone pair is there.
    fn analyse(&self, win: &[f32; WINDOW]) -> Option<char> {
        let mut windowed = [0f32; WINDOW];
        let mut total = 0f32;
        for i in 0..WINDOW {
            windowed[i] = win[i] * self.hann[i];
            total += windowed[i] * windowed[i];
        }
        // Too little energy in the whole window for two tones at the minimum level: the
        // common case (silence, quiet speech) stops here, before any filter runs.
        if total <= 0.0 || total < self.min_total {
            return None;
        }
        let rp = ROWS.map(|f| goertzel_power(&windowed, f));
        let cp = COLS.map(|f| goertzel_power(&windowed, f));
        let (ri, rmax) = argmax(&rp);
        let (ci, cmax) = argmax(&cp);
        if rmax < MIN_TONE_POWER * WINDOW as f32 || cmax < MIN_TONE_POWER * WINDOW as f32 {
            return None;
        }
        // Each tone must dominate its own group.
        if rp
            .iter()
            .enumerate()
            .any(|(i, &p)| i != ri && p * GROUP_DOMINANCE > rmax)
            || cp
                .iter()
                .enumerate()
                .any(|(i, &p)| i != ci && p * GROUP_DOMINANCE > cmax)
        {
            return None;
        }
        // Twist.
        let twist_db = 10.0 * (cmax / rmax).log10();
        if twist_db > MAX_NORMAL_TWIST_DB || -twist_db > MAX_REVERSE_TWIST_DB {
            return None;
        }
        // Purity: the energy of a pure sine of Goertzel power P over a Hann window is about
        // P · 2 / (N · Σw²/N)… normalise with the window's own gain.
        let tone_energy = |p: f32| p * self.tone_gain;
        let purity = (tone_energy(rmax) + tone_energy(cmax)) / total;
        if purity < MIN_PURITY {
            return None;
        }
        // Measured frequencies within the deviation limit.
        if !frequency_ok(win, ROWS[ri]) || !frequency_ok(win, COLS[ci]) {
            return None;
        }
        Some(KEYS[ri][ci])
    }
}

fn argmax(v: &[f32]) -> (usize, f32) {
    v.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

/// Squared magnitude of the DFT of `x` at `freq` (Goertzel recurrence).
fn goertzel_power(x: &[f32], freq: f32) -> f32 {
    let w = 2.0 * PI * freq / RATE;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f32, 0f32);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Complex DFT of `x` at `freq`, with phase referenced to `x[0]`.
fn dft(x: &[f32], freq: f32) -> (f32, f32) {
    let w = 2.0 * PI * freq / RATE;
    let (mut re, mut im) = (0f32, 0f32);
    for (n, &v) in x.iter().enumerate() {
        let a = w * n as f32;
        re += v * a.cos();
        im -= v * a.sin();
    }
    (re, im)
}

/// Measure the tone's frequency from the phase advance between the two halves of the
/// window and compare it with `nominal`.
fn frequency_ok(win: &[f32; WINDOW], nominal: f32) -> bool {
    let half = WINDOW / 2;
    let (r1, i1) = dft(&win[..half], nominal);
    let (r2, i2) = dft(&win[half..], nominal);
    // Phase of X2·conj(X1), less the advance a tone exactly at `nominal` would make.
    let cross_re = r2 * r1 + i2 * i1;
    let cross_im = i2 * r1 - r2 * i1;
    let measured = cross_im.atan2(cross_re);
    let expected = 2.0 * PI * nominal * half as f32 / RATE;
    let mut dphi = measured - expected;
    while dphi > PI {
        dphi -= 2.0 * PI;
    }
    while dphi <= -PI {
        dphi += 2.0 * PI;
    }
    let offset_hz = dphi * RATE / (2.0 * PI * half as f32);
    (offset_hz / nominal).abs() <= MAX_DEVIATION
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key as two sines, each at `amp` (peak), `dev` relative frequency deviation.
    fn tone(key: char, ms: u32, amp: f32, dev: f32, twist_db: f32) -> Vec<i16> {
        let (r, c) = KEYS
            .iter()
            .enumerate()
            .find_map(|(r, row)| row.iter().position(|&k| k == key).map(|c| (r, c)))
            .unwrap();
        let (fr, fc) = (ROWS[r] * (1.0 + dev), COLS[c] * (1.0 + dev));
        let ac = amp * 10f32.powf(twist_db / 20.0);
        (0..ms * 8)
            .map(|n| {
                let t = n as f32 / RATE;
                (amp * (2.0 * PI * fr * t).sin() + ac * (2.0 * PI * fc * t).sin()) as i16
            })
            .collect()
    }

    fn silence(ms: u32) -> Vec<i16> {
        vec![0; (ms * 8) as usize]
    }

    fn detect(audio: &[i16]) -> Vec<char> {
        let t0 = Instant::now();
        let mut d = InbandDtmf::new();
        // Feed as 20 ms RTP payloads.
        for (i, chunk) in audio.chunks(160).enumerate() {
            d.push(t0 + Duration::from_millis(20 * i as u64), chunk);
        }
        let mut out = Vec::new();
        while let Some(k) = d.poll_digit() {
            out.push(k.digit);
        }
        out
    }

    const ALL: &str = "123A456B789C*0#D";

    #[test]
    fn every_key_at_nominal_frequency_and_40_ms() {
        let mut audio = silence(30);
        for k in ALL.chars() {
            audio.extend(tone(k, 40, 6000.0, 0.0, 0.0));
            audio.extend(silence(40));
        }
        assert_eq!(detect(&audio).into_iter().collect::<String>(), ALL);
    }

    #[test]
    fn q24_accepts_1_5_percent_and_rejects_3_5_percent_deviation() {
        for dev in [0.015f32, -0.015] {
            for k in ALL.chars() {
                let mut a = silence(15);
                a.extend(tone(k, 60, 6000.0, dev, 0.0));
                a.extend(silence(40));
                assert_eq!(detect(&a), vec![k], "key {k} at {dev:+}");
            }
        }
        for dev in [0.035f32, -0.035] {
            for k in ALL.chars() {
                let mut a = silence(15);
                a.extend(tone(k, 60, 6000.0, dev, 0.0));
                a.extend(silence(40));
                assert!(detect(&a).is_empty(), "key {k} at {dev:+} must be rejected");
            }
        }
    }

    #[test]
    fn one_report_per_press_and_repeats_after_a_gap() {
        let mut a = tone('5', 300, 6000.0, 0.0, 0.0);
        a.extend(silence(60));
        a.extend(tone('5', 50, 6000.0, 0.0, 0.0));
        a.extend(silence(60));
        assert_eq!(detect(&a), vec!['5', '5']);
    }

    #[test]
    fn twist_noise_and_level_limits() {
        // 6 dB twist either way is accepted; 12 dB is not.
        assert_eq!(
            detect(&[tone('9', 60, 4000.0, 0.0, 6.0), silence(40)].concat()),
            vec!['9']
        );
        assert_eq!(
            detect(&[tone('9', 60, 8000.0, 0.0, -6.0), silence(40)].concat()),
            vec!['9']
        );
        assert!(detect(&[tone('9', 60, 2000.0, 0.0, 12.0), silence(40)].concat()).is_empty());
        // Quiet but valid (about −30 dBm0) is accepted; far below is not.
        assert_eq!(
            detect(&[tone('0', 60, 500.0, 0.0, 0.0), silence(40)].concat()),
            vec!['0']
        );
        assert!(detect(&[tone('0', 60, 40.0, 0.0, 0.0), silence(40)].concat()).is_empty());
        // White-ish noise at about 20 dB SNR does not stop it.
        let mut x: u32 = 12345;
        let noisy: Vec<i16> = tone('#', 80, 6000.0, 0.0, 0.0)
            .into_iter()
            .map(|s| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                s.saturating_add(((x % 1200) as i16) - 600)
            })
            .collect();
        assert_eq!(detect(&[noisy, silence(40)].concat()), vec!['#']);
    }

    #[test]
    fn a_single_tone_is_not_a_key() {
        let a: Vec<i16> = (0..800)
            .map(|n| (8000.0 * (2.0 * PI * 852.0 * n as f32 / RATE).sin()) as i16)
            .collect();
        assert!(detect(&a).is_empty());
    }

    /// Talk-off: real human speech (the bundled Asterisk prompts) must not produce keys.
    #[test]
    fn human_speech_does_not_talk_off() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("audio");
        let mut files = 0;
        let mut false_keys = Vec::new();
        for lang in ["en", "ru"] {
            let mut stack = vec![root.join(lang)];
            while let Some(dir) = stack.pop() {
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == "wav") {
                        let pcm = crate::media::prompts::load_file(&p).unwrap();
                        files += 1;
                        let keys = detect(&pcm);
                        if !keys.is_empty() {
                            false_keys.push(format!("{}: {keys:?}", p.display()));
                        }
                    }
                }
            }
        }
        assert!(files > 100, "only {files} recordings found");
        assert!(
            false_keys.is_empty(),
            "talk-off in {} of {files} recordings:\n{}",
            false_keys.len(),
            false_keys.join("\n")
        );
    }
}
