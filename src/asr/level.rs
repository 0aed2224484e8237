//! Level normalisation of the caller's audio, sans-IO.
//!
//! Callers differ by 30 dB: a headset close to the mouth peaks near full scale, a phone held
//! away or a soft voice at −30 dBFS (two of the six FSDD speakers of the held-out set peak
//! at −31 and −23 dBFS, as did two of the English callers of issue 16). Both the voice
//! detector and Whisper were tuned on speech at ordinary levels: the detector's absolute
//! energy gate (−55 dBFS) drops the quiet ones' softer syllables, and Whisper's log-mel
//! features are not level-invariant (its clamp is relative to the loudest bin, but its
//! offset is absolute), so it mishears quiet speech more often.
//!
//! - [`Agc`]: a slow automatic gain control for the line, before the voice detector: it
//!   follows the level of what is louder than the line's noise floor and raises quiet
//!   speech towards [`AGC_TARGET_DB`], never by more than [`AGC_MAX_GAIN_DB`] and never so
//!   far that the noise floor rises above [`AGC_FLOOR_CEILING_DB`] (amplified hiss must not
//!   look like speech). It never attenuates.
//! - [`normalize_peak`]: the utterance itself brought to a fixed peak before Whisper
//!   (bounded gain, for the same reason).

/// Level the AGC aims speech at (frame RMS, dBFS).
pub const AGC_TARGET_DB: f32 = -26.0;
/// Most gain the AGC applies.
pub const AGC_MAX_GAIN_DB: f32 = 24.0;
/// The AGC keeps the amplified noise floor below this.
pub const AGC_FLOOR_CEILING_DB: f32 = -52.0;

fn frame_db(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let sum: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (sum / frame.len() as f64).sqrt();
    if rms < 1.0 {
        -100.0
    } else {
        (20.0 * (rms / 32768.0).log10()) as f32
    }
}

fn db_to_gain(db: f32) -> f32 {
    10f32.powf(db / 20.0)
}

/// Slow AGC for 8 kHz line audio in frames (any length; 20 ms expected).
#[derive(Debug, Clone)]
pub struct Agc {
    /// Noise floor estimate, dBFS.
    floor_db: f32,
    /// Level of recent speech (frames well over the floor), dBFS; None until some is heard.
    speech_db: Option<f32>,
    /// Gain in dB applied now (moves smoothly towards the wanted gain).
    gain_db: f32,
}

impl Default for Agc {
    fn default() -> Self {
        Agc {
            floor_db: -70.0,
            speech_db: None,
            gain_db: 0.0,
        }
    }
}

impl Agc {
    /// The gain the AGC applies now, in dB.
    pub fn gain_db(&self) -> f32 {
        self.gain_db
    }

    /// Forget what was learnt about the caller's level (a new call).
    pub fn reset(&mut self) {
        *self = Agc::default();
    }

    /// The gain (dB) wanted for what is known of the line.
    fn wanted(&self) -> f32 {
        // Before any speech: as much as the noise floor allows, so that a soft first
        // answer is not lost to the detector; then whatever brings speech to the target.
        let by_floor = AGC_FLOOR_CEILING_DB - self.floor_db;
        let by_speech = self
            .speech_db
            .map_or(AGC_MAX_GAIN_DB, |s| AGC_TARGET_DB - s);
        by_speech.min(by_floor).clamp(0.0, AGC_MAX_GAIN_DB)
    }

    /// Amplifies `frame` in place and learns from it.
    pub fn process(&mut self, frame: &mut [i16]) {
        let db = frame_db(frame);
        // Noise floor: follows quiet frames quickly, loud ones very slowly.
        if db < self.floor_db {
            self.floor_db += (db - self.floor_db) * 0.3;
        } else {
            self.floor_db += (db - self.floor_db).min(6.0) * 0.004;
        }
        if db > self.floor_db + 15.0 && db > -65.0 {
            // Speech: a peak-following level (fast attack, slow release).
            self.speech_db = Some(match self.speech_db {
                None => db,
                Some(s) if db > s => s + (db - s) * 0.5,
                Some(s) => s + (db - s) * 0.02,
            });
        }
        let wanted = self.wanted();
        // Gain changes by at most 1 dB per frame down, 0.25 dB up: no pumping within a word.
        let step = (wanted - self.gain_db).clamp(-1.0, 0.25);
        self.gain_db += step;
        if self.gain_db <= 0.01 {
            return;
        }
        let g = db_to_gain(self.gain_db);
        for s in frame.iter_mut() {
            *s = (f32::from(*s) * g).round().clamp(-32768.0, 32767.0) as i16;
        }
    }
}

/// Peak level [`normalize_peak`] brings an utterance to, dBFS.
pub const PEAK_TARGET_DB: f32 = -3.0;
/// Most gain [`normalize_peak`] applies, dB.
pub const PEAK_MAX_GAIN_DB: f32 = 30.0;

/// Scales `samples` ([-1, 1]) so that its peak is at [`PEAK_TARGET_DB`], with at most
/// [`PEAK_MAX_GAIN_DB`] of gain; never attenuates. The peak is the 99.9th percentile of
/// |sample|, so one click does not decide the gain. Returns the gain applied (dB).
pub fn normalize_peak(samples: &mut [f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut mags: Vec<f32> = samples.iter().map(|s| s.abs()).collect();
    let k = ((mags.len() as f64) * 0.999) as usize;
    let k = k.min(mags.len() - 1);
    let (_, peak, _) = mags.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    let peak = *peak;
    if peak <= 0.0 {
        return 0.0;
    }
    let gain_db = (PEAK_TARGET_DB - 20.0 * peak.log10()).clamp(0.0, PEAK_MAX_GAIN_DB);
    if gain_db > 0.01 {
        let g = db_to_gain(gain_db);
        for s in samples.iter_mut() {
            *s = (*s * g).clamp(-1.0, 1.0);
        }
    }
    gain_db
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(n: usize, amp: f32) -> Vec<i16> {
        (0..n)
            .map(|i| ((i as f32 * 0.25).sin() * amp) as i16)
            .collect()
    }

    fn noise(n: usize, amp: i16, seed: &mut u32) -> Vec<i16> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((*seed >> 16) as i16) / (i16::MAX / amp.max(1))
            })
            .collect()
    }

    #[test]
    fn quiet_speech_is_raised_and_loud_speech_left_alone() {
        let mut seed = 1;
        // -60 dBFS line noise, then speech at about -44 dBFS RMS.
        let mut agc = Agc::default();
        for _ in 0..50 {
            let mut f = noise(160, 32, &mut seed);
            agc.process(&mut f);
        }
        let mut peak_out = 0i32;
        for _ in 0..100 {
            let mut f = tone(160, 300.0);
            agc.process(&mut f);
            peak_out = peak_out.max(f.iter().map(|&s| i32::from(s).abs()).max().unwrap());
        }
        assert!(agc.gain_db() > 6.0, "{}", agc.gain_db());
        assert!(peak_out > 900, "{peak_out}");
        // Loud speech: no gain at all.
        let mut agc = Agc::default();
        for _ in 0..100 {
            let mut f = tone(160, 16000.0);
            let before = f.clone();
            agc.process(&mut f);
            assert_eq!(f, before);
        }
    }

    #[test]
    fn noise_is_not_raised_past_the_ceiling() {
        let mut seed = 7;
        let mut agc = Agc::default();
        let mut out_db = -100.0f32;
        for _ in 0..500 {
            let mut f = noise(160, 32, &mut seed);
            agc.process(&mut f);
            out_db = frame_db(&f);
        }
        assert!(out_db <= AGC_FLOOR_CEILING_DB + 3.0, "{out_db}");
    }

    #[test]
    fn peak_normalisation_is_bounded() {
        let mut s = vec![0.01f32; 1000];
        s[10] = 0.02;
        let g = normalize_peak(&mut s);
        assert!(
            (g - (PEAK_TARGET_DB + 40.0)).abs() < 0.5 || g == PEAK_MAX_GAIN_DB,
            "{g}"
        );
        let mut loud = vec![0.9f32; 100];
        assert_eq!(normalize_peak(&mut loud), 0.0);
        let mut silent = vec![0.0f32; 100];
        assert_eq!(normalize_peak(&mut silent), 0.0);
    }
}
