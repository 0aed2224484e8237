//! The Whisper backend: whisper.cpp (via whisper-rs) on a local ggml model.
//!
//! [`WhisperModel::load`] reads and checks a model once (at start-up); each worker thread
//! then makes its own [`WhisperRecognizer`] (a decoder state, ~20–40 MB) sharing the
//! weights. Decoding is tuned for closed answers on the phone:
//! - the decode window (`audio_ctx`) is fitted to the utterance ([`super::prepare`]), which
//!   cuts the encoder's work ~8× for a 2 s answer compared with the fixed 30 s window;
//! - the node's expected phrases go into the initial prompt (numbers as words);
//! - closed questions: every expected phrase is scored against the audio and the answer
//!   decided by its odds against the runner-up and by agreement with the free transcript
//!   ([`decide_closed`]; docs/speech.md) — an answer the two views disagree on is never
//!   reported as sure;
//! - the language is set per request (no language detection on 1 s of audio);
//! - greedy decoding, no timestamps, one segment, no context carried between calls (a
//!   previous caller's words must never leak into the next transcript).
//!
//! Not here: threads (see [`super::pool`]) and audio framing (see `media::vad`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use super::{AsrError, Recognizer, Transcript, Window};
use crate::pii::Pii;

/// ggml's magic number, little-endian "lmgg".
const GGML_MAGIC: u32 = 0x6767_6d6c;

/// Languages the multilingual model is used with here (others work but are untested).
pub const LANGUAGES: [&str; 3] = ["ru", "uk", "en"];

/// What a model file says about itself (read from its header before whisper.cpp loads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelHeader {
    pub n_vocab: u32,
    pub n_audio_state: u32,
    pub n_audio_layer: u32,
    pub n_text_layer: u32,
    pub n_mels: u32,
}

impl ModelHeader {
    pub fn multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// "base", "tiny.en", …, from the dimensions.
    pub fn kind(&self) -> String {
        let size = match (self.n_audio_state, self.n_audio_layer) {
            (384, 4) => "tiny",
            (512, 6) => "base",
            (768, 12) => "small",
            (1024, 24) => "medium",
            (1280, 32) => "large",
            _ => "custom",
        };
        if self.multilingual() {
            size.to_owned()
        } else {
            format!("{size}.en")
        }
    }
}

/// Reads and sanity-checks a ggml model header.
pub fn read_header(path: &Path) -> Result<ModelHeader, AsrError> {
    use std::io::Read;
    let invalid = |reason: String| AsrError::ModelInvalid {
        path: path.to_owned(),
        reason,
    };
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AsrError::ModelMissing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(invalid(format!("cannot open: {e}"))),
    };
    let mut h = [0u8; 48];
    f.read_exact(&mut h)
        .map_err(|e| invalid(format!("cannot read the header: {e}")))?;
    let w = |i: usize| u32::from_le_bytes([h[4 * i], h[4 * i + 1], h[4 * i + 2], h[4 * i + 3]]);
    if w(0) != GGML_MAGIC {
        return Err(invalid(format!("bad magic {:#010x}", w(0))));
    }
    let header = ModelHeader {
        n_vocab: w(1),
        n_audio_state: w(3),
        n_audio_layer: w(5),
        n_text_layer: w(9),
        n_mels: w(10),
    };
    if !(51864..=51866).contains(&header.n_vocab) || header.n_mels != 80 {
        return Err(invalid(format!(
            "unexpected dimensions (n_vocab {}, n_mels {})",
            header.n_vocab, header.n_mels
        )));
    }
    Ok(header)
}

/// Decoder settings; the defaults are the ones measured best for closed answers.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Threads whisper.cpp uses for one utterance.
    pub threads: usize,
    pub window: Window,
    /// Put the expected phrases in the initial prompt.
    pub use_prompt: bool,
    /// Temperature step of the fallback decode when the output looks like a loop (0: off).
    pub temperature_inc: f32,
    /// When the free transcript names none of the expected phrases, or names one with a
    /// confidence under `rescore_below`, score the phrases against the audio and take the
    /// best one when its probability is at least `rescore_min` and its share among all
    /// phrases at least `rescore_share` (and, for a named one, when that beats the free
    /// transcript's confidence).
    pub rescore: bool,
    pub rescore_min: f32,
    pub rescore_share: f32,
    pub rescore_below: f32,
    /// Bring each utterance to a fixed peak level before Whisper (`level::normalize_peak`).
    pub normalize: bool,
    /// Closed questions: score every expected phrase against the audio on every answer and
    /// decide by [`decide_closed`] (the free transcript is one vote, the scores the other),
    /// instead of scoring only when the free transcript names nothing.
    pub score_always: bool,
    /// Put numbers into the initial prompt as words ("zero, one, two.") instead of
    /// leaving them out. Measured on the held-out FSDD take 1 (60 answers): 52 right
    /// instead of 48, none wrong; without words for them the free decode writes "Piro",
    /// "phone", "Bye" for zero, four, five.
    pub spell_numbers: bool,
    /// Skip scoring a phrase whose best possible score is under 1/100 of the best found so
    /// far (it cannot change the decision); off only to record every score.
    pub prune: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            threads: 2,
            window: Window::Fit,
            use_prompt: true,
            temperature_inc: 0.0,
            rescore: true,
            rescore_min: 0.05,
            rescore_share: 0.5,
            // A mumbled "yeah" for "yes" comes out at ~0.3; scoring then finds "yes" with
            // most of the probability (tests/sipp_speech.rs). A clear answer (≥ 0.6) is
            // not worth the ~200 ms of decoder calls.
            rescore_below: 0.6,
            normalize: true,
            score_always: true,
            spell_numbers: true,
            prune: true,
        }
    }
}

/// A loaded ggml Whisper model (the weights, shared by every worker).
#[derive(Clone)]
pub struct WhisperModel {
    ctx: Arc<WhisperContext>,
    path: PathBuf,
    header: ModelHeader,
    load_time: Duration,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("path", &self.path)
            .field("kind", &self.header.kind())
            .finish()
    }
}

fn init_logging_hooks() {
    static ONCE: Once = Once::new();
    // whisper.cpp's own logging is silenced (whisper-rs is built without a log backend):
    // in debug builds it prints decoded tokens, i.e. pieces of transcripts, which are
    // personal data. Its failures still surface as errors from the calls themselves.
    ONCE.call_once(whisper_rs::install_logging_hooks);
}

impl WhisperModel {
    /// Loads a model and checks that whisper.cpp accepts it (header, every tensor).
    pub fn load(path: &Path) -> Result<WhisperModel, AsrError> {
        init_logging_hooks();
        let header = read_header(path)?;
        let started = Instant::now();
        let mut params = WhisperContextParameters::default();
        params.use_gpu(false);
        let ctx =
            WhisperContext::new_with_params(path, params).map_err(|e| AsrError::ModelInvalid {
                path: path.to_owned(),
                reason: format!("whisper.cpp refused it: {e}"),
            })?;
        Ok(WhisperModel {
            ctx: Arc::new(ctx),
            path: path.to_owned(),
            header,
            load_time: started.elapsed(),
        })
    }

    /// Loads the model and recognises one second of a tone, proving that a decoder state
    /// can be made and a full decode completes (start-up check; ~0.2–1 s).
    pub fn load_checked(path: &Path) -> Result<WhisperModel, AsrError> {
        let model = Self::load(path)?;
        let tone: Vec<i16> = (0..8000)
            .map(|i| ((i as f32 * 0.3).sin() * 2000.0) as i16)
            .collect();
        let mut rec = model.recognizer(DecodeOptions {
            threads: 1,
            ..DecodeOptions::default()
        });
        rec.recognize(&tone, "en", &[])
            .map_err(|e| AsrError::SelfTest {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(model)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn header(&self) -> &ModelHeader {
        &self.header
    }

    pub fn kind(&self) -> String {
        self.header.kind()
    }

    pub fn multilingual(&self) -> bool {
        self.header.multilingual()
    }

    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// A recogniser for one worker thread.
    pub fn recognizer(&self, options: DecodeOptions) -> WhisperRecognizer {
        WhisperRecognizer {
            model: self.clone(),
            last: None,
            state: None,
            options,
        }
    }
}

/// One worker's decoder.
pub struct WhisperRecognizer {
    model: WhisperModel,
    /// What the last recognition saw (for tests and `explain`).
    last: Option<Diagnostics>,
    /// Made on first use, on the worker's own thread.
    state: Option<whisper_rs::WhisperState>,
    options: DecodeOptions,
}

impl WhisperRecognizer {
    pub fn options_mut(&mut self) -> &mut DecodeOptions {
        &mut self.options
    }

    /// What the last recognition saw: the free transcript and, for a closed question, the
    /// score of each expected phrase. Transcripts are personal data: log them only
    /// through [`Pii`].
    pub fn last_diagnostics(&self) -> Option<&Diagnostics> {
        self.last.as_ref()
    }
}

/// The evidence of one recognition of a closed answer.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    /// The free (unconstrained) transcript and its confidence.
    pub free_text: String,
    pub free_confidence: f32,
    /// Whisper's no-speech probability.
    pub no_speech: f32,
    /// Indices of the expected phrases the free transcript names.
    pub named: Vec<usize>,
    /// Each scored phrase's best form and probability (empty: not scored).
    pub scores: Vec<PhraseScore>,
}

impl Recognizer for WhisperRecognizer {
    fn recognize(
        &mut self,
        audio: &[i16],
        lang: &str,
        phrases: &[String],
    ) -> Result<Transcript, AsrError> {
        self.recognize_cancellable(audio, lang, phrases, &AtomicBool::new(false))
    }

    fn recognize_cancellable(
        &mut self,
        audio: &[i16],
        lang: &str,
        phrases: &[String],
        cancel: &AtomicBool,
    ) -> Result<Transcript, AsrError> {
        let started = Instant::now();
        // One answer's alternatives ("not yet|haven't paid") are scored one by one and are
        // not each other's rivals.
        let (flat, answer_of) = super::split_alternatives(phrases);
        let phrases = flat.as_slice();
        let lang = if self.model.multilingual() {
            lang
        } else if lang == "en" || lang.is_empty() {
            "en"
        } else {
            return Err(AsrError::Language {
                lang: lang.to_owned(),
                model: self.model.kind(),
            });
        };
        let mut prepared = super::prepare(audio, self.options.window);
        if self.options.normalize {
            super::level::normalize_peak(&mut prepared.samples);
        }
        if self.state.is_none() {
            self.state =
                Some(self.model.ctx.create_state().map_err(|e| {
                    AsrError::Decode(format!("cannot create a decoder state: {e}"))
                })?);
        }
        let Some(state) = self.state.as_mut() else {
            return Err(AsrError::Decode("no decoder state".to_owned()));
        };
        let prompt = if self.options.use_prompt {
            super::initial_prompt_in(phrases, self.options.spell_numbers.then_some(lang))
        } else {
            None
        };
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.options.threads.max(1) as i32);
        params.set_language(Some(lang));
        params.set_translate(false);
        params.set_no_context(true);
        params.set_no_timestamps(true);
        params.set_single_segment(true);
        params.set_print_special(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_timestamps(false);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        // A closed answer is a few words: bound the decoder so a hallucination loop cannot
        // hold a worker for seconds.
        params.set_max_tokens(48);
        // A decoder that starts repeating itself ("Yes, please. Yes, please. …") on the
        // silence after a short answer is stopped at the first repeat instead of running to
        // `max_tokens`: measured on the bench's answers, a loop cost ~300 ms of a ~500 ms
        // decode. The repeat is collapsed from the text afterwards.
        // SAFETY: `stop_loops` only reads the tokens and writes the logits whisper.cpp hands
        // it; `vocab` lives on this frame until `state.full` below has returned.
        let vocab = Vocab {
            n_vocab: self.model.ctx.n_vocab(),
            eot: self.model.ctx.token_eot(),
        };
        // SAFETY: likewise `cancel` outlives `state.full`; `cancelled` only loads it.
        unsafe {
            params.set_filter_logits_callback(Some(stop_loops));
            params.set_filter_logits_callback_user_data(
                &vocab as *const Vocab as *mut std::ffi::c_void,
            );
            params.set_abort_callback(Some(cancelled));
            params
                .set_abort_callback_user_data(cancel as *const AtomicBool as *mut std::ffi::c_void);
        }
        // Greedy at temperature 0. The temperature fallback (`temperature_inc` > 0) re-decodes
        // when the output looks like a loop; measured on the fixtures it cost up to 10 s per
        // utterance on 2 cores for no accuracy gain, so it is off by default: loops
        // ("1, 1, 1, 1…") are collapsed after decoding instead.
        params.set_temperature(0.0);
        params.set_temperature_inc(self.options.temperature_inc);
        params.set_audio_ctx(prepared.audio_ctx as i32);
        if let Some(p) = &prompt {
            params.set_initial_prompt(p);
        }
        state
            .full(params, &prepared.samples)
            .map_err(|e| AsrError::Decode(e.to_string()))?;

        let eot = self.model.ctx.token_eot();
        let mut text = String::new();
        let mut probs = Vec::new();
        let mut no_speech: f32 = 0.0;
        for segment in state.as_iter() {
            no_speech = no_speech.max(segment.no_speech_probability());
            text.push_str(
                &segment
                    .to_str_lossy()
                    .map_err(|e| AsrError::Decode(e.to_string()))?,
            );
            for i in 0..segment.n_tokens() {
                if let Some(tok) = segment.get_token(i)
                    && tok.token_id() < eot
                {
                    probs.push(tok.token_probability());
                }
            }
        }
        let mut text = collapse_repeats(&clean(&text));
        let mut confidence = if text.is_empty() || probs.is_empty() {
            0.0
        } else {
            let mean = probs.iter().sum::<f32>() / probs.len() as f32;
            (mean * (1.0 - no_speech)).clamp(0.0, 1.0)
        };
        let mut constrained = false;
        let free_ms = started.elapsed().as_millis() as u64;
        let named = if phrases.is_empty() {
            Vec::new()
        } else {
            crate::nlu::named_phrases(&text, lang, phrases)
        };
        let mut diagnostics = Diagnostics {
            free_text: text.clone(),
            free_confidence: confidence,
            no_speech,
            named: named.clone(),
            scores: Vec::new(),
        };
        // A closed question: score each expected answer against the audio (the decoder's
        // own probability of saying it), always (`score_always`) or when the free
        // transcript names none of its answers or names one without conviction.
        let loop_like = names_too_many(&text, lang, phrases);
        let wanted = !phrases.is_empty()
            && self.options.rescore
            && (self.options.score_always
                || named.is_empty()
                || loop_like
                || confidence < self.options.rescore_below);
        if wanted {
            let scores = score_phrases(
                &self.model,
                state,
                lang,
                phrases,
                self.options.threads,
                cancel,
                self.options.prune,
            )?;
            tracing::debug!(?scores, free_ms, ?named, "scored the expected phrases");
            diagnostics.scores = scores.clone();
            let alike = scores
                .first()
                .map(|b| {
                    let mut alike = crate::nlu::named_phrases(&b.form, lang, phrases);
                    alike.extend(
                        (0..phrases.len())
                            .filter(|&i| i != b.phrase && answer_of[i] == answer_of[b.phrase]),
                    );
                    alike.sort_unstable();
                    alike.dedup();
                    alike
                })
                .unwrap_or_default();
            let evidence = ClosedEvidence {
                free_confidence: confidence,
                no_speech,
                named: if loop_like { Vec::new() } else { named },
                scores,
                alike,
            };
            let rule = if self.options.score_always {
                decide_closed(&evidence, &self.options)
            } else {
                decide_rescue(&evidence, &self.options)
            };
            match rule {
                Decision::Keep => {}
                Decision::Free { confidence: c } => confidence = c,
                Decision::Phrase {
                    index,
                    confidence: c,
                } => {
                    if let Some(s) = evidence.scores.iter().find(|s| s.phrase == index) {
                        text = s.form.clone();
                        confidence = c;
                        constrained = true;
                    }
                }
            }
        }
        self.last = Some(diagnostics);
        let transcript = Transcript {
            text,
            confidence,
            constrained,
            lang: lang.to_owned(),
            audio: Duration::from_micros(
                audio.len() as u64 * 1_000_000 / u64::from(super::LINE_RATE),
            ),
            elapsed: started.elapsed(),
        };
        tracing::debug!(
            text = %Pii(&transcript.text),
            confidence = transcript.confidence,
            audio_ms = transcript.audio.as_millis() as u64,
            decode_ms = transcript.elapsed.as_millis() as u64,
            audio_ctx = prepared.audio_ctx,
            lang,
            "recognised"
        );
        Ok(transcript)
    }
}

/// Whether a decoded token sequence has started to loop: its last `p` tokens repeat the
/// `p` before them, twice over for `p` ≥ 3, three times for `p` = 2 (" 1", ",") and four
/// times for one token (so "1 1 5" read digit by digit is not cut).
fn looping(ids: &[i32]) -> bool {
    let n = ids.len();
    (1..=12.min(n / 2)).any(|p| {
        let needed = match p {
            1 => 4,
            2 => 3,
            _ => 2,
        };
        if n < p * needed {
            return false;
        }
        let tail = &ids[n - p..];
        (1..needed).all(|k| &ids[n - (k + 1) * p..n - k * p] == tail)
    })
}

/// whisper.cpp's logits filter: once the tokens decoded so far loop, only end-of-text is
/// left to choose.
unsafe extern "C" fn stop_loops(
    _ctx: *mut whisper_rs::WhisperSysContext,
    _state: *mut whisper_rs::WhisperSysState,
    tokens: *const whisper_rs::WhisperTokenData,
    n_tokens: std::os::raw::c_int,
    logits: *mut f32,
    user_data: *mut std::ffi::c_void,
) {
    let Ok(n) = usize::try_from(n_tokens) else {
        return;
    };
    if user_data.is_null() || tokens.is_null() || logits.is_null() || n < 2 {
        return;
    }
    // SAFETY: whisper.cpp passes its `n_tokens` decoded tokens, valid for the call, and
    // `user_data` is the `Vocab` set next to this callback.
    let (ids, vocab) = unsafe {
        let toks = std::slice::from_raw_parts(tokens, n);
        let ids: Vec<i32> = toks.iter().map(|t| t.id).collect();
        (ids, &*(user_data as *const Vocab))
    };
    if !looping(&ids) {
        return;
    }
    let Ok(n_vocab) = usize::try_from(vocab.n_vocab) else {
        return;
    };
    // SAFETY: `logits` is the current decoder's row, one float per vocabulary entry.
    let logits = unsafe { std::slice::from_raw_parts_mut(logits, n_vocab) };
    for (i, l) in logits.iter_mut().enumerate() {
        if i as i64 != i64::from(vocab.eot) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// whisper.cpp's abort callback: stop once the owner has cancelled the recognition.
unsafe extern "C" fn cancelled(user_data: *mut std::ffi::c_void) -> bool {
    // SAFETY: `user_data` is the `AtomicBool` set next to this callback, alive for the call.
    !user_data.is_null() && unsafe { (*(user_data as *const AtomicBool)).load(Ordering::Relaxed) }
}

/// What [`stop_loops`] needs to know of the model.
struct Vocab {
    n_vocab: std::os::raw::c_int,
    eot: std::os::raw::c_int,
}

/// Whether the transcript names expected phrases (as `nlu` would match them) in three or
/// more places: a decoder loop ("5, 6, 7, 8, 9"), not an answer. Synonyms of one word said
/// are one place: "Yes." against [yes, confirm, correct] names one.
fn names_too_many(text: &str, lang: &str, phrases: &[String]) -> bool {
    !phrases.is_empty() && crate::nlu::phrase_places(text, lang, phrases) > 2
}

/// `logits` turned into log-probabilities (log-softmax), in place.
fn log_softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    let shift = max + sum.ln();
    logits.iter_mut().for_each(|l| *l -= shift);
}

/// Log-probability of `token` in a log-softmaxed row.
fn lp(row: &[f32], token: i32) -> f32 {
    usize::try_from(token)
        .ok()
        .and_then(|t| row.get(t))
        .copied()
        .unwrap_or(f32::NEG_INFINITY)
}

/// One way of saying an expected phrase, as tokens.
struct Candidate {
    phrase: usize,
    form: String,
    tokens: Vec<i32>,
}

/// An expected phrase scored against the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct PhraseScore {
    /// Index into the question's phrases.
    pub phrase: usize,
    /// The form that scored best ("1" or «один»).
    pub form: String,
    /// Geometric-mean probability of its tokens and of an end after them, in [0, 1].
    pub probability: f32,
}

/// A phrase whose score cannot come within this factor of the best is not decoded further.
const PRUNE_FACTOR: f32 = 0.01;

// The score is the geometric mean over the answer's own steps. Measured and not kept: the
// probability of the whole answer per two steps (no division by its own length) fixed
// Russian «десять» scored below «восемьдесят» (prompt voice 17 → 20 of 21) but lost
// Ukrainian numbers to one-token digit forms (" 14" over «одинадцять»: 24 → 17 of 30).

/// Scores each expected phrase (and its spoken forms: "1" → «один», "one") as the whole
/// answer, using the encoder output that the free decode left in `state`: the geometric
/// mean of the probabilities of " form" token by token, then of an end (punctuation or end
/// of text). Returns each phrase's best form, best first.
///
/// Cost is one decoder call per distinct token prefix: of a form's two casings ("yes",
/// "Yes") only the one whose first token is likelier is followed, forms sharing their first
/// tokens share those calls, and (with `prune`) a form whose first token already makes it
/// less than 1/100 as likely as the best form found is dropped (the mean over its n + 1
/// steps is at most its first step's share of it).
fn score_phrases(
    model: &WhisperModel,
    state: &mut whisper_rs::WhisperState,
    lang: &str,
    phrases: &[String],
    threads: usize,
    cancel: &AtomicBool,
    prune: bool,
) -> Result<Vec<PhraseScore>, AsrError> {
    let ctx = &model.ctx;
    let err = |e: whisper_rs::WhisperError| AsrError::Decode(format!("scoring: {e}"));
    let cancelled = || AsrError::Decode("cancelled".to_owned());
    let mut prefix = vec![ctx.token_sot()];
    if model.multilingual() {
        let id = whisper_rs::get_lang_id(lang).unwrap_or(0);
        prefix.push(ctx.token_lang(id));
        prefix.push(ctx.token_transcribe());
    }
    prefix.push(ctx.token_not());
    let threads = threads.max(1);
    // Only the logits after the last prefix token are needed: one call.
    state.decode(&prefix, 0, threads).map_err(err)?;
    let mut root = state.get_logits().map_err(err)?.to_vec();
    log_softmax(&mut root);
    let enders: Vec<i32> = [".", ",", "!", "?"]
        .iter()
        .filter_map(|p| ctx.tokenize(p, 4).ok())
        .filter(|t| t.len() == 1)
        .map(|t| t[0])
        .chain([ctx.token_eot()])
        .collect();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, phrase) in phrases.iter().enumerate() {
        for form in crate::nlu::spoken_forms(phrase, lang) {
            let mut cap = form.clone();
            if let Some(first) = form.chars().next() {
                cap = first.to_uppercase().chain(form.chars().skip(1)).collect();
            }
            let mut best: Option<Vec<i32>> = None;
            for variant in [form.clone(), cap] {
                if !seen.insert((i, variant.clone())) {
                    continue;
                }
                let tokens = ctx.tokenize(&format!(" {variant}"), 32).map_err(err)?;
                if tokens.is_empty() {
                    continue;
                }
                if best
                    .as_ref()
                    .is_none_or(|b| lp(&root, tokens[0]) > lp(&root, b[0]))
                {
                    best = Some(tokens);
                }
            }
            if let Some(tokens) = best {
                candidates.push(Candidate {
                    phrase: i,
                    form: form.clone(),
                    tokens,
                });
            }
        }
    }
    // The likeliest first tokens first (so pruning bites early), then in token order within
    // equal first tokens so that shared prefixes are decoded once.
    candidates.sort_by(|a, b| {
        lp(&root, b.tokens[0])
            .total_cmp(&lp(&root, a.tokens[0]))
            .then_with(|| a.tokens.cmp(&b.tokens))
    });
    let mut path: Vec<i32> = Vec::new();
    let mut rows: Vec<Vec<f32>> = Vec::new();
    let mut per_phrase: Vec<Option<(String, f32)>> = vec![None; phrases.len()];
    let mut best_total = f32::NEG_INFINITY;
    for c in &candidates {
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled());
        }
        // Every later step only lowers the total: the first step bounds the mean.
        let bound = lp(&root, c.tokens[0]) / (c.tokens.len() + 1) as f32;
        if prune && bound < best_total + PRUNE_FACTOR.ln() {
            continue;
        }
        let common = path
            .iter()
            .zip(&c.tokens)
            .take_while(|(a, b)| a == b)
            .count();
        path.truncate(common);
        rows.truncate(common);
        for &t in &c.tokens[common..] {
            state
                .decode(&[t], prefix.len() + path.len(), threads)
                .map_err(err)?;
            let mut row = state.get_logits().map_err(err)?.to_vec();
            log_softmax(&mut row);
            path.push(t);
            rows.push(row);
        }
        let mut total = lp(&root, c.tokens[0]);
        for (k, &t) in c.tokens.iter().enumerate().skip(1) {
            total += lp(&rows[k - 1], t);
        }
        let Some(last) = rows.get(c.tokens.len() - 1) else {
            continue;
        };
        total += enders
            .iter()
            .map(|&e| lp(last, e))
            .fold(f32::NEG_INFINITY, f32::max);
        let mean = total / (c.tokens.len() + 1) as f32;
        best_total = best_total.max(mean);
        let p = mean.exp();
        let slot = &mut per_phrase[c.phrase];
        if slot.as_ref().is_none_or(|(_, b)| p > *b) {
            *slot = Some((c.form.clone(), p));
        }
    }
    let mut out: Vec<PhraseScore> = per_phrase
        .into_iter()
        .enumerate()
        .filter_map(|(phrase, s)| {
            s.map(|(form, probability)| PhraseScore {
                phrase,
                form,
                probability,
            })
        })
        .collect();
    out.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    Ok(out)
}

/// What a closed answer's recognition knows: the free transcript's confidence and the
/// phrases it names, the score of each phrase against the audio (best first), and which
/// phrases say the same answer as the best one (its synonyms: "yes" and "correct").
#[derive(Debug, Clone)]
pub struct ClosedEvidence {
    pub free_confidence: f32,
    pub no_speech: f32,
    pub named: Vec<usize>,
    pub scores: Vec<PhraseScore>,
    pub alike: Vec<usize>,
}

/// Probability taken for the runner-up when there is none (one phrase only).
const RUNNER_UP_FLOOR: f32 = 1e-4;

/// A best phrase that the free transcript does not name must beat the runner-up by this
/// much more (in log units) than one it names: e^0.5 ≈ 1.6× the odds.
pub const UNNAMED_OFFSET: f32 = 0.5;

/// Below this confidence the best phrase does not replace the free transcript (it would
/// not even be read back at the default `confirm.min` of 0.2).
pub const MIN_SUBSTITUTE: f32 = 0.2;

/// Weight of the free transcript's own confidence when both views agree.
pub const FREE_WEIGHT: f32 = 0.9;

impl ClosedEvidence {
    /// The best-scored phrase and ln(its probability / the best other answer's).
    pub fn best(&self) -> Option<(&PhraseScore, f32)> {
        let best = self.scores.first()?;
        let second = self
            .scores
            .iter()
            .skip(1)
            .find(|s| s.phrase != best.phrase && !self.alike.contains(&s.phrase))
            .map_or(RUNNER_UP_FLOOR, |s| s.probability)
            .max(1e-9);
        Some((best, (best.probability.max(1e-9) / second).ln()))
    }
}

/// What to make of a closed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The free transcript as it is.
    Keep,
    /// The free transcript, with this confidence.
    Free { confidence: f32 },
    /// Phrase `index` (its best-scored form), with this confidence.
    Phrase { index: usize, confidence: f32 },
}

/// The closed-answer rule (`score_always`). Every expected phrase is scored against the
/// audio; the evidence for the best one is its odds against the best *other* answer,
/// r = ln(p_best / p_second), turned into a confidence odds(r) = 1 − e^(−r) (twice as
/// likely: 0.5; 2.5×: 0.6; 5×: 0.8; 20×: 0.95). The free transcript is the second view:
/// - it names the best phrase (or its synonyms) and nothing else: the views agree; the
///   answer is the free transcript, as sure as the surer view: max(odds(r),
///   [`FREE_WEIGHT`] × free confidence). The free confidence counts at 0.9 of its face
///   value: with the phrases in its prompt the free decode is over-sure of the words it
///   was shown ("Three" at 0.62 for a six, measured).
/// - it names nothing ("Piro", "phone", "Bye" for zero, four, five): the best phrase, but
///   it must win by more: odds(r − [`UNNAMED_OFFSET`]);
/// - it names another answer, or several ("3, 4"): the views disagree, and the answer is
///   unsure whatever the odds — the best phrase at a confidence of at most 0.5, below any
///   usual threshold: the dialogue reads it back ("did you say …?") or asks again. A wrong
///   answer is never taken on one view against the other.
///
/// Whisper's no-speech probability lowers every confidence (× (1 − p_no_speech)).
/// Calibrated on the held-out set (docs/speech.md): a node's `confidence` of 0.6 means "at
/// least 2.5 to 1 against the runner-up, and the free transcript agrees" (4 to 1 when it
/// named nothing).
pub fn decide_closed(e: &ClosedEvidence, _o: &DecodeOptions) -> Decision {
    let Some((best, r)) = e.best() else {
        return Decision::Keep;
    };
    let speech = (1.0 - e.no_speech).clamp(0.0, 1.0);
    let odds = |r: f32| (1.0 - (-r.max(0.0)).exp()).clamp(0.0, 1.0);
    let agrees = |i: &usize| *i == best.phrase || e.alike.contains(i);
    if !e.named.is_empty() && e.named.iter().all(agrees) {
        let confidence = odds(r).max(FREE_WEIGHT * e.free_confidence) * speech;
        // The surer view gives the words: a mumbled "yeah" at 0.3 that the scores make a
        // clear "yes" is reported as "yes" (as the dialogue and the CRM saw it before).
        return if odds(r) > FREE_WEIGHT * e.free_confidence {
            Decision::Phrase {
                index: best.phrase,
                confidence,
            }
        } else {
            Decision::Free { confidence }
        };
    }
    let confidence = if e.named.is_empty() {
        odds(r - UNNAMED_OFFSET) * speech
    } else {
        (0.5 * odds(r)).min(0.5) * speech
    };
    if confidence < MIN_SUBSTITUTE {
        // Too unsure even to read back: the caller's own words stay (an out-of-grammar
        // "hello" is a no-match as "hello", not a "no" at 0.05).
        return Decision::Free {
            confidence: confidence.min(e.free_confidence),
        };
    }
    Decision::Phrase {
        index: best.phrase,
        confidence,
    }
}

/// The earlier rule (`score_always` off): scores only rescue a transcript that names
/// nothing, or one named without conviction, when the best phrase is plausible and has at
/// least `rescore_share` of the probability.
fn decide_rescue(e: &ClosedEvidence, o: &DecodeOptions) -> Decision {
    let Some(best) = e.scores.first() else {
        return Decision::Keep;
    };
    let sum: f32 = e.scores.iter().map(|s| s.probability).sum();
    let share = if sum > 0.0 {
        best.probability / sum
    } else {
        0.0
    };
    let c = share * (1.0 - e.no_speech);
    if best.probability >= o.rescore_min
        && share >= o.rescore_share
        && (e.named.is_empty() || c > e.free_confidence)
    {
        Decision::Phrase {
            index: best.phrase,
            confidence: c,
        }
    } else {
        Decision::Keep
    }
}

/// Whisper's bracketed non-speech markers ("[BLANK_AUDIO]", "(music)") are not words.
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0i32;
    for c in text.chars() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = (depth - 1).max(0),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "1, 1, 1, 1" → "1"; "no, cancel, no, cancel, no" → "no, cancel": a decoder loop on a
/// short clip repeats what was said; the caller said it once.
fn collapse_repeats(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let key = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let keys: Vec<String> = words.iter().map(|w| key(w)).collect();
    for period in 1..=4.min(words.len() / 2) {
        let last = keys.len() - 1;
        let repeats = |i: usize| {
            keys[i] == keys[i % period] || (i == last && keys[i % period].starts_with(&keys[i]))
        };
        if (period..keys.len()).all(repeats) {
            let out = words[..period].join(" ");
            return out.trim_end_matches([',', ';']).to_owned();
        }
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn collapse_repeats_keeps_one_copy() {
        assert_eq!(collapse_repeats("1, 1, 1, 1, 1"), "1");
        assert_eq!(
            collapse_repeats("Сегодня. Сегодня. Сегодня. Сег"),
            "Сегодня."
        );
        assert_eq!(collapse_repeats("no, cancel, no, cancel, no"), "no, cancel");
        assert_eq!(collapse_repeats("yes, yes please"), "yes, yes please");
        assert_eq!(collapse_repeats("Yes."), "Yes.");
    }

    use super::*;

    #[test]
    fn loops_are_seen_at_the_first_repeat() {
        // " Yes" "," " please" "." twice.
        assert!(looping(&[1, 2, 3, 4, 1, 2, 3, 4]));
        assert!(!looping(&[1, 2, 3, 4, 1, 2, 3]));
        // Two tokens need three rounds, one token four.
        assert!(!looping(&[7, 8, 7, 8]));
        assert!(looping(&[7, 8, 7, 8, 7, 8]));
        assert!(!looping(&[5, 1, 1, 1]));
        assert!(looping(&[5, 1, 1, 1, 1]));
        assert!(!looping(&[]));
        assert!(!looping(&[3]));
    }

    fn ev(named: &[usize], scores: &[(usize, f32)], alike: &[usize]) -> ClosedEvidence {
        ClosedEvidence {
            free_confidence: 0.7,
            no_speech: 0.0,
            named: named.to_vec(),
            scores: scores
                .iter()
                .map(|&(phrase, probability)| PhraseScore {
                    phrase,
                    form: format!("p{phrase}"),
                    probability,
                })
                .collect(),
            alike: alike.to_vec(),
        }
    }

    fn conf(d: &Decision) -> f32 {
        match d {
            Decision::Keep => f32::NAN,
            Decision::Free { confidence } | Decision::Phrase { confidence, .. } => *confidence,
        }
    }

    #[test]
    fn closed_answers_are_decided_by_odds_and_agreement() {
        let o = DecodeOptions::default();
        // Both views agree, clear odds: sure, in the scored phrase's words.
        let d = decide_closed(&ev(&[3], &[(3, 0.2), (4, 0.01)], &[]), &o);
        assert!(
            matches!(d, Decision::Phrase { index: 3, .. }) && conf(&d) > 0.9,
            "{d:?}"
        );
        // Agree, close odds: the free transcript, its confidence discounted.
        let d = decide_closed(&ev(&[3], &[(3, 0.02), (4, 0.019)], &[]), &o);
        assert!(
            matches!(d, Decision::Free { .. }) && (conf(&d) - 0.63).abs() < 1e-4,
            "{d:?}"
        );
        // The transcript names nothing: the best phrase needs better odds.
        let d = decide_closed(&ev(&[], &[(5, 0.03), (9, 0.01)], &[]), &o);
        assert!(
            matches!(d, Decision::Phrase { index: 5, .. }) && conf(&d) < 0.6,
            "{d:?}"
        );
        let d = decide_closed(&ev(&[], &[(5, 0.05), (9, 0.005)], &[]), &o);
        assert!(conf(&d) > 0.8, "{d:?}");
        // Hopelessly unsure: the free transcript stays.
        let d = decide_closed(&ev(&[], &[(5, 0.03), (9, 0.028)], &[]), &o);
        assert!(
            matches!(d, Decision::Free { .. }) && conf(&d) < 0.2,
            "{d:?}"
        );
        // The views disagree ("3, 4", or "one" against a score for "eight"): never sure.
        for e in [
            ev(&[3, 4], &[(3, 0.3), (4, 0.001)], &[]),
            ev(&[1], &[(8, 0.3), (1, 0.001)], &[]),
        ] {
            let d = decide_closed(&e, &o);
            assert!(conf(&d) <= 0.5, "{d:?}");
        }
        // Synonyms of the best answer are not its rivals ("yes" vs "correct").
        let d = decide_closed(&ev(&[0], &[(0, 0.3), (1, 0.29), (2, 0.01)], &[1]), &o);
        assert!(conf(&d) > 0.9, "{d:?}");
        // No speech lowers everything.
        let mut e = ev(&[3], &[(3, 0.2), (4, 0.01)], &[]);
        e.no_speech = 0.5;
        assert!(conf(&decide_closed(&e, &o)) < 0.5);
        assert_eq!(decide_closed(&ev(&[], &[], &[]), &o), Decision::Keep);
    }

    #[test]
    fn clean_drops_markers() {
        assert_eq!(clean(" [BLANK_AUDIO]"), "");
        assert_eq!(clean(" Да. (music)"), "Да.");
        assert_eq!(clean("  yes  please "), "yes please");
    }

    #[test]
    fn header_errors_name_the_fix() {
        let missing = read_header(Path::new("/nonexistent/ggml.bin")).unwrap_err();
        assert!(
            missing.to_string().contains("./scripts/setup.sh"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("ivrflow-hdr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.bin");
        std::fs::write(&bad, b"not a model at all, definitely not one, no no no no").unwrap();
        let e = read_header(&bad).unwrap_err();
        assert!(matches!(e, AsrError::ModelInvalid { .. }), "{e}");
        assert!(e.to_string().contains("fetch-model.sh"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
