//! Held-out voices: closed-answer accuracy on recordings of people who are not the voices of
//! our prompts, judged by the product's own acceptance rule. A gate: it fails below the bar.
//!
//! `tests/fixtures/speech/heldout/manifest.tsv` lists each utterance (file, language,
//! speaker, question, expected answer, words). Speakers ending in `-prompts` are the studio
//! voices that also speak the prompts (the Asterisk sets of `tests/asr_accuracy.rs`, and
//! Tetyana Ivankova, whose Ukrainian set became our Ukrainian prompts): they are reported
//! beside the others, with a regression bar, but are not held out. Everything else is:
//! six English speakers of the Free Spoken Digit Dataset (their official test split). No
//! Russian or Ukrainian recording of anyone else could be found under a licence that
//! allows shipping it. See `tests/fixtures/speech/ATTRIBUTION.md`.
//!
//! Each utterance goes the way a caller's does on a real call: 8 kHz, G.711 µ-law or A-law
//! (alternately) encoded and decoded, 20 ms frames between stretches of quiet line noise,
//! into the call's [`Listener`] (the endpointer with the node's timers, the speculative
//! recognition, holding a transcript that names nothing), recognised by the default model
//! with the question's phrases, and judged by [`ivrflow::nlu::verdict`] — the dialogue's
//! rule: taken only when min(recogniser confidence, match score) ≥ the node's `confidence`
//! ([`ivrflow::nlu::DEFAULT_THRESHOLD`], 0.6). Each answer is counted as
//! - **right**: the expected intent is taken without asking again (for an out-of-grammar
//!   answer: nothing is taken);
//! - **wrong accepted**: another intent is taken without a read-back — the failure that must
//!   never happen;
//! - **re-asked**: anything else (no-match, no speech found, a read-back of an unsure
//!   answer, right or wrong).
//!
//! Deterministic: fixed noise seed, greedy decoding, virtual time; the decode time is
//! printed, not judged (timing lives in `benches/asr.rs`). Needs `./scripts/setup.sh`
//! (the models); fails without them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ivrflow::asr::listen::{ListenEvent, Listener};
use ivrflow::asr::whisper::{DecodeOptions, WhisperModel, WhisperRecognizer};
use ivrflow::asr::{Recognizer, through_line};
use ivrflow::dialogue::{Input, ListenSpec};
use ivrflow::media::Codec;
use ivrflow::media::vad::{FRAME, VadKind};
use ivrflow::nlu::{DEFAULT_THRESHOLD, Verdict};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech")
}

fn model(name: &str) -> WhisperModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    WhisperModel::load(&path).unwrap_or_else(|e| {
        panic!("{e}\n(the speech tests need the models: run ./scripts/setup.sh)")
    })
}

/// The intents of a question kind in `lang`, as a scenario lists them.
fn question(q: &str, lang: &str) -> Vec<(String, Vec<String>)> {
    let pick = |en: &[&str], ru: &[&str], uk: &[&str]| -> Vec<String> {
        match lang {
            "ru" => ru,
            "uk" => uk,
            _ => en,
        }
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let numbers = |ns: &mut dyn Iterator<Item = u32>| -> Vec<(String, Vec<String>)> {
        ns.map(|n| (format!("n{n}"), vec![n.to_string()])).collect()
    };
    match q {
        "confirm" => vec![
            (
                "confirm".into(),
                pick(
                    &["yes", "correct", "1"],
                    &["да", "верно", "1"],
                    &["так", "вірно", "1"],
                ),
            ),
            (
                "cancel".into(),
                pick(
                    &["no", "cancel", "2"],
                    &["нет", "отмена", "2"],
                    &["ні", "скасувати", "2"],
                ),
            ),
            (
                "repeat".into(),
                pick(&["repeat"], &["повторите"], &["повторіть"]),
            ),
            (
                "operator".into(),
                pick(&["operator"], &["оператор"], &["оператор"]),
            ),
        ],
        "digit" => (0..10)
            .map(|d| (format!("d{d}"), vec![d.to_string()]))
            .collect(),
        // "How many …?": 10–20 and the tens.
        "number" => numbers(&mut (10..=20).chain((3..=9).map(|t| t * 10))),
        // "Which day of the month?"
        "dom" => numbers(&mut (1..=31)),
        "day" => vec![
            (
                "today".into(),
                pick(&["today"], &["сегодня"], &["сьогодні"]),
            ),
            (
                "tomorrow".into(),
                pick(&["tomorrow"], &["завтра"], &["завтра"]),
            ),
        ],
        other => panic!("manifest names an unknown question {other}"),
    }
}

struct Row {
    file: String,
    lang: String,
    speaker: String,
    question: String,
    expected: String,
}

impl Row {
    fn held_out(&self) -> bool {
        !self.speaker.ends_with("-prompts")
    }
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("heldout/manifest.tsv"))
        .expect("tests/fixtures/speech/heldout/manifest.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 5, "manifest line {l:?}");
            Row {
                file: f[0].into(),
                lang: f[1].into(),
                speaker: f[2].into(),
                question: f[3].into(),
                expected: f[4].into(),
            }
        })
        .collect()
}

/// Quiet line noise (about -60 dBFS), deterministic.
fn noise(ms: usize, seed: &mut u32) -> Vec<i16> {
    (0..ms * 8)
        .map(|_| {
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((*seed >> 16) as i16) / 1000
        })
        .collect()
}

/// What the dialogue got from the speech path for one answer.
#[derive(Debug)]
enum Heard {
    Utterance {
        text: String,
        confidence: f32,
    },
    Unrecognised,
    /// The endpointer found no utterance (the caller would hear the no-input reprompt).
    Nothing,
}

/// One answer through the call's listener on a virtual clock: 600 ms of line noise, the
/// answer, then noise until the listener has delivered (or 4 s). Recognition runs at once
/// when asked (as if the worker were idle).
fn listen(
    rec: &mut WhisperRecognizer,
    line: &[i16],
    spec: &ListenSpec,
    seed: &mut u32,
    decode: &mut Duration,
    agc: bool,
    latency: &mut Option<Duration>,
) -> Heard {
    // End of speech → the answer known, for one idle worker: the later of the endpointer's
    // verdict (virtual time) and the recognition's start (virtual) plus its decode (wall).
    let mut asked: Option<(Instant, Duration)> = None;
    let mut speech_end: Option<Instant> = None;
    let mut answered = |now: Instant, asked: Option<(Instant, Duration)>, end: Option<Instant>| {
        if let Some(end) = end {
            let verdict = now.saturating_duration_since(end);
            let decoded = asked.map_or(Duration::ZERO, |(at, d)| {
                at.saturating_duration_since(end) + d
            });
            *latency = Some(verdict.max(decoded));
        }
    };
    let mut listener = Listener::new(VadKind::default());
    listener.set_agc(agc);
    let mut audio = noise(600, seed);
    audio.extend_from_slice(line);
    audio.extend(noise(4000, seed));
    let t0 = Instant::now();
    for (i, frame) in audio.chunks(FRAME).enumerate() {
        let now = t0 + Duration::from_millis(20 * i as u64);
        if listener.poll_timeout().is_some_and(|t| t <= now) {
            listener.handle_timeout(now);
        }
        listener.handle_audio(now, frame, Some(spec), false);
        while let Some(ev) = listener.poll_event() {
            match ev {
                ListenEvent::Recognize {
                    id,
                    audio,
                    lang,
                    phrases,
                } => {
                    let started = Instant::now();
                    let result = rec
                        .recognize(&audio, &lang, &phrases)
                        .map_err(|e| e.to_string());
                    let took = started.elapsed();
                    *decode += took;
                    asked = Some((now, took));
                    listener.handle_result(now, id, result);
                }
                ListenEvent::Recognised(r) => speech_end = Some(r.speech_end),
                ListenEvent::Cancel { .. } | ListenEvent::Save { .. } => {}
                ListenEvent::Input(Input::Utterance { text, confidence }) => {
                    answered(now, asked, speech_end);
                    return Heard::Utterance { text, confidence };
                }
                ListenEvent::Input(Input::SpeechUnrecognised) => {
                    answered(now, asked, speech_end);
                    return Heard::Unrecognised;
                }
                ListenEvent::Input(_) => {}
            }
        }
    }
    Heard::Nothing
}

#[derive(Default, Clone, Copy)]
struct Tally {
    right: usize,
    wrong: usize,
    reasked: usize,
}

impl Tally {
    fn n(&self) -> usize {
        self.right + self.wrong + self.reasked
    }
    fn rate(&self) -> f64 {
        self.right as f64 / self.n().max(1) as f64
    }
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Right => self.right += 1,
            Outcome::WrongAccepted => self.wrong += 1,
            Outcome::Reasked => self.reasked += 1,
        }
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>3}/{:<3} = {:5.1} %   wrong accepted {:>2}   re-asked {:>3}",
            self.right,
            self.n(),
            100.0 * self.rate(),
            self.wrong,
            self.reasked
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Right,
    WrongAccepted,
    Reasked,
}

/// Bars of the gate, per row of the "by language" table (right answers, taken without
/// asking again): the held-out English voices, and the Ukrainian prompt voice as a
/// regression floor (there is no held-out Ukrainian or Russian voice). Set just under what
/// the shipped configuration measures (docs/speech.md), so a regression fails the build.
/// The target is 95 %: not reached with Whisper base.
const BAR: &[(&str, f64)] = &[("en", 0.85), ("uk (prompt voice)", 0.75)];

/// Wrong answers taken without a read-back that the gate tolerates: one, FSDD nicolas's
/// first "eight", which Whisper base hears as "three" both ways — the free transcript says
/// "Three" and the scores put "three" 8 times ahead of anything else (docs/speech.md: the
/// model's error, not the decision's). Any other wrong acceptance fails the build.
const MAX_WRONG: usize = 1;

/// whisper.cpp's threads spin while they wait for each other: two decodes at once on two
/// cores slow each other down many times over. The tests of this file take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Ukrainian voice saying ordinals («перший» … «двадцятий», «тридцятий»), recognised as
/// an open answer through G.711 and read by `nlu::dates::day_of_month`: the building block
/// of a "day of month" answer, end to end.
#[test]
fn ukrainian_ordinals_read_as_days_of_the_month() {
    let _turn = turn();
    let model = model("ggml-base-q8_0.bin");
    let mut rec = model.recognizer(DecodeOptions::default());
    let mut right = 0;
    let days: Vec<u32> = (1..=20).chain([30]).collect();
    for (i, day) in days.iter().enumerate() {
        let file = fixtures().join(format!("heldout/uk-ivankova/h-{day}.wav"));
        let pcm = ivrflow::media::prompts::load_file(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let codec = if i % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
        let t = rec
            .recognize(&through_line(&pcm, codec), "uk", &[])
            .expect("recognize");
        let got = ivrflow::nlu::dates::day_of_month(&t.text, "uk");
        right += usize::from(got == Some(*day));
        println!(
            "{} h-{day:<3} {:?} → {got:?}",
            if got == Some(*day) { "ok  " } else { "MISS" },
            t.text
        );
    }
    println!("ordinal days read right: {right}/{}", days.len());
    assert!(
        right * 100 >= days.len() * ORDINALS_BAR,
        "{right}/{} ordinals read as the right day; the bar is {ORDINALS_BAR} %",
        days.len()
    );
}

/// Bar of the ordinal test, per cent: measured 4/21 (19 %). Whisper base writes most
/// Ukrainian ordinals as non-words («Дигетначаті» for «дев'ятнадцятий»): the model's limit;
/// the test proves the path end to end and catches a regression of the parsing.
const ORDINALS_BAR: usize = 15;

#[test]
fn heldout_voices_closed_answers_through_g711() {
    let _turn = turn();
    let model = model("ggml-base-q8_0.bin");
    // Development knobs (not for CI): IVRFLOW_HELDOUT_OPTS="agc=0,normalize=0,always=0,
    // prune=0,spell=0,threads=1", IVRFLOW_HELDOUT_ONLY=<part of a file name>, IVRFLOW_HELDOUT_DUMP=<file> (one
    // line of evidence per answer). The gate below holds only for the defaults.
    let knobs = std::env::var("IVRFLOW_HELDOUT_OPTS").unwrap_or_default();
    let off = |k: &str| knobs.split(',').any(|kv| kv == format!("{k}=0"));
    let mut options = DecodeOptions::default();
    options.normalize &= !off("normalize");
    options.score_always &= !off("always");
    options.prune &= !off("prune");
    options.spell_numbers &= !off("spell");
    // `threads=1`: one decoder thread (results as with two; for a machine that is busy
    // with something else, where whisper.cpp's spinning threads slow each other down).
    if let Some(t) = knobs
        .split(',')
        .find_map(|kv| kv.strip_prefix("threads="))
        .and_then(|t| t.parse().ok())
    {
        options.threads = t;
    }
    let agc = !off("agc");
    let only = std::env::var("IVRFLOW_HELDOUT_ONLY").ok();
    let mut dump = std::env::var_os("IVRFLOW_HELDOUT_DUMP")
        .map(|p| std::fs::File::create(p).expect("dump file"));
    let mut rec = model.recognizer(options);
    let rows: Vec<Row> = manifest()
        .into_iter()
        .filter(|r| only.as_deref().is_none_or(|o| r.file.contains(o)))
        .collect();
    let mut seed = 11u32;
    let mut per_lang: BTreeMap<String, Tally> = BTreeMap::new();
    let mut per_speaker: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let mut per_question: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut decode = Duration::ZERO;
    let mut latencies: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    let started = Instant::now();
    for (i, row) in rows.iter().enumerate() {
        let pcm = ivrflow::media::prompts::load_file(&fixtures().join(&row.file))
            .unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let codec = if i % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
        let line = through_line(&pcm, codec);
        let intents = question(&row.question, &row.lang);
        let spec = ListenSpec {
            lang: row.lang.clone(),
            // As the dialogue lists them: one entry per intent, alternatives joined.
            phrases: intents
                .iter()
                .map(|(_, p)| p.join(&ivrflow::asr::ALTERNATIVES.to_string()))
                .collect(),
            barge_in: false,
            complete_timeout: Duration::from_millis(400),
            incomplete_timeout: Duration::from_millis(1500),
            max_speech_timeout: Duration::from_secs(10),
        };
        let mut latency = None;
        let heard = listen(
            &mut rec,
            &line,
            &spec,
            &mut seed,
            &mut decode,
            agc,
            &mut latency,
        );
        if let Some(l) = latency {
            latencies.entry(row.lang.clone()).or_default().push(l);
        }
        let verdict = match &heard {
            Heard::Utterance { text, confidence } => ivrflow::nlu::verdict(
                text,
                *confidence,
                &row.lang,
                &intents,
                DEFAULT_THRESHOLD,
                Some(0.2),
            ),
            _ => Verdict::NoMatch { heard: None },
        };
        let outcome = match (verdict.accepted(), row.expected.as_str()) {
            (None, "none") => Outcome::Right,
            (Some(got), want) if got == want => Outcome::Right,
            (Some(_), _) => Outcome::WrongAccepted,
            (None, _) => Outcome::Reasked,
        };
        let held = if row.held_out() {
            ""
        } else {
            " (prompt voice)"
        };
        per_lang
            .entry(format!("{}{held}", row.lang))
            .or_default()
            .add(outcome);
        per_speaker
            .entry((row.lang.clone(), row.speaker.clone()))
            .or_default()
            .add(outcome);
        per_question
            .entry((row.lang.clone(), row.question.clone()))
            .or_default()
            .add(outcome);
        let said = match &heard {
            Heard::Utterance { text, confidence } => format!("{text:?} ({confidence:.2})"),
            Heard::Unrecognised => "<unrecognised>".to_owned(),
            Heard::Nothing => "<no utterance>".to_owned(),
        };
        let verdict_s = match &verdict {
            Verdict::Accept { intent, score } => format!("accept {intent} {score:.2}"),
            Verdict::Confirm { intent, score } => format!("read back {intent} {score:.2}"),
            Verdict::NoMatch { heard: Some(m) } => format!("nomatch ({} {:.2})", m.intent, m.score),
            Verdict::NoMatch { heard: None } => "nomatch".to_owned(),
        };
        println!(
            "{} {:<40} {:<3} {:<8} want {:<8} {verdict_s:<22} {codec}: {said}",
            match outcome {
                Outcome::Right => "ok   ",
                Outcome::WrongAccepted => "WRONG",
                Outcome::Reasked => "again",
            },
            row.file,
            row.lang,
            row.question,
            row.expected,
        );
        if outcome == Outcome::WrongAccepted {
            wrong.push(row.file.clone());
        }
        if let (Some(f), Some(d)) = (dump.as_mut(), rec.last_diagnostics()) {
            use std::io::Write;
            // Phrase index → intent of this question.
            let intent_of: Vec<&str> = intents
                .iter()
                .flat_map(|(n, p)| p.iter().map(move |_| n.as_str()))
                .collect();
            let scores: Vec<String> = d
                .scores
                .iter()
                .map(|s| format!("[\"{}\",{:.6}]", intent_of[s.phrase], s.probability))
                .collect();
            let named: Vec<String> = d
                .named
                .iter()
                .map(|&i| format!("\"{}\"", intent_of[i]))
                .collect();
            writeln!(
                f,
                "{{\"file\":\"{}\",\"lang\":\"{}\",\"speaker\":\"{}\",\"expected\":\"{}\",\"heard\":{},\"free\":{:?},\"conf\":{:.4},\"no_speech\":{:.4},\"named\":[{}],\"scores\":[{}]}}",
                row.file,
                row.lang,
                row.speaker,
                row.expected,
                !matches!(heard, Heard::Nothing),
                d.free_text,
                d.free_confidence,
                d.no_speech,
                named.join(","),
                scores.join(",")
            )
            .unwrap();
        }
    }
    println!(
        "\nclosed answers through G.711, model {}, threshold {DEFAULT_THRESHOLD}; right = taken without asking again",
        model.kind()
    );
    println!("by language:");
    for (k, t) in &per_lang {
        println!("  {k:<20} {t}");
    }
    println!("by speaker:");
    for ((lang, spk), t) in &per_speaker {
        println!("  {lang} {spk:<18} {t}");
    }
    println!("by question:");
    for ((lang, q), t) in &per_question {
        println!("  {lang} {q:<18} {t}");
    }
    println!(
        "end of speech → answer known (complete_timeout 400 ms; one idle worker: the later of \
         the endpointer's verdict and the speculative recognition's start + its decode on \
         this machine; the next prompt's first packet leaves then):"
    );
    for (lang, l) in &mut latencies {
        l.sort();
        let at = |q: f64| l[((l.len() - 1) as f64 * q).round() as usize].as_millis();
        println!(
            "  {lang}  p50 {} ms  p95 {} ms  max {} ms  ({} answers)",
            at(0.5),
            at(0.95),
            at(1.0),
            l.len()
        );
    }
    println!(
        "{} utterances in {:.1} s (decoding {:.1} s)",
        rows.len(),
        started.elapsed().as_secs_f64(),
        decode.as_secs_f64()
    );
    assert!(
        wrong.len() <= MAX_WRONG,
        "wrong answers accepted without a read-back: {wrong:?}"
    );
    for (lang, bar) in BAR {
        let t = per_lang.get(*lang).copied().unwrap_or_default();
        assert!(t.n() > 0, "no {lang} utterances in the set");
        assert!(
            t.rate() >= *bar,
            "{lang}: {:.1} % of held-out answers taken right, the bar is {:.1} %",
            100.0 * t.rate(),
            100.0 * bar
        );
    }
}
