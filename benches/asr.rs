//! Speech benchmark (not a test): `cargo bench --bench asr` (needs ./scripts/setup.sh).
//!
//! Reports, on this machine and in one run, with ratios against references measured in
//! the same run:
//! 1. Whisper real-time factor per model (tiny.en, base), decode window fitted to the
//!    utterance vs Whisper's fixed 30 s window (the reference), and intent accuracy;
//! 2. end of caller speech → first RTP packet of the next prompt (p50/p95): the real call
//!    core (order-confirmation scenario, real prompts) fed caller RTP, recognition on the
//!    real worker pool; virtual time until the caller stops speaking, then real time;
//! 3. how many concurrently talking calls the machine sustains (each caller answers every
//!    4 s; sustained = recognition p95 ≤ 1 s and no queue growth);
//! 4. RTP pacing lateness (p50/p99/max of the 20 ms tick's wake-up lateness on a 2-worker
//!    tokio runtime, as `serve` runs it) idle vs while Whisper decodes flat out, with the
//!    workers at nice +10 (as shipped) and at nice 0.
//!
//! `IVRFLOW_BENCH_QUICK=1` shortens every part. CUDA is out of scope here: this task has no
//! GPU lent (the `device` tool reports none), so whisper-rs is built for CPU only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ivrflow::asr::pool::{AsrPool, Done, Job, PoolOptions};
use ivrflow::asr::whisper::{DecodeOptions, WhisperModel};
use ivrflow::asr::{Recognizer, Window, through_line};
use ivrflow::call::{CallCore, Effect, MediaParams};
use ivrflow::media::Codec;
use ivrflow::media::prompts::PromptCache;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn quick() -> bool {
    std::env::var_os("IVRFLOW_BENCH_QUICK").is_some()
}

fn load_model(name: &str) -> WhisperModel {
    let p = repo().join("models").join(name);
    WhisperModel::load(&p).unwrap_or_else(|e| panic!("{e}"))
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

struct Utt {
    lang: String,
    intent: String,
    question: String,
    pcm: Vec<i16>,
}

/// The human recordings of the manifest (en, ru), through µ-law.
fn human_utterances() -> Vec<Utt> {
    let dir = repo().join("tests/fixtures/speech");
    let text = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("asterisk"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let pcm = ivrflow::media::prompts::load_file(&dir.join(f[0])).unwrap();
            Utt {
                lang: f[1].into(),
                question: f[2].into(),
                intent: f[3].into(),
                pcm: through_line(&pcm, Codec::Pcmu),
            }
        })
        .collect()
}

fn phrases(question: &str, lang: &str) -> Vec<(String, Vec<String>)> {
    let pick = |en: &[&str], ru: &[&str]| -> Vec<String> {
        (if lang == "ru" { ru } else { en })
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    match question {
        "confirm" => vec![
            (
                "confirm".into(),
                pick(&["yes", "correct", "1"], &["да", "верно", "1"]),
            ),
            (
                "cancel".into(),
                pick(&["no", "cancel", "2"], &["нет", "отмена", "2"]),
            ),
        ],
        "digit" => (0..10)
            .map(|d| (format!("d{d}"), vec![d.to_string()]))
            .collect(),
        "number" => [10, 12, 20, 42]
            .iter()
            .map(|n| (format!("n{n}"), vec![n.to_string()]))
            .collect(),
        _ => vec![
            ("today".into(), pick(&["today"], &["сегодня"])),
            ("tomorrow".into(), pick(&["tomorrow"], &["завтра"])),
        ],
    }
}

// --- 1. real-time factor -------------------------------------------------------------------

fn rtf() {
    println!(
        "\n## 1. Whisper real-time factor (2 threads, one utterance at a time, human en+ru fixtures through µ-law)"
    );
    println!(
        "{:<10} {:<6} {:>7} {:>8} {:>10} {:>9} {:>9} {:>10} {:>9}",
        "model", "window", "threads", "utts", "audio s", "decode s", "RTF", "accuracy", "rescored"
    );
    let all = human_utterances();
    for (name, en_only) in [("ggml-tiny.en.bin", true), ("ggml-base.bin", false)] {
        let model = load_model(name);
        let utts: Vec<&Utt> = all
            .iter()
            .filter(|u| !en_only || u.lang == "en")
            .take(if quick() { 6 } else { usize::MAX })
            .collect();
        let mut full_rtf = 0.0;
        for (window, threads) in [(Window::Full, 2usize), (Window::Fit, 2), (Window::Fit, 1)] {
            let mut rec = model.recognizer(DecodeOptions {
                window,
                threads,
                ..DecodeOptions::default()
            });
            // Warm-up (allocations, page-in of the weights).
            rec.recognize(&utts[0].pcm, &utts[0].lang, &[]).unwrap();
            let (mut audio, mut decode, mut ok, mut rescored) = (0.0, 0.0, 0, 0);
            for u in &utts {
                let intents = phrases(&u.question, &u.lang);
                let ph: Vec<String> = intents.iter().flat_map(|(_, p)| p.clone()).collect();
                let t0 = Instant::now();
                let t = rec.recognize(&u.pcm, &u.lang, &ph).unwrap();
                decode += t0.elapsed().as_secs_f64();
                audio += u.pcm.len() as f64 / 8000.0;
                rescored += usize::from(t.constrained);
                let got = ivrflow::nlu::classify(&t.text, &u.lang, &intents).map(|m| m.intent);
                ok += usize::from(
                    got.as_deref() == Some(u.intent.as_str())
                        || (u.intent == "none" && got.is_none()),
                );
            }
            let r = decode / audio;
            if window == Window::Full {
                full_rtf = r;
            }
            println!(
                "{:<10} {:<6} {:>7} {:>8} {:>10.1} {:>9.2} {:>9.3} {:>9.0}% {:>9}   {:.2}× the 30 s window",
                model.kind(),
                if window == Window::Fit { "fit" } else { "30 s" },
                threads,
                utts.len(),
                audio,
                decode,
                r,
                100.0 * ok as f64 / utts.len() as f64,
                rescored,
                r / full_rtf
            );
        }
        println!(
            "{:<10} load time {:.0} ms",
            model.kind(),
            model.load_time().as_secs_f64() * 1000.0
        );
    }
}

// --- 2. end of speech → next prompt --------------------------------------------------------

fn media() -> MediaParams {
    MediaParams {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event_pt: Some(101),
        ssrc: 1,
        initial_seq: 1,
        initial_ts: 0,
    }
}

fn rtp_packet(seq: u16, ts: u32, pcm: &[i16]) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x0bad_cafeu32.to_be_bytes());
    let mut frame = pcm.to_vec();
    frame.resize(160, 0);
    ivrflow::media::g711::encode(Codec::Pcmu, &frame, &mut p);
    p
}

/// One call: play until the question is listening and its prompt has ended, speak `pcm`,
/// then measure the times to the next prompt's first packet. Returns (from the last
/// voiced frame, from end-of-speech detection) in ms.
fn one_turn(
    scenario: &Arc<ivrflow::scenario::Scenario>,
    prompts: &Arc<PromptCache>,
    pool: &AsrPool<u64>,
    results: &Mutex<mpsc::Receiver<Done<u64>>>,
    pcm: &[i16],
    lang: &str,
) -> Option<(f64, f64)> {
    let mut vars = BTreeMap::new();
    vars.insert("order_id".to_owned(), "4711".to_owned());
    vars.insert("language".to_owned(), lang.to_owned());
    let t0 = Instant::now();
    let mut core = CallCore::new(scenario.clone(), vars, prompts.clone(), media(), t0);
    core.start(t0);
    let mut buf = [0u8; 1500];
    let mut now = t0;
    let tick = Duration::from_millis(20);
    // Virtual time until the question listens with its prompt over.
    let mut waited = 0;
    while core.dialogue().listen_spec().is_none_or(|s| s.barge_in) || core.is_playing() {
        now += tick;
        core.poll_packet(now, &mut buf);
        waited += 1;
        if waited > 3000 {
            return None;
        }
    }
    // The caller: 200 ms of line silence, the answer, then silence until the robot talks.
    let mut seq = 1u16;
    let mut ts = 0u32;
    let mut audio: Vec<i16> = vec![0; 1600];
    audio.extend_from_slice(pcm);
    let voiced_end = {
        // The last frame louder than -40 dBFS is the end of speech.
        let last = audio
            .chunks(160)
            .rposition(|f| ivrflow::media::prompts::rms_dbfs(f) > -40.0)
            .unwrap_or(0);
        now + tick * (last as u32 + 1)
    };
    let mut frames = audio
        .chunks(160)
        .map(|c| c.to_vec())
        .collect::<Vec<_>>()
        .into_iter();
    let mut detect_at: Option<Instant> = None;
    let mut real_since: Option<(Instant, Instant)> = None; // (virtual, wall) at the switch
    let packets_before = core.packets_sent();
    loop {
        now = match real_since {
            None => now + tick,
            Some((v, w)) => {
                // Real time from here: sleep to the next 20 ms tick.
                let next = now + tick;
                let wall_due = w + (next - v);
                if let Some(d) = wall_due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                next
            }
        };
        let frame = frames.next().unwrap_or_else(|| vec![0; 160]);
        core.handle_rtp(now, &rtp_packet(seq, ts, &frame));
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(160);
        while let Some(e) = core.poll_effect() {
            if let Effect::Recognize {
                id,
                audio,
                lang,
                phrases,
            } = e
            {
                detect_at.get_or_insert(now);
                real_since.get_or_insert((now, Instant::now()));
                let _ = pool.submit(Job {
                    tag: id,
                    audio,
                    lang,
                    phrases,
                });
            }
        }
        if let Ok(done) = results.lock().unwrap().try_recv() {
            core.handle_recognition(now, done.tag, done.result);
        }
        if core.poll_packet(now, &mut buf).is_some() && core.packets_sent() > packets_before {
            let d = detect_at?;
            return Some((
                now.saturating_duration_since(voiced_end).as_secs_f64() * 1000.0,
                now.saturating_duration_since(d).as_secs_f64() * 1000.0,
            ));
        }
        if now.duration_since(t0) > Duration::from_secs(120) {
            return None;
        }
    }
}

fn latency() {
    println!(
        "\n## 2. End of caller speech → first RTP packet of the next prompt (order-confirmation, model base, 1 worker × 2 threads)"
    );
    let scenario = Arc::new(
        ivrflow::scenario::load_file(&repo().join("scenarios/order-confirmation.yaml")).unwrap(),
    );
    let prompts = Arc::new(PromptCache::load_dir(&repo().join("audio")).unwrap());
    let model = load_model("ggml-base.bin");
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let m = model.clone();
    let pool = AsrPool::start(
        &PoolOptions {
            workers: 1,
            queue: 8,
            nice: 10,
        },
        move |_| Box::new(m.recognizer(DecodeOptions::default())) as Box<dyn Recognizer>,
        move |d: Done<u64>| {
            let _ = tx.lock().unwrap().send(d);
        },
    )
    .unwrap();
    let rx = Mutex::new(rx);
    let answers = [
        ("synth/en/yes.wav", "en"),
        ("synth/en/yes-please.wav", "en"),
        ("synth/en/correct.wav", "en"),
        ("synth/en/thats-right.wav", "en"),
    ];
    let spec = {
        let mut vars = BTreeMap::new();
        vars.insert("order_id".to_owned(), "1".to_owned());
        let t = Instant::now();
        let mut c = CallCore::new(scenario.clone(), vars, prompts.clone(), media(), t);
        c.start(t);
        let mut b = [0u8; 1500];
        let mut n = t;
        while c.dialogue().listen_spec().is_none() {
            n += Duration::from_millis(20);
            c.poll_packet(n, &mut b);
        }
        c.dialogue().listen_spec().unwrap()
    };
    println!(
        "  node timers: complete_timeout {} ms, incomplete_timeout {} ms (the silence that ends an utterance is part of the first figure)",
        spec.complete_timeout.as_millis(),
        spec.incomplete_timeout.as_millis()
    );
    let rounds = if quick() { 1 } else { 5 };
    let (mut from_voice, mut from_detect) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for (file, lang) in answers {
            let pcm = ivrflow::media::prompts::load_file(
                &repo().join("tests/fixtures/speech").join(file),
            )
            .unwrap();
            match one_turn(
                &scenario,
                &prompts,
                &pool,
                &rx,
                &through_line(&pcm, Codec::Pcmu),
                lang,
            ) {
                Some((v, d)) => {
                    from_voice.push(v);
                    from_detect.push(d);
                }
                None => println!("  {file}: no next prompt (not recognised)"),
            }
        }
    }
    let n = from_voice.len();
    println!(
        "  {n} turns: last voiced frame → first packet p50 {:.0} ms, p95 {:.0} ms",
        pct(&mut from_voice.clone(), 0.5),
        pct(&mut from_voice.clone(), 0.95)
    );
    let mut beyond: Vec<f64> = from_voice
        .iter()
        .map(|v| v - spec.complete_timeout.as_secs_f64() * 1000.0)
        .collect();
    println!(
        "  {n} turns: beyond the node's complete_timeout (recognition, dialogue, next packet) p50 {:.0} ms, p95 {:.0} ms",
        pct(&mut beyond.clone(), 0.5),
        pct(&mut beyond, 0.95)
    );
    println!(
        "  {n} turns: from the start of the speculative recognition (300 ms of silence) p50 {:.0} ms, p95 {:.0} ms",
        pct(&mut from_detect.clone(), 0.5),
        pct(&mut from_detect, 0.95)
    );
    pool.shutdown();
}

// --- 3. concurrent talkers ------------------------------------------------------------------

fn talkers() {
    println!(
        "\n## 3. Concurrently talking calls (each answers a ~1 s closed question every 4 s; model base)"
    );
    let model = load_model("ggml-base.bin");
    let utts: Vec<Utt> = human_utterances()
        .into_iter()
        .filter(|u| u.question == "confirm" || u.question == "digit")
        .collect();
    for (workers, threads) in [(1usize, 2usize), (2, 1)] {
        println!("  pool: {workers} worker(s) × {threads} thread(s)");
        let mut best = 0;
        for n in [1usize, 2, 3, 4, 6, 8, 12] {
            let (tx, rx) = mpsc::channel::<(Instant, Done<usize>)>();
            let tx = Mutex::new(tx);
            let m = model.clone();
            let pool = AsrPool::start(
                &PoolOptions {
                    workers,
                    queue: 256,
                    nice: 10,
                },
                move |_| {
                    Box::new(m.recognizer(DecodeOptions {
                        threads,
                        ..DecodeOptions::default()
                    })) as Box<dyn Recognizer>
                },
                move |d: Done<usize>| {
                    let _ = tx.lock().unwrap().send((Instant::now(), d));
                },
            )
            .unwrap();
            let period = Duration::from_secs(4);
            let span = if quick() {
                Duration::from_secs(8)
            } else {
                Duration::from_secs(16)
            };
            let start = Instant::now();
            let mut submitted: Vec<(Instant, usize)> = Vec::new();
            // Call i speaks at i·period/n + j·period.
            let mut schedule: Vec<Instant> = (0..n)
                .flat_map(|i| {
                    (0..(span.as_secs() / period.as_secs()))
                        .map(move |j| start + period * j as u32 + period * i as u32 / n as u32)
                })
                .collect();
            schedule.sort();
            for (k, at) in schedule.into_iter().enumerate() {
                if let Some(d) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let u = &utts[k % utts.len()];
                let intents = phrases(&u.question, &u.lang);
                let ph = intents.iter().flat_map(|(_, p)| p.clone()).collect();
                let _ = pool.submit(Job {
                    tag: k,
                    audio: u.pcm.clone(),
                    lang: u.lang.clone(),
                    phrases: ph,
                });
                submitted.push((Instant::now(), k));
            }
            let mut lat = Vec::new();
            for _ in 0..submitted.len() {
                let Ok((at, d)) = rx.recv_timeout(Duration::from_secs(60)) else {
                    break;
                };
                lat.push(at.duration_since(submitted[d.tag].0).as_secs_f64() * 1000.0);
            }
            pool.shutdown();
            let done = lat.len();
            let p50 = pct(&mut lat.clone(), 0.5);
            let p95 = pct(&mut lat, 0.95);
            let ok = done == submitted.len() && p95 <= 1000.0;
            println!(
                "    {n:>2} talking calls: {done} utterances, recognition p50 {p50:.0} ms, p95 {p95:.0} ms {}",
                if ok { "sustained" } else { "NOT sustained" }
            );
            if ok {
                best = n;
            } else {
                break;
            }
        }
        println!("    → sustains {best} concurrently talking calls");
    }
}

// --- 4. pacing lateness ---------------------------------------------------------------------

fn pacing_run(load: Option<i32>, model: &WhisperModel, secs: u64) -> (f64, f64, f64) {
    let mut pool = None;
    if let Some(nice) = load {
        let m = model.clone();
        let p = AsrPool::start(
            &PoolOptions {
                workers: 1,
                queue: 4,
                nice,
            },
            move |_| Box::new(m.recognizer(DecodeOptions::default())) as Box<dyn Recognizer>,
            |_d: Done<u32>| {},
        )
        .unwrap();
        pool = Some(p);
    }
    let utt = human_utterances()
        .into_iter()
        .find(|u| u.lang == "ru")
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lateness = rt.block_on(async {
        let mut iv = tokio::time::interval(Duration::from_millis(20));
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = tokio::time::Instant::now();
        let mut late = Vec::new();
        let mut n = 0u32;
        while start.elapsed() < Duration::from_secs(secs) {
            let due = iv.tick().await;
            late.push(due.elapsed().as_secs_f64() * 1000.0);
            n += 1;
            // Keep the recogniser busy: a new utterance whenever the queue has room.
            if let Some(p) = &pool
                && p.pending() < 2
            {
                let _ = p.submit(Job {
                    tag: n,
                    audio: utt.pcm.clone(),
                    lang: "ru".into(),
                    phrases: vec![],
                });
            }
        }
        late
    });
    if let Some(p) = pool {
        p.shutdown();
    }
    let mut l = lateness;
    (
        pct(&mut l.clone(), 0.5),
        pct(&mut l.clone(), 0.99),
        pct(&mut l, 1.0),
    )
}

fn pacing() {
    println!("\n## 4. RTP pacing: 20 ms tick wake-up lateness on a 2-worker tokio runtime");
    let model = load_model("ggml-base.bin");
    let secs = if quick() { 4 } else { 10 };
    let (r50, r99, rmax) = pacing_run(None, &model, secs);
    println!(
        "  idle (reference):               p50 {r50:.2} ms  p99 {r99:.2} ms  max {rmax:.2} ms"
    );
    for nice in [10, 0] {
        let (p50, p99, max) = pacing_run(Some(nice), &model, secs);
        println!(
            "  Whisper decoding, nice {nice:>2}:     p50 {p50:.2} ms  p99 {p99:.2} ms  max {max:.2} ms  (p99 {:.1}× the idle reference)",
            p99 / r99.max(0.001)
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; a name filter selects parts: rtf, latency, talkers, pacing.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |p: &str| args.is_empty() || args.iter().any(|a| a == p);
    for m in ["ggml-base.bin", "ggml-tiny.en.bin"] {
        assert!(
            Path::new(&repo().join("models").join(m)).exists(),
            "models/{m} is missing: run ./scripts/setup.sh"
        );
    }
    println!(
        "# ivrflow speech benchmark ({} cores; CPU only — no GPU lent to this task, CUDA not measured)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if want("rtf") {
        rtf();
    }
    if want("latency") {
        latency();
    }
    if want("talkers") {
        talkers();
    }
    if want("pacing") {
        pacing();
    }
}
