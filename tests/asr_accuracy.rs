//! Intent accuracy on real and synthetic caller speech through the telephone path.
//!
//! Each utterance of `tests/fixtures/speech/manifest.tsv` (Asterisk human recordings in en
//! and ru, espeak-ng phrases in en/ru/uk) goes the way a caller's voice does: 8 kHz,
//! G.711 encode + decode (µ-law and A-law alternately), framed into 20 ms packets between
//! stretches of line noise, through the endpointer (VAD) to an utterance, then Whisper
//! (the default model, `models/ggml-base-q8_0.bin`) with the question's phrases as the prompt,
//! then judged by the product's own rule (`nlu::verdict`: the intent is taken only when
//! min(recogniser confidence, match score) reaches the node's threshold, 0.6). Until issue 16
//! this test ignored the recogniser's confidence and so counted answers the product would
//! have asked again. The voices here also speak our prompts; other people's voices are in
//! `tests/asr_heldout.rs`.
//!
//! The model is made by `./scripts/setup.sh`; without it this test fails and says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ivrflow::asr::whisper::{DecodeOptions, WhisperModel};
use ivrflow::asr::{Recognizer, through_line};
use ivrflow::media::Codec;
use ivrflow::media::vad::{EndpointConfig, EndpointEvent, Endpointer, FRAME, VadKind};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/speech")
}

fn model(name: &str) -> WhisperModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name);
    match WhisperModel::load(&path) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n(the speech tests need the models: run ./scripts/setup.sh)"),
    }
}

/// The intents of each question in the manifest for one language, as a scenario lists
/// them (name, phrases); they are also the phrases put in the decoder prompt.
fn question(q: &str, lang: &str) -> Vec<(String, Vec<String>)> {
    let pick = |en: &[&str], ru: &[&str], uk: &[&str]| -> Vec<String> {
        let l = match lang {
            "ru" => ru,
            "uk" => uk,
            _ => en,
        };
        l.iter().map(|s| s.to_string()).collect()
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
        "number" => [10, 12, 20, 42]
            .iter()
            .map(|n| (format!("n{n}"), vec![n.to_string()]))
            .collect(),
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

/// The phrase list as the dialogue gives it to the recogniser: one entry per intent, its
/// phrases joined by `asr::ALTERNATIVES` (they are one answer, not rivals).
fn prompt_phrases(intents: &[(String, Vec<String>)]) -> Vec<String> {
    intents
        .iter()
        .map(|(_, p)| p.join(&ivrflow::asr::ALTERNATIVES.to_string()))
        .collect()
}

/// Line noise at about -60 dBFS (a quiet line), deterministic.
fn noise(ms: usize, seed: &mut u32) -> Vec<i16> {
    (0..ms * 8)
        .map(|_| {
            *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((*seed >> 16) as i16) / 1000
        })
        .collect()
}

/// The utterance as the call core would capture it: framed, through the endpointer.
fn endpoint(line: &[i16], seed: &mut u32) -> Option<Vec<i16>> {
    let mut ep = Endpointer::new(EndpointConfig::default(), VadKind::default());
    let mut audio = noise(600, seed);
    audio.extend_from_slice(line);
    audio.extend(noise(1500, seed));
    let t0 = Instant::now();
    let mut out = None;
    for (i, frame) in audio.chunks(FRAME).enumerate() {
        ep.handle_audio(t0 + Duration::from_millis(20 * i as u64), frame);
        while let Some(ev) = ep.poll_event() {
            if let EndpointEvent::Utterance { audio, .. } = ev {
                out.get_or_insert(audio);
            }
        }
    }
    out
}

struct Row {
    file: String,
    lang: String,
    question: String,
    intent: String,
    source: String,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("manifest.tsv")).expect("manifest.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Row {
                file: f[0].into(),
                lang: f[1].into(),
                question: f[2].into(),
                intent: f[3].into(),
                source: f[4].into(),
            }
        })
        .collect()
}

/// The node's threshold (`confidence:` of the shipped scenarios).
const THRESHOLD: f32 = ivrflow::nlu::DEFAULT_THRESHOLD;

/// whisper.cpp's threads spin while they wait for each other: two decodes at once on two
/// cores slow each other down many times over. The tests of this file take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn intent_accuracy_through_g711_by_the_products_rule() {
    let _turn = turn();
    let model = model("ggml-base-q8_0.bin");
    let mut rec = model.recognizer(DecodeOptions::default());
    let rows = manifest();
    assert!(
        rows.len() >= 40,
        "the manifest must hold at least 40 utterances"
    );
    let mut seed = 7u32;
    let mut per_lang: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut per_source: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let mut failures = Vec::new();
    let mut wrong_human = Vec::new();
    let started = Instant::now();
    for (i, row) in rows.iter().enumerate() {
        let pcm = ivrflow::media::prompts::load_file(&fixtures().join(&row.file))
            .unwrap_or_else(|e| panic!("{}: {e}", row.file));
        let codec = if i % 2 == 0 { Codec::Pcmu } else { Codec::Pcma };
        let line = through_line(&pcm, codec);
        let intents = question(&row.question, &row.lang);
        let phrases = prompt_phrases(&intents);
        let (text, got, score) = match endpoint(&line, &mut seed) {
            None => ("<no utterance detected>".to_owned(), None, 0.0),
            Some(utt) => {
                let t = rec.recognize(&utt, &row.lang, &phrases).expect("recognize");
                let v = ivrflow::nlu::verdict(
                    &t.text,
                    t.confidence,
                    &row.lang,
                    &intents,
                    THRESHOLD,
                    Some(0.2),
                );
                let score = match &v {
                    ivrflow::nlu::Verdict::Accept { score, .. }
                    | ivrflow::nlu::Verdict::Confirm { score, .. } => *score,
                    ivrflow::nlu::Verdict::NoMatch { .. } => 0.0,
                };
                (t.text, v.accepted().map(str::to_owned), score)
            }
        };
        // "none": an out-of-grammar answer that must end in the node's nomatch.
        let ok =
            got.as_deref() == Some(row.intent.as_str()) || (row.intent == "none" && got.is_none());
        for (map, key) in [(&mut per_lang, &row.lang), (&mut per_source, &row.source)] {
            let e = map.entry(key.clone()).or_default();
            e.0 += usize::from(ok);
            e.1 += 1;
        }
        println!(
            "{} {:<32} {:<4} {:<8} expected {:<9} got {:<9} ({score:.2}) {codec}: {text:?}",
            if ok { "ok  " } else { "MISS" },
            row.file,
            row.lang,
            row.question,
            row.intent,
            got.as_deref().unwrap_or("-"),
        );
        if !ok {
            failures.push(row.file.clone());
            if got.is_some() && row.source.starts_with("asterisk") {
                wrong_human.push(row.file.clone());
            }
        }
    }
    let total: (usize, usize) = per_lang
        .values()
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    println!("\nintent accuracy through G.711, model {}:", model.kind());
    for (lang, (ok, n)) in &per_lang {
        println!(
            "  {lang}: {ok}/{n} = {:.1}%",
            100.0 * *ok as f64 / *n as f64
        );
    }
    for (src, (ok, n)) in &per_source {
        println!("  {src}: {ok}/{n} = {:.1}%", 100.0 * *ok as f64 / *n as f64);
    }
    let acc = total.0 as f64 / total.1 as f64;
    println!(
        "  all: {}/{} = {:.1}% in {:.1} s",
        total.0,
        total.1,
        100.0 * acc,
        started.elapsed().as_secs_f64()
    );
    // The bars are on the human recordings (en, ru; the prompt voices). espeak-ng's
    // Russian and Ukrainian voices at 8 kHz are formant synthesis that Whisper base mostly
    // cannot read (see README, "Speech"): they are reported, with a floor that catches
    // regressions. The target on other people's voices is tests/asr_heldout.rs's.
    let rate = |m: &std::collections::BTreeMap<String, (usize, usize)>, k: &str| {
        m.get(k).map_or(0.0, |(ok, n)| *ok as f64 / *n as f64)
    };
    let human = ["asterisk-en", "asterisk-ru"]
        .iter()
        .filter_map(|k| per_source.get(*k))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let human_acc = human.0 as f64 / human.1 as f64;
    println!(
        "  human speech (prompt voices): {}/{} = {:.1}%",
        human.0,
        human.1,
        100.0 * human_acc
    );
    assert!(human.1 >= 40, "at least 40 human utterances");
    assert!(
        wrong_human.is_empty(),
        "wrong answers taken without a read-back: {wrong_human:?}"
    );
    assert!(
        human_acc >= HUMAN_BAR,
        "human-speech accuracy {:.1}% < {:.0}%; misses: {failures:?}",
        100.0 * human_acc,
        100.0 * HUMAN_BAR
    );
    assert!(
        rate(&per_source, "espeak-ng") >= SYNTH_BAR,
        "synthetic accuracy regressed: {failures:?}"
    );
    assert!(
        rate(&per_lang, "en") >= EN_BAR,
        "English accuracy regressed: {failures:?}"
    );
}

/// Bars, by the product's rule (answers taken without asking again). Measured with the
/// shipped decoding (docs/speech.md): human 36/40 (Allison 19/19, IvrvoiceRU 17/21 — its
/// «двадцать», «двенадцать», «семь», «пять» asked again, none taken wrong), espeak-ng
/// 21/40, English 29/31; set just under, so that a regression fails.
const HUMAN_BAR: f64 = 0.875;
const SYNTH_BAR: f64 = 0.45;
const EN_BAR: f64 = 0.9;

#[test]
fn tiny_en_model_converts_and_recognises_real_speech() {
    let _turn = turn();
    let model = model("ggml-tiny.en.bin");
    assert!(!model.multilingual());
    let mut rec = model.recognizer(DecodeOptions::default());
    let pcm =
        ivrflow::media::prompts::load_file(&fixtures().join("human/en/tomorrow.wav")).unwrap();
    let t = rec
        .recognize(
            &through_line(&pcm, Codec::Pcmu),
            "en",
            &["today".into(), "tomorrow".into()],
        )
        .unwrap();
    assert!(
        ivrflow::nlu::normalize(&t.text).contains("tomorrow"),
        "{:?}",
        t.text
    );
    // An English-only model refuses other languages instead of guessing.
    assert!(rec.recognize(&pcm, "ru", &[]).is_err());
}

#[test]
fn transcribe_file_uses_the_default_model() {
    let _turn = turn();
    let path = fixtures().join("human/ru/1.wav");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join(ivrflow::asr::DEFAULT_MODEL);
    let (text, conf) =
        ivrflow::asr::transcribe_file_with(&model, &path, "ru", &["один".into(), "два".into()])
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ivrflow::nlu::numbers_to_digits(&ivrflow::nlu::normalize(&text)) == "1",
        "{text:?}"
    );
    assert!(conf > 0.3, "{conf}");
}
