//! Speech recognition: a caller's utterance (8 kHz telephone audio) → text with a confidence.
//!
//! - [`Recognizer`]: the one trait the rest of the crate uses; [`whisper::WhisperRecognizer`]
//!   is the real backend (whisper.cpp through whisper-rs, a local ggml model), and
//!   [`ScriptedRecognizer`] a deterministic one for tests of the call plumbing.
//! - [`whisper::WhisperModel`]: loading and validating a ggml model at start-up, so a missing
//!   or corrupt model is an error before the first call, naming the fix (`./scripts/setup.sh`).
//! - [`listen::Listener`]: the speech side of one call (endpointing with the node's
//!   timers, barge-in, holding an incomplete answer, recording), sans-IO.
//! - [`pool::AsrPool`]: dedicated OS threads with a bounded queue. Recognition never runs on
//!   the task that paces RTP; results come back through a callback (the runtime's channel).
//! - [`prepare`]: 8 kHz → 16 kHz, silence padding for very short answers, and the decode
//!   window (`audio_ctx`) sized to the utterance instead of Whisper's fixed 30 s.
//! - [`level`]: the caller's level — an AGC before the voice detector and a peak
//!   normalisation before Whisper (quiet callers were a sixth of issue 16's failures).
//!
//! How the confidence of a spoken answer is computed is in `docs/speech.md`.
//!
//! Not here: voice-activity detection and endpointing (`media::vad`, sans-IO, in the call
//! core) and intent classification (`nlu`). Transcripts are personal data: this module
//! logs them only through [`crate::pii::Pii`].

pub mod level;
pub mod listen;
pub mod pool;
pub mod whisper;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a recogniser heard.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// The text, trimmed; empty when nothing intelligible was said.
    pub text: String,
    /// In [0, 1]: the mean probability of the text tokens, lowered by Whisper's no-speech
    /// probability. 0 for an empty text.
    pub confidence: f32,
    /// The language the decoder was told (or detected).
    pub lang: String,
    /// The text is one of the expected phrases chosen by scoring them against the audio
    /// (the free transcript named none of them).
    pub constrained: bool,
    /// Length of the audio that was recognised.
    pub audio: Duration,
    /// Wall time the decode took (for the benchmark and logs; not used for decisions).
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AsrError {
    #[error(
        "speech model {path} not found. Run ./scripts/setup.sh (it downloads and converts the \
         Whisper models into models/), or point `asr.model` / --model at a ggml Whisper model"
    )]
    ModelMissing { path: PathBuf },
    #[error(
        "speech model {path} is not a usable ggml Whisper model ({reason}). Re-create it with \
         ./scripts/fetch-model.sh --force"
    )]
    ModelInvalid { path: PathBuf, reason: String },
    #[error("speech model {path} failed its self-test: {reason}")]
    SelfTest { path: PathBuf, reason: String },
    #[error("language `{lang}` is not supported by the English-only model {model}")]
    Language { lang: String, model: String },
    #[error("recognition failed: {0}")]
    Decode(String),
    #[error("{path}: cannot read audio: {reason}")]
    Audio { path: PathBuf, reason: String },
}

/// A speech recogniser. Implementations are used from one worker thread each (`&mut self`).
pub trait Recognizer: Send {
    /// Recognise `audio` (8 kHz mono, as received from the line) in `lang` (ISO 639-1: "ru",
    /// "uk", "en"), with `phrases` the answers the question expects (they bias the decoder;
    /// empty for open questions); an entry may list alternatives of one answer separated
    /// by [`ALTERNATIVES`].
    fn recognize(
        &mut self,
        audio: &[i16],
        lang: &str,
        phrases: &[String],
    ) -> Result<Transcript, AsrError>;

    /// [`Recognizer::recognize`] that gives up early (with an error) once `cancel` is set;
    /// recognisers that cannot stop midway just finish.
    fn recognize_cancellable(
        &mut self,
        audio: &[i16],
        lang: &str,
        phrases: &[String],
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Transcript, AsrError> {
        let _ = cancel;
        self.recognize(audio, lang, phrases)
    }
}

/// Separates the alternatives of one answer in a phrase list entry (defined by the dialogue,
/// which writes the lists; see [`crate::dialogue::ALTERNATIVES`]).
pub use crate::dialogue::ALTERNATIVES;

/// The phrases of a list whose entries may group alternatives ([`ALTERNATIVES`]), one by
/// one, with the index of the answer (entry) each belongs to.
pub fn split_alternatives(phrases: &[String]) -> (Vec<String>, Vec<usize>) {
    let mut flat = Vec::new();
    let mut group = Vec::new();
    for (g, entry) in phrases.iter().enumerate() {
        for p in entry
            .split(ALTERNATIVES)
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            flat.push(p.to_owned());
            group.push(g);
        }
    }
    (flat, group)
}

/// Telephone audio rate.
pub const LINE_RATE: u32 = 8000;
/// Whisper's input rate.
pub const WHISPER_RATE: u32 = 16000;
/// Whisper encodes 30 s into 1500 positions: one per 20 ms (320 samples at 16 kHz).
pub const SAMPLES_PER_AUDIO_CTX: usize = 320;
/// Very short utterances ("да", "no") are padded with silence to at least this long, and
/// always get this much silence before and after: Whisper drops or mishears words that
/// touch the edges of its window.
pub const MIN_AUDIO: Duration = Duration::from_millis(1500);
pub const EDGE_PAD: Duration = Duration::from_millis(200);
/// Extra decode-window positions beyond the audio: a window cut exactly at the end of the
/// audio makes Whisper repeat or hallucinate; 64 positions (1.28 s) is a measured margin.
pub const AUDIO_CTX_MARGIN: usize = 64;

/// Audio ready for Whisper.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// 16 kHz, [-1, 1].
    pub samples: Vec<f32>,
    /// Decode window in encoder positions (0 = Whisper's full 30 s).
    pub audio_ctx: usize,
}

/// How the decode window is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Sized to the utterance plus [`AUDIO_CTX_MARGIN`] (the default).
    Fit,
    /// Whisper's fixed 30 s window (1500 positions): the reference for the benchmark.
    Full,
}

/// 8 kHz line audio → padded 16 kHz samples and the decode window.
pub fn prepare(audio: &[i16], window: Window) -> Prepared {
    let up = crate::media::prompts::resample(audio, LINE_RATE, WHISPER_RATE);
    let edge = (WHISPER_RATE as u128 * EDGE_PAD.as_millis() / 1000) as usize;
    let min = (WHISPER_RATE as u128 * MIN_AUDIO.as_millis() / 1000) as usize;
    let body = up.len() + 2 * edge;
    let total = body.max(min);
    let lead = edge + (total - body) / 2;
    let mut samples = vec![0.0f32; total];
    for (o, &s) in samples[lead..].iter_mut().zip(&up) {
        *o = f32::from(s) / 32768.0;
    }
    let audio_ctx = match window {
        Window::Full => 0,
        Window::Fit => {
            let ctx = total.div_ceil(SAMPLES_PER_AUDIO_CTX) + AUDIO_CTX_MARGIN;
            if ctx >= 1500 { 0 } else { ctx }
        }
    };
    Prepared { samples, audio_ctx }
}

/// The initial prompt for closed questions: the expected answers, so the decoder favours
/// them ("да" rather than "Да!", "так" rather than "Так?"). Numbers are left out: a prompt
/// "0, 1, 2, 3…" makes Whisper continue the count instead of listening (measured on the
/// fixtures); closed numeric answers are handled by rescoring instead.
pub fn initial_prompt(phrases: &[String]) -> Option<String> {
    initial_prompt_in(phrases, None)
}

/// [`initial_prompt`]; with `spell` = Some(lang), numbers are put in as words of that
/// language ("zero, one, two.", «нуль, один, два.») instead of being left out.
pub fn initial_prompt_in(phrases: &[String], spell: Option<&str>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for p in phrases {
        let p = p.trim();
        let numeric = p.chars().all(|c| c.is_ascii_digit() || c.is_whitespace());
        let p = match (numeric, spell) {
            (false, _) => p.to_owned(),
            (true, Some(lang)) => match p
                .parse::<u64>()
                .ok()
                .and_then(|n| crate::nlu::say_number(n, lang))
            {
                Some(words) => words,
                None => continue,
            },
            (true, None) => continue,
        };
        if !p.is_empty() && !seen.iter().any(|s| s.to_lowercase() == p.to_lowercase()) {
            seen.push(p);
        }
    }
    if seen.is_empty() {
        None
    } else {
        Some(format!("{}.", seen.join(", ")))
    }
}

/// The default model's file: Whisper base (multilingual) with ggml's q8_0 matrices. On the
/// human recordings it recognises as well as the float16 file (40/40 answers right in
/// tests/asr_accuracy.rs, both) and decodes ~12–25 % faster on 2 cores (`cargo bench
/// --bench asr`), which is the difference in the end-of-speech → next-prompt latency.
pub const DEFAULT_MODEL: &str = "models/ggml-base-q8_0.bin";

/// Where the default model is looked for: `$IVRFLOW_MODEL`, else [`DEFAULT_MODEL`] in the
/// working directory, else next to the crate's manifest.
pub fn default_model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("IVRFLOW_MODEL") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(DEFAULT_MODEL);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_MODEL)
}

/// Recognise a WAV/MP3/… file with the default model (`simulate --wav`): the file is brought
/// to 8 kHz and passed through µ-law, as a phone line would, then recognised.
pub fn transcribe_file(
    path: &Path,
    lang: &str,
    phrases: &[String],
) -> Result<(String, f32), String> {
    transcribe_file_with(&default_model_path(), path, lang, phrases)
}

/// [`transcribe_file`] with an explicit model.
pub fn transcribe_file_with(
    model: &Path,
    path: &Path,
    lang: &str,
    phrases: &[String],
) -> Result<(String, f32), String> {
    let pcm = crate::media::prompts::load_file(path).map_err(|e| {
        AsrError::Audio {
            path: path.to_owned(),
            reason: e.to_string(),
        }
        .to_string()
    })?;
    let line = through_line(&pcm, crate::media::Codec::Pcmu);
    let model = whisper::WhisperModel::load(model).map_err(|e| e.to_string())?;
    let mut rec = model.recognizer(whisper::DecodeOptions::default());
    let t = rec
        .recognize(&line, lang, phrases)
        .map_err(|e| e.to_string())?;
    Ok((t.text, t.confidence))
}

/// 8 kHz PCM through a G.711 encoder and decoder, as a phone line carries it.
pub fn through_line(pcm: &[i16], codec: crate::media::Codec) -> Vec<i16> {
    let mut bytes = Vec::with_capacity(pcm.len());
    crate::media::g711::encode(codec, pcm, &mut bytes);
    let mut out = Vec::with_capacity(pcm.len());
    crate::media::g711::decode(codec, &bytes, &mut out);
    out
}

/// A recogniser that answers from a script, for tests of the call plumbing (timing,
/// barge-in, cancellation) where the words do not matter. Each call takes the next answer;
/// when the script runs out it hears nothing.
#[derive(Debug, Default)]
pub struct ScriptedRecognizer {
    answers: std::collections::VecDeque<(String, f32)>,
}

impl ScriptedRecognizer {
    pub fn new(answers: impl IntoIterator<Item = (String, f32)>) -> Self {
        ScriptedRecognizer {
            answers: answers.into_iter().collect(),
        }
    }
}

impl Recognizer for ScriptedRecognizer {
    fn recognize(
        &mut self,
        audio: &[i16],
        lang: &str,
        _phrases: &[String],
    ) -> Result<Transcript, AsrError> {
        let (text, confidence) = self.answers.pop_front().unwrap_or_default();
        Ok(Transcript {
            text,
            confidence,
            lang: lang.to_owned(),
            constrained: false,
            audio: Duration::from_micros(audio.len() as u64 * 1_000_000 / u64::from(LINE_RATE)),
            elapsed: Duration::ZERO,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_audio_is_padded_and_centred() {
        let p = prepare(&[1000i16; 800], Window::Fit); // 100 ms
        assert_eq!(p.samples.len(), 24000); // 1.5 s at 16 kHz
        let first = p.samples.iter().position(|&s| s.abs() > 0.01).unwrap();
        assert!((10000..12000).contains(&first), "{first}");
        assert_eq!(p.audio_ctx, 24000usize.div_ceil(320) + AUDIO_CTX_MARGIN);
    }

    #[test]
    fn long_audio_gets_edges_and_a_fitted_window() {
        let p = prepare(&vec![0i16; 8000 * 4], Window::Fit);
        assert_eq!(p.samples.len(), 64000 + 2 * 3200);
        assert_eq!(p.audio_ctx, 220 + AUDIO_CTX_MARGIN);
        assert_eq!(prepare(&vec![0i16; 8000 * 4], Window::Full).audio_ctx, 0);
        // Beyond 30 s the window is the full one.
        assert_eq!(prepare(&vec![0i16; 8000 * 29], Window::Fit).audio_ctx, 0);
    }

    #[test]
    fn prompt_lists_phrases_once() {
        let ph = [
            "да".to_owned(),
            "Да".to_owned(),
            " ".to_owned(),
            "yes".to_owned(),
        ];
        assert_eq!(initial_prompt(&ph).unwrap(), "да, yes.");
        assert_eq!(initial_prompt(&[]), None);
    }

    #[test]
    fn scripted_recognizer_answers_in_order() {
        let mut r = ScriptedRecognizer::new([("да".to_owned(), 0.9)]);
        let t = r.recognize(&[0; 8000], "ru", &[]).unwrap();
        assert_eq!((t.text.as_str(), t.audio), ("да", Duration::from_secs(1)));
        assert_eq!(r.recognize(&[0; 80], "ru", &[]).unwrap().text, "");
    }
}
