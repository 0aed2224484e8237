//! Answering-machine detection on real human recordings, through G.711 on a quiet line.
//!
//! People: the short human words of `tests/fixtures/speech/human/{en,ru}` (Asterisk en
//! Allison Smith, ru IvrvoiceRU: "hello", "goodbye", numbers, "today" …) and the `hello`
//! prompts, each as someone picking up, saying it, and waiting in silence; plus "Hello? …
//! hello?" twice with a pause.
//! Machines: greetings built from the longer human prompts of `audio/{en,ru}` ("hello" +
//! "to call this number…" + "please try your call later" …, 3.5–9 s with natural pauses),
//! followed by a 1 kHz beep of 500 ms, as a voicemail greeting.
//!
//! Audio goes through the detector in 20 ms packets on a virtual clock. The test prints the
//! confusion matrix and asserts accuracy ≥ 90 %, no person taken for a machine, and that
//! each machine's beep is found within 100 ms of its end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ivrflow::media::Codec;
use ivrflow::media::amd::{Amd, AmdConfig, AmdEvent, AmdVerdict, GreetingEnd};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(p: &Path) -> Vec<i16> {
    ivrflow::media::prompts::load_file(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn silence(ms: u32) -> Vec<i16> {
    vec![0; ms as usize * 8]
}

fn beep(ms: u32) -> Vec<i16> {
    (0..ms * 8)
        .map(|n| (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * n as f32 / 8000.0).sin()) as i16)
        .collect()
}

/// G.711 µ-law round trip plus faint line noise (about −55 dBFS), deterministic.
fn line(pcm: &[i16], seed: u32) -> Vec<i16> {
    let mut bytes = Vec::new();
    ivrflow::media::g711::encode(Codec::Pcmu, pcm, &mut bytes);
    let mut out = Vec::new();
    ivrflow::media::g711::decode(Codec::Pcmu, &bytes, &mut out);
    let mut x = seed | 1;
    for s in &mut out {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *s = s.saturating_add((x % 121) as i16 - 60);
    }
    out
}

struct Outcome {
    verdict: Option<AmdVerdict>,
    reason: &'static str,
    decided_ms: u64,
    end: Option<(u64, GreetingEnd)>,
}

fn detect(pcm: &[i16]) -> Outcome {
    let t0 = Instant::now();
    let mut amd = Amd::new(AmdConfig::default(), t0);
    let mut out = Outcome {
        verdict: None,
        reason: "",
        decided_ms: 0,
        end: None,
    };
    for (i, chunk) in pcm.chunks(160).enumerate() {
        let ms = 20 * (i as u64 + 1);
        amd.handle_audio(t0 + Duration::from_millis(ms), chunk);
        while let Some(e) = amd.poll_event() {
            match e {
                AmdEvent::Verdict {
                    verdict, reason, ..
                } => {
                    out.verdict = Some(verdict);
                    out.reason = reason;
                    out.decided_ms = ms;
                }
                AmdEvent::GreetingEnded(end) => out.end = Some((ms, end)),
            }
        }
        if amd.is_done() {
            break;
        }
    }
    out
}

struct Case {
    name: String,
    machine: bool,
    audio: Vec<i16>,
    /// For machines: when the beep ends (ms).
    beep_end: u64,
}

fn human_cases() -> Vec<Case> {
    let mut words: Vec<PathBuf> = Vec::new();
    for lang in ["en", "ru"] {
        let dir = root().join("tests/fixtures/speech/human").join(lang);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        files.sort();
        words.extend(files);
        words.push(root().join("audio").join(lang).join("hello.wav"));
    }
    let mut cases = Vec::new();
    for (i, p) in words.iter().enumerate() {
        let w = load(p);
        let audio = [silence(400), w, silence(5000)].concat();
        cases.push(Case {
            name: p.strip_prefix(root()).unwrap().display().to_string(),
            machine: false,
            audio: line(&audio, i as u32 + 1),
            beep_end: 0,
        });
    }
    // "Hello? … hello?"
    for lang in ["en", "ru"] {
        let h = load(&root().join("audio").join(lang).join("hello.wav"));
        let audio = [silence(300), h.clone(), silence(600), h, silence(5000)].concat();
        cases.push(Case {
            name: format!("{lang}: hello … hello"),
            machine: false,
            audio: line(&audio, 77),
            beep_end: 0,
        });
    }
    cases
}

fn machine_cases() -> Vec<Case> {
    // The longer human prompts (none of them synthetic: see audio/*/SYNTHETIC.txt).
    let parts: [(&str, &[&str]); 2] = [
        (
            "en",
            &[
                "pm-invalid-option",
                "to-call-this-number",
                "please-try-call-later",
                "pls-hold-while-try",
                "transfer",
                "vm-tocancel",
                "if-correct-press",
                "one-moment-please",
                "please-try-again",
            ],
        ),
        (
            "ru",
            &[
                "pm-invalid-option",
                "pls-hold-while-try",
                "please-try-again",
                "transfer",
                "to-call-this-number",
                "please-try-call-later",
                "if-correct-press",
                "vm-tocancel",
                "one-moment-please",
            ],
        ),
    ];
    let gaps = [180u32, 250, 320, 400];
    let mut cases = Vec::new();
    for (lang, names) in parts {
        let dir = root().join("audio").join(lang);
        let hello = load(&dir.join("hello.wav"));
        for i in 0..names.len() {
            let a = names[i];
            let b = names[(i + 1) % names.len()];
            let mut audio = silence(300);
            audio.extend(&hello);
            audio.extend(silence(gaps[i % 4]));
            audio.extend(load(&dir.join(format!("{a}.wav"))));
            audio.extend(silence(gaps[(i + 1) % 4]));
            audio.extend(load(&dir.join(format!("{b}.wav"))));
            let mut name = format!("{lang}: hello + {a} + {b}");
            if i % 3 == 0 {
                let c = names[(i + 3) % names.len()];
                audio.extend(silence(gaps[(i + 2) % 4]));
                audio.extend(load(&dir.join(format!("{c}.wav"))));
                name.push_str(&format!(" + {c}"));
            }
            audio.extend(silence(500));
            audio.extend(beep(500));
            let beep_end = (audio.len() / 8) as u64;
            audio.extend(silence(3000));
            cases.push(Case {
                name,
                machine: true,
                audio: line(&audio, 1000 + i as u32),
                beep_end,
            });
        }
    }
    cases
}

#[test]
fn amd_on_human_recordings_confusion_matrix() {
    let cases: Vec<Case> = human_cases().into_iter().chain(machine_cases()).collect();
    // rows: truth human, machine; columns: human, unknown, machine
    let mut m = [[0usize; 3]; 2];
    let mut wrong = Vec::new();
    let mut beeps = Vec::new();
    for c in &cases {
        let o = detect(&c.audio);
        let col = match o.verdict {
            Some(AmdVerdict::Human) => 0,
            Some(AmdVerdict::Unknown) | None => 1,
            Some(AmdVerdict::Machine) => 2,
        };
        m[usize::from(c.machine)][col] += 1;
        let right = if c.machine { col == 2 } else { col != 2 };
        println!(
            "{:5} {:55} → {:?} ({}) at {} ms{}",
            if right { "ok" } else { "WRONG" },
            c.name,
            o.verdict,
            o.reason,
            o.decided_ms,
            o.end
                .map(|(t, e)| format!(", greeting ended at {t} ms by {e:?}"))
                .unwrap_or_default()
        );
        if !right {
            wrong.push(c.name.clone());
        }
        if c.machine && col == 2 {
            match o.end {
                Some((t, GreetingEnd::Beep { .. })) if t.abs_diff(c.beep_end) <= 100 => {}
                other => beeps.push(format!(
                    "{}: beep ends {} ms, got {other:?}",
                    c.name, c.beep_end
                )),
            }
        }
    }
    let total = cases.len();
    let correct = m[0][0] + m[0][1] + m[1][2];
    println!("\n               → human  unknown  machine");
    println!(
        "human   ({:2})     {:5}  {:7}  {:7}",
        m[0].iter().sum::<usize>(),
        m[0][0],
        m[0][1],
        m[0][2]
    );
    println!(
        "machine ({:2})     {:5}  {:7}  {:7}",
        m[1].iter().sum::<usize>(),
        m[1][0],
        m[1][1],
        m[1][2]
    );
    println!(
        "accuracy {correct}/{total} = {:.1} % (unknown counts as human)",
        100.0 * correct as f64 / total as f64
    );
    assert!(total >= 20);
    assert!(m[1].iter().sum::<usize>() >= 10, "too few machine cases");
    assert_eq!(m[0][2], 0, "people taken for machines: {wrong:?}");
    assert!(
        correct * 100 >= total * 90,
        "accuracy {correct}/{total}; wrong: {wrong:?}"
    );
    assert!(
        beeps.is_empty(),
        "beeps missed or late:\n{}",
        beeps.join("\n")
    );
}
