//! Voice-activity detectors measured on real speech: the human recordings of
//! `tests/fixtures/speech` (Asterisk en/ru), through G.711, embedded in line noise at three
//! levels. Frames are labelled speech where the clean recording is within 30 dB of its
//! loudest frame. For each detector (earshot, energy+ZCR) the test prints the frame recall,
//! the false-alarm rate on noise-only frames, and how many utterances the endpointer
//! delivered whole; it checks that the default detector is the better one here and meets
//! absolute floors.

use std::time::{Duration, Instant};

use ivrflow::asr::through_line;
use ivrflow::media::Codec;
use ivrflow::media::vad::{EndpointConfig, EndpointEvent, Endpointer, FRAME, Vad, VadKind};

struct Clip {
    pcm: Vec<i16>,
    /// Per 20 ms frame of `pcm`: speech or not.
    labels: Vec<bool>,
}

fn clips() -> Vec<Clip> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech");
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    manifest
        .lines()
        .filter(|l| l.contains("asterisk"))
        .map(|l| {
            let file = l.split('\t').next().unwrap();
            let pcm = ivrflow::media::prompts::load_file(&dir.join(file)).unwrap();
            let level: Vec<f32> = pcm
                .chunks(FRAME)
                .map(ivrflow::media::prompts::rms_dbfs)
                .collect();
            let peak = level.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let labels = level
                .iter()
                .map(|&l| l > peak - 30.0 && l > -55.0)
                .collect();
            Clip { pcm, labels }
        })
        .collect()
}

/// Deterministic white noise at `db` dBFS RMS plus a 50 Hz hum 6 dB below it.
fn noise(n: usize, db: f32, seed: &mut u64) -> Vec<i16> {
    let amp = 32768.0 * 10f32.powf(db / 20.0);
    (0..n)
        .map(|i| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0;
            let hum = (2.0 * std::f32::consts::PI * 50.0 * i as f32 / 8000.0).sin() * 0.5;
            ((u * 1.732 + hum) * amp) as i16
        })
        .collect()
}

#[derive(Default, Debug)]
struct Score {
    speech: usize,
    hits: usize,
    quiet: usize,
    false_alarms: usize,
    utterances: usize,
    whole: usize,
}

fn measure(kind: VadKind, noise_db: f32) -> Score {
    let mut s = Score::default();
    let mut seed = 42;
    for (k, clip) in clips().iter().enumerate() {
        let lead = 40; // frames of noise before and after
        let mut audio = noise(lead * FRAME, noise_db, &mut seed);
        let mut labels = vec![false; lead];
        let body = noise(clip.pcm.len(), noise_db, &mut seed);
        audio.extend(
            clip.pcm
                .iter()
                .zip(&body)
                .map(|(&a, &b)| a.saturating_add(b)),
        );
        labels.extend(&clip.labels);
        audio.extend(noise(2 * lead * FRAME, noise_db, &mut seed));
        labels.extend(std::iter::repeat_n(false, 2 * lead));
        let codec = if k % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
        let line = through_line(&audio, codec);
        // Frame level.
        let mut vad = Vad::new(kind);
        for (frame, &label) in line.chunks(FRAME).zip(&labels) {
            let said = vad.is_speech(frame);
            if label {
                s.speech += 1;
                s.hits += usize::from(said);
            } else {
                s.quiet += 1;
                s.false_alarms += usize::from(said);
            }
        }
        // Utterance level: one utterance that covers every labelled frame.
        let mut ep = Endpointer::new(EndpointConfig::default(), kind);
        let t0 = Instant::now();
        let mut got = Vec::new();
        for (i, frame) in line.chunks(FRAME).enumerate() {
            ep.handle_audio(t0 + Duration::from_millis(20 * i as u64), frame);
            while let Some(e) = ep.poll_event() {
                if let EndpointEvent::Utterance { audio, .. } = e {
                    got.push(audio);
                }
            }
        }
        s.utterances += 1;
        let speech_frames = clip.labels.iter().filter(|&&l| l).count();
        if got.len() == 1 && got[0].len() >= speech_frames * FRAME {
            s.whole += 1;
        }
    }
    s
}

#[test]
fn default_vad_is_the_better_one_on_real_speech_in_line_noise() {
    let mut totals = Vec::new();
    println!(
        "{:<8} {:>9} {:>9} {:>12} {:>16}",
        "vad", "noise", "recall", "false alarm", "whole utterances"
    );
    for kind in [VadKind::Earshot, VadKind::Energy] {
        let mut sum = 0.0;
        for db in [-60.0, -45.0, -35.0] {
            let s = measure(kind, db);
            let recall = s.hits as f64 / s.speech as f64;
            let fa = s.false_alarms as f64 / s.quiet as f64;
            let whole = s.whole as f64 / s.utterances as f64;
            println!(
                "{:<8} {:>6} dB {:>8.1}% {:>11.1}% {:>10}/{:<5}",
                format!("{kind:?}"),
                db,
                100.0 * recall,
                100.0 * fa,
                s.whole,
                s.utterances
            );
            // One number per detector: whole utterances count most, false alarms cost.
            sum += whole + 0.5 * recall - fa;
        }
        totals.push((kind, sum));
    }
    println!("scores: {totals:?}; default: {:?}", VadKind::default());
    let score = |k| {
        totals
            .iter()
            .find(|(x, _)| *x == k)
            .map(|(_, s)| *s)
            .unwrap()
    };
    assert!(
        score(VadKind::default()) >= totals.iter().map(|(_, s)| *s).fold(f64::MIN, f64::max) - 1e-9,
        "the default VAD is not the best measured: {totals:?}"
    );
    let s = measure(VadKind::default(), -45.0);
    assert!(s.whole * 10 >= s.utterances * 9, "{s:?}");
}
