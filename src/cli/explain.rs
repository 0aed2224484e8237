//! `ivrflow explain`: how a spoken answer is understood, step by step.
//!
//! ```text
//! ivrflow explain "it isn't right" --phrases yes,correct --lang en
//! ivrflow explain "пятнадцатого" --intent d15=15 --intent d16=16 --lang ru
//! ivrflow explain --wav answer.wav --intent confirm=yes,correct --intent cancel=no --lang en
//! ivrflow explain "number one" --scenario scenarios/order-confirmation.yaml --node confirm
//! ```
//! With `--scenario` and `--node`, the question's own answers are used — its intents'
//! phrases in `--lang`, its keys said aloud (spoken keys), its `confidence` and `confirm.min`
//! — exactly as the dialogue matches them; a question that takes a value (a digit string,
//! `answer: day_of_month | date`) shows the value read from the words.
//! Prints normalisation, contractions, numbers (ordinals included), each phrase and
//! synonym with where it was found or what negated it, the score per intent, the
//! ambiguity penalty, and the dialogue's verdict at the node's threshold. With `--wav`,
//! the recording first goes through G.711 and the default Whisper model: the free
//! transcript, the score of each expected phrase against the audio, and the confidence the
//! recogniser reports (see docs/speech.md). Also shows the answer read as a day of the
//! month and as a date.

use std::io::Write;
use std::path::PathBuf;

use crate::nlu::{self, PhraseOutcome, Verdict};

/// Arguments of `ivrflow explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// What the caller said (a transcript). Not needed with --wav.
    pub text: Option<String>,
    /// The call's language: en, ru or uk.
    #[arg(long, default_value = "en")]
    pub lang: String,
    /// Phrases of one intent, comma-separated (the intent is called "match").
    #[arg(long, value_delimiter = ',')]
    pub phrases: Vec<String>,
    /// An intent: NAME=phrase,phrase (repeat for each intent).
    #[arg(long = "intent")]
    pub intents: Vec<String>,
    /// The recogniser's confidence in the transcript (with TEXT; --wav measures it).
    #[arg(long, default_value_t = 1.0)]
    pub confidence: f32,
    /// The node's `confidence` threshold.
    #[arg(long, default_value_t = nlu::DEFAULT_THRESHOLD)]
    pub threshold: f32,
    /// The node's `confirm.min` (the node has a `confirm:` block); omit for none.
    #[arg(long)]
    pub confirm_min: Option<f32>,
    /// Recognise this recording (any format; brought to 8 kHz and through G.711 µ-law)
    /// with the default model instead of taking TEXT.
    #[arg(long)]
    pub wav: Option<PathBuf>,
    /// The model for --wav (default: $IVRFLOW_MODEL or models/ggml-base-q8_0.bin).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A scenario file: match against one of its questions (with --node) instead of
    /// --phrases/--intent; its `confidence` and `confirm.min` apply.
    #[arg(long, requires = "node")]
    pub scenario: Option<PathBuf>,
    /// The `ask` node of --scenario (its qualified name: `confirm`, `yes_no.ask`).
    #[arg(long, requires = "scenario")]
    pub node: Option<String>,
}

/// What --scenario/--node contribute: the question's answers as the dialogue sees them.
struct Question {
    intents: Vec<(String, Vec<String>)>,
    threshold: f32,
    confirm_min: Option<f32>,
    /// Digit string or answer type: the value is what the words say, not an intent.
    value: Option<String>,
    spoken_keys: Vec<String>,
}

fn question_of(args: &ExplainArgs, heard: Option<&str>) -> Result<Option<Question>, String> {
    let (Some(file), Some(name)) = (&args.scenario, &args.node) else {
        return Ok(None);
    };
    let scenario = crate::scenario::load_file(file).map_err(|e| e.to_string())?;
    let id = scenario
        .node_id(name)
        .ok_or_else(|| format!("{}: no node `{name}`", file.display()))?;
    let Some(crate::scenario::Node {
        kind: crate::scenario::NodeKind::Ask(ask),
        ..
    }) = scenario.node(id)
    else {
        return Err(format!("{}: node `{name}` is not an `ask`", file.display()));
    };
    if !scenario.languages.contains(&args.lang) {
        return Err(format!(
            "{}: the scenario has no language `{}` (it has {})",
            file.display(),
            args.lang,
            scenario.languages.join(", ")
        ));
    }
    let intents = crate::dialogue::speech_choices(ask, &args.lang, heard);
    let spoken_keys = intents
        .iter()
        .flat_map(|(n, p)| {
            let own = ask
                .intents
                .iter()
                .find(|i| &i.name == n)
                .and_then(|i| i.phrases.get(&args.lang));
            p.iter()
                .filter(move |p| own.is_none_or(|o| !o.contains(p)))
                .map(move |p| format!("{n}: \"{p}\""))
        })
        .collect();
    let value = match (ask.answer, &ask.digits) {
        (Some(t), _) => Some(t.name().to_owned()),
        (None, Some(d)) => Some(format!("digit string ({}-{} digits)", d.min, d.max)),
        _ => None,
    };
    Ok(Some(Question {
        intents,
        threshold: ask.confidence,
        confirm_min: ask.confirm.as_ref().map(|c| c.min),
        value,
        spoken_keys,
    }))
}

fn intents_of(args: &ExplainArgs) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    if !args.phrases.is_empty() {
        out.push(("match".to_owned(), args.phrases.clone()));
    }
    for spec in &args.intents {
        let (name, phrases) = spec
            .split_once('=')
            .ok_or_else(|| format!("--intent {spec:?}: expected NAME=phrase,phrase"))?;
        out.push((
            name.trim().to_owned(),
            phrases
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        ));
    }
    if out.is_empty() {
        return Err("give the expected answers: --phrases a,b or --intent NAME=a,b".to_owned());
    }
    Ok(out)
}

/// Recognises `--wav`: (transcript, confidence), printing the recogniser's evidence.
fn recognise(
    args: &ExplainArgs,
    path: &std::path::Path,
    intents: &[(String, Vec<String>)],
    out: &mut dyn Write,
) -> Result<(String, f32), String> {
    use crate::asr::Recognizer;
    let pcm =
        crate::media::prompts::load_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let line = crate::asr::through_line(&pcm, crate::media::Codec::Pcmu);
    let model_path = args
        .model
        .clone()
        .unwrap_or_else(crate::asr::default_model_path);
    let model = crate::asr::whisper::WhisperModel::load(&model_path).map_err(|e| e.to_string())?;
    let mut rec = model.recognizer(crate::asr::whisper::DecodeOptions::default());
    // One entry per intent, as the dialogue asks (its phrases are one answer).
    let grouped: Vec<String> = intents
        .iter()
        .map(|(_, p)| p.join(&crate::asr::ALTERNATIVES.to_string()))
        .collect();
    let phrases = crate::asr::split_alternatives(&grouped).0;
    let t = rec
        .recognize(&line, &args.lang, &grouped)
        .map_err(|e| e.to_string())?;
    let w = |e: std::io::Error| e.to_string();
    writeln!(
        out,
        "recognition ({}, {} ms of audio, µ-law):",
        model.kind(),
        t.audio.as_millis()
    )
    .map_err(w)?;
    if let Some(d) = rec.last_diagnostics() {
        writeln!(
            out,
            "  free transcript      {:?}  confidence {:.2} (mean token probability × (1 − no-speech {:.2}))",
            d.free_text, d.free_confidence, d.no_speech
        )
        .map_err(w)?;
        let named: Vec<&str> = d.named.iter().map(|&i| phrases[i].as_str()).collect();
        writeln!(out, "  names phrases        {named:?}").map_err(w)?;
        let sum: f32 = d.scores.iter().map(|s| s.probability).sum();
        for s in &d.scores {
            writeln!(
                out,
                "  scored {:<14} as {:<16} p {:.3}  share {:.2}",
                phrases[s.phrase],
                format!("{:?}", s.form),
                s.probability,
                if sum > 0.0 { s.probability / sum } else { 0.0 }
            )
            .map_err(w)?;
        }
    }
    writeln!(
        out,
        "  result               {:?}  confidence {:.2}{}",
        t.text,
        t.confidence,
        if t.constrained {
            " (a scored phrase)"
        } else {
            ""
        }
    )
    .map_err(w)?;
    Ok((t.text, t.confidence))
}

/// Runs `ivrflow explain`; returns the exit status.
pub fn run(args: &ExplainArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let question = match question_of(args, args.text.as_deref()) {
        Ok(q) => q,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let intents = match &question {
        Some(q) => Ok(q.intents.clone()),
        None => intents_of(args),
    };
    let intents = match intents {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            return super::EXIT_USAGE;
        }
    };
    let mut args = args.clone();
    if let Some(q) = &question {
        args.threshold = q.threshold;
        args.confirm_min = q.confirm_min;
        let _ = writeln!(
            out,
            "question               {} in {} (confidence {:.2}, confirm.min {})",
            args.node.as_deref().unwrap_or(""),
            args.scenario
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            q.threshold,
            q.confirm_min
                .map_or("- (no confirm:)".to_owned(), |m| format!("{m:.2}"))
        );
        let _ = writeln!(
            out,
            "spoken keys            {}",
            if q.spoken_keys.is_empty() {
                "none (off, keys only, no digit keys, or not exactly one number said)".to_owned()
            } else {
                q.spoken_keys.join(", ")
            }
        );
        if let Some(v) = &q.value {
            let _ = writeln!(out, "takes a value          {v}");
        }
    }
    let args = &args;
    let (text, confidence) = match (&args.wav, &args.text) {
        (Some(path), _) => match recognise(args, path, &intents, out) {
            Ok(r) => r,
            Err(e) => {
                let _ = writeln!(err, "error: {e}");
                return super::EXIT_USAGE;
            }
        },
        (None, Some(t)) => (t.clone(), args.confidence),
        (None, None) => {
            let _ = writeln!(err, "error: give the caller's words, or --wav FILE");
            return super::EXIT_USAGE;
        }
    };
    match print(args, &text, confidence, &intents, out) {
        Ok(()) => super::EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            super::EXIT_USAGE
        }
    }
}

fn print(
    args: &ExplainArgs,
    text: &str,
    confidence: f32,
    intents: &[(String, Vec<String>)],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let lang = args.lang.as_str();
    let ex = nlu::explain(text, lang, intents);
    writeln!(out, "text                   {text:?}")?;
    writeln!(out, "1. normalised          {:?}", ex.normalized)?;
    writeln!(out, "2. contractions        {:?}", ex.contractions_expanded)?;
    writeln!(out, "3. numbers → digits    {:?}", ex.canonical.join(" "))?;
    writeln!(
        out,
        "4. phrases (own at 1.0, built-in synonyms at {}):",
        nlu::SYNONYM_SCORE
    )?;
    for p in &ex.phrases {
        let what = match &p.outcome {
            PhraseOutcome::Found {
                at,
                similarity,
                score,
            } => {
                let near = if *similarity < 1.0 { ", near miss" } else { "" };
                format!("found at word {at}{near}: score {score:.2}")
            }
            PhraseOutcome::Negated { at, by } => format!(
                "at word {at}, but negated by {:?} (word {by}): does not count",
                ex.canonical.get(*by).map_or("", String::as_str)
            ),
            PhraseOutcome::NotFound => "-".to_owned(),
        };
        // Only what matters: every own phrase, and synonyms that were found or negated.
        if p.source == "own" || !matches!(p.outcome, PhraseOutcome::NotFound) {
            writeln!(
                out,
                "   {:<10} {:<8} {:<24} {what}",
                p.intent,
                p.source,
                format!("{:?}", p.phrase)
            )?;
        }
    }
    writeln!(out, "5. intents heard       {:?}", ex.heard)?;
    match &ex.result {
        Some(m) => {
            let penalty = if ex.heard.len() > 1 {
                format!(
                    " (× {} for hearing {} intents)",
                    nlu::AMBIGUITY_PENALTY,
                    ex.heard.len()
                )
            } else {
                String::new()
            };
            writeln!(
                out,
                "   best               {} score {:.2}{penalty}",
                m.intent, m.score
            )?;
        }
        None => writeln!(out, "   best               none")?,
    }
    let verdict = nlu::verdict(
        text,
        confidence,
        lang,
        intents,
        args.threshold,
        args.confirm_min,
    );
    let score = ex
        .result
        .as_ref()
        .map(|m| m.score.min(confidence.clamp(0.0, 1.0)));
    writeln!(
        out,
        "6. answer score        min(recogniser {confidence:.2}, match {}) = {}",
        ex.result
            .as_ref()
            .map_or("-".to_owned(), |m| format!("{:.2}", m.score)),
        score.map_or("-".to_owned(), |s| format!("{s:.2}"))
    )?;
    let v = match verdict {
        Verdict::Accept { intent, .. } => format!("taken: {intent} (≥ {:.2})", args.threshold),
        Verdict::Confirm { intent, .. } => format!(
            "read back: \"did you say {intent}?\" (below {:.2}, at least confirm.min)",
            args.threshold
        ),
        Verdict::NoMatch { heard: Some(m) } => format!(
            "no-match: {} heard but below {:.2}{}",
            m.intent,
            args.threshold,
            if args.confirm_min.is_some() {
                " and below confirm.min"
            } else {
                " and the node has no confirm:"
            }
        ),
        Verdict::NoMatch { heard: None } => "no-match: no expected answer heard".to_owned(),
    };
    writeln!(out, "7. verdict             {v}")?;
    let dom = nlu::dates::day_of_month(text, lang);
    writeln!(
        out,
        "as a day of the month  {}",
        dom.map_or("-".to_owned(), |d| d.to_string())
    )?;
    let today = jiff::Zoned::now().date();
    writeln!(
        out,
        "as a date              {} (today {today})",
        nlu::dates::parse_date(text, lang, today).map_or("-".to_owned(), |d| d.to_string())
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str, lang: &str) -> ExplainArgs {
        ExplainArgs {
            text: Some(text.to_owned()),
            lang: lang.to_owned(),
            phrases: Vec::new(),
            intents: Vec::new(),
            confidence: 1.0,
            threshold: nlu::DEFAULT_THRESHOLD,
            confirm_min: None,
            wav: None,
            model: None,
            scenario: None,
            node: None,
        }
    }

    fn run_str(a: &ExplainArgs) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(a, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn negated_phrase_is_shown_and_not_taken() {
        let mut a = args("it isn't right", "en");
        a.phrases = vec!["yes".into(), "correct".into()];
        let (code, out, _) = run_str(&a);
        assert_eq!(code, 0);
        assert!(out.contains("\"it is not right\""), "{out}");
        assert!(out.contains("negated by \"not\""), "{out}");
        assert!(out.contains("no-match"), "{out}");
    }

    #[test]
    fn ordinal_day_and_verdict() {
        let mut a = args("Пятнадцатого", "ru");
        a.intents = vec!["d15=15".into(), "d16=16".into()];
        a.confidence = 0.5;
        a.confirm_min = Some(0.2);
        let (code, out, _) = run_str(&a);
        assert_eq!(code, 0);
        assert!(out.contains("\"15\""), "{out}");
        assert!(out.contains("read back"), "{out}");
        assert!(out.contains("as a day of the month  15"), "{out}");
    }

    #[test]
    fn a_scenario_question_takes_its_keys_said_aloud() {
        let dir = std::env::temp_dir().join(format!("ivrflow-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("menu.yaml");
        std::fs::write(
            &file,
            "version: 1\nname: menu\nlanguages: [en, ru]\nstart: q\nnodes:\n  q:\n    ask:\n      prompt: [hello]\n      input: [dtmf, speech]\n      intents:\n        sales: { dtmf: [\"1\"], phrases: { en: [sales] } }\n        support: { dtmf: [\"2\"], phrases: { en: [support] } }\n    on: { sales: bye, support: bye, noinput: bye, nomatch: bye }\n  bye:\n    hangup: {}\n",
        )
        .unwrap();
        let mut a = args("number one please", "en");
        a.scenario = Some(file.clone());
        a.node = Some("q".into());
        let (code, out, err) = run_str(&a);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("sales: \"1\""), "{out}");
        assert!(out.contains("taken: sales"), "{out}");
        let mut a = args("один", "ru");
        a.scenario = Some(file.clone());
        a.node = Some("q".into());
        let (_, out, _) = run_str(&a);
        assert!(out.contains("taken: sales"), "{out}");
        let mut a = args("yes", "en");
        a.scenario = Some(file);
        a.node = Some("nope".into());
        let (code, _, err) = run_str(&a);
        assert_eq!(code, super::super::EXIT_USAGE);
        assert!(err.contains("no node `nope`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn usage_errors() {
        let a = args("yes", "en");
        let (code, _, err) = run_str(&a);
        assert_eq!(code, super::super::EXIT_USAGE);
        assert!(err.contains("--phrases"), "{err}");
        let mut a = args("yes", "en");
        a.intents = vec!["nonsense".into()];
        assert_eq!(run_str(&a).0, super::super::EXIT_USAGE);
    }
}
