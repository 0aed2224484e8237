//! The prompt cache: prerecorded audio decoded, converted and G.711-encoded **once**.
//!
//! [`PromptCache::load_dir`] walks `dir/<lang>/**`, decodes every audio file it finds and
//! keeps three forms of each prompt behind `Arc`s: 8 kHz mono linear PCM (for level checks,
//! mixing, ASR self-tests), and the PCMU and PCMA byte streams that [`super::rtp::Playout`]
//! slices straight into packets. Nothing is decoded, resampled or encoded while a call runs.
//!
//! Decoding ([`load_file`]):
//! - 16-bit integer PCM WAV (the Asterisk sets, anything `sox -b 16` writes) is read with
//!   `hound`; 8 kHz mono files come through bit-exact.
//! - Everything `hound` does not read that way — µ-law / A-law WAV, float or 8/24/32-bit WAV,
//!   IMA/MS ADPCM WAV, MP3, FLAC, Ogg Vorbis — goes through `symphonia` 0.6 (gapless
//!   trimming on). A decoder panic inside `symphonia` is caught and reported as an error.
//! - Channels are averaged to mono.
//! - Other sample rates are converted by [`resample`] (`media::resample`), a windowed-sinc
//!   (Blackman window, 32 zero crossings each side, cutoff at 92 % of the lower Nyquist
//!   frequency — 3.68 kHz when going to 8 kHz — DC gain normalised to 1 per phase)
//!   polyphase resampler.
//!
//! Names: `dir/en/digits/1.wav` is prompt `"digits/1"` of language `"en"`. Only files with
//! an audio extension (`wav`, `wave`, `mp3`, `flac`, `ogg`, `oga`) are loaded; hidden entries
//! and files directly in `dir` (e.g. `ATTRIBUTION.md`) are skipped. An optional
//! `dir/<lang>/SYNTHETIC.txt` lists (one per line) the prompts of that language that are
//! synthetic placeholders still to be recorded by a human; see
//! [`PromptCache::is_synthetic`]. Every other shipped prompt is a third-party human
//! recording, copied unchanged under the name ivrflow uses: `dir/SOURCES.tsv`
//! ([`SOURCES_TABLE`]) is the one table of those copies (set, original file, SHA-256), and
//! `audio/ATTRIBUTION.md` credits the sets.
//!
//! Levels: [`peak_dbfs`] / [`rms_dbfs`] give what a linter needs to flag prompts that are
//! too quiet, too loud or clipped.
//!
//! Deliberately not here: loudness normalisation or any other processing of the recordings
//! (they are sent as recorded), watching the directory for changes, text-to-speech.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use super::resample::resample;
use super::resample::{resample_f32, to_i16};
use super::{Codec, g711};

/// Sample rate of every cached prompt (Hz).
pub const SAMPLE_RATE: u32 = 8000;

/// File extensions (lower case) that [`PromptCache::load_dir`] treats as audio.
pub const AUDIO_EXTENSIONS: [&str; 6] = ["wav", "wave", "mp3", "flac", "ogg", "oga"];

/// Name of the per-language list of synthetic placeholder prompts.
pub const SYNTHETIC_LIST: &str = "SYNTHETIC.txt";

/// Name of the table (directly in the audio directory) that says which third-party
/// recording each human prompt is: `lang`, prompt name, set, file in the set, SHA-256.
/// The runtime does not read it; `scripts/fetch-audio.sh` copies by it and the tests
/// check the shipped files against it.
pub const SOURCES_TABLE: &str = "SOURCES.tsv";

/// Directory nesting below `dir/<lang>` beyond which loading stops (guards symlink loops).
const MAX_DEPTH: usize = 16;

/// Highest input sample rate accepted (Hz).
const MAX_RATE: u32 = 768_000;

/// One prompt, ready to send: 8 kHz mono PCM plus its PCMU and PCMA encodings.
#[derive(Clone)]
pub struct Prompt {
    /// Name within its language, `/`-separated, without extension (`"digits/1"`).
    pub name: String,
    /// 8 kHz mono linear samples.
    pub pcm: Arc<[i16]>,
    /// `pcm` encoded as G.711 µ-law, one byte per sample.
    pub pcmu: Arc<[u8]>,
    /// `pcm` encoded as G.711 A-law, one byte per sample.
    pub pcma: Arc<[u8]>,
}

impl Prompt {
    /// Builds a prompt from 8 kHz mono samples, encoding it once into PCMU and PCMA.
    pub fn from_pcm(name: impl Into<String>, pcm: Vec<i16>) -> Prompt {
        let mut pcmu = Vec::with_capacity(pcm.len());
        g711::encode(Codec::Pcmu, &pcm, &mut pcmu);
        let mut pcma = Vec::with_capacity(pcm.len());
        g711::encode(Codec::Pcma, &pcm, &mut pcma);
        Prompt {
            name: name.into(),
            pcm: pcm.into(),
            pcmu: pcmu.into(),
            pcma: pcma.into(),
        }
    }

    /// Number of samples (8 kHz).
    pub fn samples(&self) -> usize {
        self.pcm.len()
    }

    /// Playing time: `samples / 8000` s (exact: one sample is 125 µs).
    pub fn duration(&self) -> Duration {
        samples_to_duration(self.pcm.len() as u64)
    }

    /// The encoded bytes for `codec`.
    pub fn encoded(&self, codec: Codec) -> &Arc<[u8]> {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }
}

impl fmt::Debug for Prompt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompt")
            .field("name", &self.name)
            .field("samples", &self.pcm.len())
            .field("duration", &self.duration())
            .finish()
    }
}

/// Duration of `samples` at 8 kHz.
pub(crate) fn samples_to_duration(samples: u64) -> Duration {
    Duration::from_nanos(samples.saturating_mul(1_000_000_000 / u64::from(SAMPLE_RATE)))
}

/// Why a prompt file or directory could not be loaded. Every message starts with the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The file or directory could not be opened or read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not audio we can decode (unknown container, corrupt data…).
    #[error("{}: cannot decode audio: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
    /// Two files map to the same prompt name (e.g. `hello.wav` and `hello.mp3`).
    #[error(
        "{}: prompt \"{lang}/{name}\" is also provided by {}; keep one file per prompt",
        path.display(),
        other.display()
    )]
    Duplicate {
        path: PathBuf,
        other: PathBuf,
        lang: String,
        name: String,
    },
    /// A file or directory name that cannot be a prompt or language name.
    #[error("{}: {reason}", path.display())]
    BadPath { path: PathBuf, reason: &'static str },
}

impl PromptError {
    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PromptError::Io { path, .. }
            | PromptError::Decode { path, .. }
            | PromptError::Duplicate { path, .. }
            | PromptError::BadPath { path, .. } => path,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Language {
    prompts: BTreeMap<String, Arc<Prompt>>,
    /// Where each prompt was loaded from (for duplicate errors).
    sources: BTreeMap<String, PathBuf>,
    synthetic: BTreeSet<String>,
}

/// All prompts, by language and name. Cheap to share: prompts are `Arc`s.
#[derive(Clone, Debug, Default)]
pub struct PromptCache {
    langs: BTreeMap<String, Language>,
}

impl PromptCache {
    /// An empty cache.
    pub fn new() -> PromptCache {
        PromptCache::default()
    }

    /// Loads every audio file under `dir/<lang>/**` (name = relative path without extension,
    /// `/`-separated, e.g. `"digits/1"`, `"hello"`). Fails on the first file that cannot be
    /// loaded; the error names it.
    pub fn load_dir(dir: &Path) -> Result<PromptCache, PromptError> {
        let mut cache = PromptCache::new();
        for entry in sorted_entries(dir)? {
            let Some(name) = entry.file_name().and_then(|n| n.to_str()) else {
                return Err(PromptError::BadPath {
                    path: entry,
                    reason: "language directory name is not valid UTF-8",
                });
            };
            if name.starts_with('.') || !is_dir(&entry)? {
                continue;
            }
            let lang = name.to_owned();
            let mut language = Language::default();
            load_tree(&entry, &lang, "", 0, &mut language)?;
            read_synthetic_list(&entry, &lang, &mut language)?;
            cache.langs.insert(lang, language);
        }
        Ok(cache)
    }

    /// The prompt `name` of language `lang`.
    pub fn get(&self, lang: &str, name: &str) -> Option<Arc<Prompt>> {
        self.langs.get(lang)?.prompts.get(name).cloned()
    }

    /// Languages present, in sorted order.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.langs.keys().map(String::as_str)
    }

    /// Prompt names of `lang`, in sorted order (empty for an unknown language).
    pub fn names<'a>(&'a self, lang: &str) -> impl Iterator<Item = &'a str> + use<'a> {
        self.langs
            .get(lang)
            .into_iter()
            .flat_map(|l| l.prompts.keys().map(String::as_str))
    }

    /// Whether `lang/name` is listed in that language's `SYNTHETIC.txt` (a machine-made
    /// placeholder that a human should still record).
    pub fn is_synthetic(&self, lang: &str, name: &str) -> bool {
        self.langs
            .get(lang)
            .is_some_and(|l| l.synthetic.contains(name))
    }

    /// Adds or replaces a prompt (tests, generated prompts).
    pub fn insert(&mut self, lang: &str, prompt: Prompt) {
        let language = self.langs.entry(lang.to_owned()).or_default();
        language
            .prompts
            .insert(prompt.name.clone(), Arc::new(prompt));
    }

    /// Number of prompts over all languages.
    pub fn len(&self) -> usize {
        self.langs.values().map(|l| l.prompts.len()).sum()
    }

    /// No prompts at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PromptError + '_ {
    move |source| PromptError::Io {
        path: path.to_owned(),
        source,
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, PromptError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        entries.push(entry.map_err(io_err(dir))?.path());
    }
    entries.sort();
    Ok(entries)
}

/// Follows symlinks.
fn is_dir(path: &Path) -> Result<bool, PromptError> {
    Ok(std::fs::metadata(path).map_err(io_err(path))?.is_dir())
}

fn load_tree(
    dir: &Path,
    lang: &str,
    prefix: &str,
    depth: usize,
    language: &mut Language,
) -> Result<(), PromptError> {
    if depth > MAX_DEPTH {
        return Err(PromptError::BadPath {
            path: dir.to_owned(),
            reason: "directories nested too deeply (a symlink loop?)",
        });
    }
    for path in sorted_entries(dir)? {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(PromptError::BadPath {
                path,
                reason: "file name is not valid UTF-8",
            });
        };
        if file_name.starts_with('.') {
            continue;
        }
        if is_dir(&path)? {
            let sub = format!("{prefix}{file_name}/");
            load_tree(&path, lang, &sub, depth + 1, language)?;
            continue;
        }
        let Some((stem, ext)) = file_name.rsplit_once('.') else {
            continue;
        };
        let ext = ext.to_ascii_lowercase();
        if stem.is_empty() || !AUDIO_EXTENSIONS.contains(&ext.as_str()) {
            continue;
        }
        let name = format!("{prefix}{stem}");
        if let Some(other) = language.sources.get(&name) {
            return Err(PromptError::Duplicate {
                path,
                other: other.clone(),
                lang: lang.to_owned(),
                name,
            });
        }
        let pcm = load_file(&path)?;
        language
            .prompts
            .insert(name.clone(), Arc::new(Prompt::from_pcm(name.clone(), pcm)));
        language.sources.insert(name, path);
    }
    Ok(())
}

fn read_synthetic_list(
    lang_dir: &Path,
    lang: &str,
    language: &mut Language,
) -> Result<(), PromptError> {
    let path = lang_dir.join(SYNTHETIC_LIST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(&path)(e)),
    };
    for line in text.lines() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if !language.prompts.contains_key(name) {
            tracing::warn!(
                file = %path.display(),
                "{SYNTHETIC_LIST} lists \"{lang}/{name}\", but there is no such prompt"
            );
        }
        language.synthetic.insert(name.to_owned());
    }
    Ok(())
}

/// Decodes one audio file to 8 kHz mono 16-bit samples (see the module docs for formats,
/// downmixing and resampling). A file with no samples is valid and gives an empty vector:
/// the Russian set's `is.wav` is deliberately empty (Russian drops the copula), so that
/// "your number is …" sequences work unchanged in every language.
pub fn load_file(path: &Path) -> Result<Vec<i16>, PromptError> {
    let decoded = match read_wav_pcm16(path)? {
        Ok(decoded) => decoded,
        Err(wav_reason) => match read_with_symphonia(path)? {
            Ok(decoded) => decoded,
            Err(reason) => {
                let reason = match wav_reason {
                    Some(w) => format!("{reason} (as 16-bit PCM WAV: {w})"),
                    None => reason,
                };
                return Err(PromptError::Decode {
                    path: path.to_owned(),
                    reason,
                });
            }
        },
    };
    let pcm = match decoded {
        Decoded::Exact(pcm) => pcm,
        Decoded::Mono { rate, samples } => {
            if rate == 0 || rate > MAX_RATE {
                return Err(PromptError::Decode {
                    path: path.to_owned(),
                    reason: format!("unsupported sample rate {rate} Hz"),
                });
            }
            to_i16(&resample_f32(&samples, rate, SAMPLE_RATE))
        }
    };
    Ok(pcm)
}

enum Decoded {
    /// Already 8 kHz mono 16-bit: used unchanged.
    Exact(Vec<i16>),
    /// Mono, full scale ±1.0, at `rate`.
    Mono { rate: u32, samples: Vec<f32> },
}

/// `Ok(Ok(_))`: read as 16-bit PCM WAV. `Ok(Err(why))`: not that kind of file (or broken);
/// `why` is `None` when it is simply another format. `Err`: the file cannot be opened.
#[allow(clippy::type_complexity)]
fn read_wav_pcm16(path: &Path) -> Result<Result<Decoded, Option<String>>, PromptError> {
    let file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = match hound::WavReader::new(BufReader::new(file)) {
        Ok(reader) => reader,
        // Not RIFF/WAVE at all (MP3, FLAC…): no need to mention the WAV attempt.
        Err(hound::Error::FormatError(msg)) if msg.contains("RIFF") || msg.contains("WAVE") => {
            return Ok(Err(None));
        }
        Err(hound::Error::Unsupported) => return Ok(Err(None)),
        Err(e) => return Ok(Err(Some(e.to_string()))),
    };
    let spec = reader.spec();
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Ok(Err(None));
    }
    let channels = usize::from(spec.channels);
    if channels == 0 {
        return Ok(Err(Some("zero channels".to_owned())));
    }
    // Never trust the header's length for the allocation: cap it by the file size.
    let hint = (reader.len() as u64).min(file_len / 2) as usize;
    let mut interleaved = Vec::with_capacity(hint);
    for sample in reader.samples::<i16>() {
        match sample {
            Ok(s) => interleaved.push(s),
            Err(e) => return Ok(Err(Some(e.to_string()))),
        }
    }
    if channels == 1 && spec.sample_rate == SAMPLE_RATE {
        return Ok(Ok(Decoded::Exact(interleaved)));
    }
    let mut mono = Vec::with_capacity(interleaved.len() / channels);
    downmix_into(
        interleaved.iter().map(|&s| f32::from(s) / 32768.0),
        channels,
        &mut mono,
    );
    Ok(Ok(Decoded::Mono {
        rate: spec.sample_rate,
        samples: mono,
    }))
}

/// Averages interleaved frames of `channels` samples into `out` (a trailing partial frame is
/// dropped).
fn downmix_into(interleaved: impl Iterator<Item = f32>, channels: usize, out: &mut Vec<f32>) {
    let mut acc = 0.0f32;
    let mut n = 0;
    let scale = 1.0 / channels as f32;
    for s in interleaved {
        acc += s;
        n += 1;
        if n == channels {
            out.push(acc * scale);
            acc = 0.0;
            n = 0;
        }
    }
}

/// `Ok(Ok(_))` decoded; `Ok(Err(reason))` not decodable; `Err` cannot open.
fn read_with_symphonia(path: &Path) -> Result<Result<Decoded, String>, PromptError> {
    let file = File::open(path).map_err(io_err(path))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_owned);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_symphonia(file, ext.as_deref())
    }));
    Ok(match result {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!(
                "decoder crashed on this file (symphonia bug): {msg}"
            ))
        }
    })
}

fn decode_symphonia(file: File, ext: Option<&str>) -> Result<Decoded, String> {
    use symphonia::core::codecs::audio::AudioDecoderOptions;
    use symphonia::core::errors::Error;
    use symphonia::core::formats::probe::Hint;
    use symphonia::core::formats::{FormatOptions, TrackType};
    use symphonia::core::io::MediaSourceStream;
    use symphonia::core::meta::MetadataOptions;

    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = ext {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| format!("not a recognised audio format ({e})"))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or("no audio track")?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or("audio track without codec parameters")?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| format!("unsupported codec ({e})"))?;

    let mut rate: Option<(u32, usize)> = None;
    let mut mono: Vec<f32> = Vec::new();
    let mut scratch: Vec<f32> = Vec::new();
    let mut bad_packets = 0usize;
    let mut last_decode_error = "";
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A chained Ogg stream changed its track list: keep the first stream.
            Err(Error::ResetRequired) => break,
            // Truncated file: keep what was decoded.
            Err(Error::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(Error::DecodeError(msg)) => {
                bad_packets += 1;
                last_decode_error = msg;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if buf.frames() == 0 {
            continue;
        }
        let spec = buf.spec();
        let this = (spec.rate(), spec.channels().count());
        match rate {
            None => rate = Some(this),
            Some(r) if r != this => {
                return Err(format!(
                    "stream changes from {} Hz × {} ch to {} Hz × {} ch",
                    r.0, r.1, this.0, this.1
                ));
            }
            Some(_) => {}
        }
        if this.1 == 0 {
            return Err("zero channels".to_owned());
        }
        buf.copy_to_vec_interleaved(&mut scratch);
        downmix_into(scratch.iter().copied(), this.1, &mut mono);
    }
    match rate {
        Some((rate, _)) => Ok(Decoded::Mono {
            rate,
            samples: mono,
        }),
        None if bad_packets > 0 => Err(format!(
            "all {bad_packets} packets failed to decode ({last_decode_error})"
        )),
        None => Ok(Decoded::Mono {
            rate: SAMPLE_RATE,
            samples: Vec::new(),
        }),
    }
}

/// Peak level in dBFS (0 dB = 32768; `-inf` for silence or no samples).
pub fn peak_dbfs(pcm: &[i16]) -> f32 {
    let peak = pcm
        .iter()
        .map(|&s| i32::from(s).unsigned_abs())
        .max()
        .unwrap_or(0);
    if peak == 0 {
        return f32::NEG_INFINITY;
    }
    (20.0 * (f64::from(peak) / 32768.0).log10()) as f32
}

/// The longest run of consecutive samples at full scale (|s| ≥ 32767). A mastered
/// recording may touch full scale for a sample or two (a limiter's peaks); a clipped one
/// stays there for several samples in a row, flattening the wave.
pub fn full_scale_run(pcm: &[i16]) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for &s in pcm {
        if i32::from(s).unsigned_abs() >= 32767 {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// RMS level in dBFS relative to a full-scale square wave (a full-scale sine reads −3.01 dB;
/// `-inf` for silence or no samples).
pub fn rms_dbfs(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let mean = sum / pcm.len() as f64;
    if mean == 0.0 {
        return f32::NEG_INFINITY;
    }
    (10.0 * (mean / (32768.0 * 32768.0)).log10()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("audio")
    }

    /// A scratch directory unique to one test (removed on drop).
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p =
                std::env::temp_dir().join(format!("ivrflow-prompts-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write_wav16(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    /// A WAV with a non-PCM format tag (6 = A-law, 7 = µ-law), 8 kHz mono 8-bit, written by
    /// hand because hound cannot write these.
    fn g711_wav(format_tag: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let fmt_len = 18u32; // WAVEFORMATEX with cbSize = 0
        let riff_len = 4 + (8 + fmt_len) + (8 + 4) + (8 + data.len() as u32);
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&riff_len.to_le_bytes());
        v.extend_from_slice(b"WAVE");
        v.extend_from_slice(b"fmt ");
        v.extend_from_slice(&fmt_len.to_le_bytes());
        v.extend_from_slice(&format_tag.to_le_bytes());
        v.extend_from_slice(&1u16.to_le_bytes()); // channels
        v.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
        v.extend_from_slice(&8000u32.to_le_bytes()); // byte rate
        v.extend_from_slice(&1u16.to_le_bytes()); // block align
        v.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
        v.extend_from_slice(&0u16.to_le_bytes()); // cbSize
        v.extend_from_slice(b"fact");
        v.extend_from_slice(&4u32.to_le_bytes());
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        if data.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    fn sine(rate: u32, freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (amplitude * 32767.0 * (2.0 * std::f64::consts::PI * freq * t).sin()).round() as i16
            })
            .collect()
    }

    #[test]
    fn loads_a_real_recording_bit_exact() {
        let path = audio_dir().join("en/hello.wav");
        let pcm = load_file(&path).unwrap();
        let mut r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().sample_rate, 8000);
        let direct: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(pcm, direct);
        let p = Prompt::from_pcm("hello", pcm);
        assert!(p.duration() > Duration::from_millis(300));
        assert_eq!(p.pcmu.len(), p.samples());
        assert_eq!(p.encoded(Codec::Pcma).len(), p.samples());
        // A professionally recorded prompt: not silent, not clipped.
        let peak = peak_dbfs(&p.pcm);
        assert!((-12.0..0.0).contains(&peak), "peak {peak}");
        let rms = rms_dbfs(&p.pcm);
        assert!((-35.0..-10.0).contains(&rms), "rms {rms}");
    }

    #[test]
    fn loads_the_shipped_set() {
        let cache = PromptCache::load_dir(&audio_dir()).unwrap();
        assert_eq!(cache.languages().collect::<Vec<_>>(), ["en", "ru", "uk"]);
        for lang in ["en", "ru", "uk"] {
            for name in [
                "hello",
                "goodbye",
                "please-try-call-later",
                "digits/0",
                "digits/90",
            ] {
                let p = cache
                    .get(lang, name)
                    .unwrap_or_else(|| panic!("{lang}/{name}"));
                assert_eq!(p.name, name);
                assert!(p.samples() > 800, "{lang}/{name} too short");
            }
        }
        // Russian and Ukrainian drop the copula: "is" exists but is empty.
        for lang in ["ru", "uk"] {
            assert_eq!(cache.get(lang, "is").unwrap().samples(), 0);
        }
        assert!(cache.get("en", "is").unwrap().samples() > 0);
        assert!(!cache.is_synthetic("uk", "is"));
        // Gendered forms (ru, uk): 1f/2f feminine, 1n neuter; en has none.
        for lang in ["ru", "uk"] {
            for name in ["digits/1f", "digits/2f", "digits/1n"] {
                assert!(cache.get(lang, name).is_some(), "{lang}/{name}");
            }
        }
        assert!(cache.get("en", "digits/1f").is_none());
        assert!(cache.get("en", "SYNTHETIC").is_none());
        // Human voices in every language; what no human recorded yet stays listed.
        for lang in ["en", "ru", "uk"] {
            for name in ["hello", "goodbye", "digits/7", "digits/thousand"] {
                assert!(!cache.is_synthetic(lang, name), "{lang}/{name}");
            }
        }
        assert!(!cache.is_synthetic("ru", "digits/1f"));
        assert!(cache.is_synthetic("uk", "digits/1f"));
        assert!(cache.is_synthetic("uk", "digits/pound"));
        assert!(cache.is_synthetic("ru", "ordinal/1"));
        assert!(cache.len() > 150);
        assert_eq!(
            cache.names("en").count() + cache.names("ru").count() + cache.names("uk").count(),
            cache.len()
        );
    }

    /// One line of `audio/SOURCES.tsv`.
    struct Source {
        lang: String,
        name: String,
        set: String,
        sha256: String,
    }

    fn sources() -> Vec<Source> {
        let text = std::fs::read_to_string(audio_dir().join(SOURCES_TABLE)).unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f.len(), 5, "{SOURCES_TABLE}: {l}");
                Source {
                    lang: f[0].to_string(),
                    name: f[1].to_string(),
                    set: f[2].to_string(),
                    sha256: f[4].to_string(),
                }
            })
            .collect()
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Every shipped prompt is either an unmodified third-party recording named in
    /// `SOURCES.tsv` (its bytes are the ones recorded there) or a placeholder listed in its
    /// language's `SYNTHETIC.txt`; never both, never neither.
    #[test]
    fn every_shipped_prompt_is_accounted_for() {
        let cache = PromptCache::load_dir(&audio_dir()).unwrap();
        let sources = sources();
        let mut seen = BTreeSet::new();
        for s in &sources {
            assert!(
                seen.insert((s.lang.clone(), s.name.clone())),
                "{}/{} is listed twice",
                s.lang,
                s.name
            );
            assert!(
                ["debian-en", "debian-ru", "vikdon-uk", "pbxware-ru"].contains(&s.set.as_str()),
                "{}/{}: unknown set {}",
                s.lang,
                s.name,
                s.set
            );
            let path = audio_dir().join(&s.lang).join(format!("{}.wav", s.name));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                sha256_hex(&bytes),
                s.sha256,
                "{} was changed",
                path.display()
            );
            assert!(
                !cache.is_synthetic(&s.lang, &s.name),
                "{}/{} is a human recording but listed as synthetic",
                s.lang,
                s.name
            );
        }
        for lang in ["en", "ru", "uk"] {
            for name in cache.names(lang) {
                assert!(
                    seen.contains(&(lang.to_string(), name.to_string()))
                        || cache.is_synthetic(lang, name),
                    "{lang}/{name} is neither in {SOURCES_TABLE} nor in {SYNTHETIC_LIST}"
                );
            }
        }
        // The new sets are in: Ukrainian is a human voice, Russian has its case forms.
        let human = |lang: &str, set: &str| {
            sources
                .iter()
                .filter(|s| s.lang == lang && s.set == set)
                .count()
        };
        assert!(human("uk", "vikdon-uk") >= 80);
        assert!(human("ru", "pbxware-ru") >= 30);
    }

    #[test]
    fn ulaw_and_alaw_wav_decode_like_g711() {
        let dir = TempDir::new("g711");
        let codes: Vec<u8> = (0..=255u8).collect();
        for (tag, codec) in [(7u16, Codec::Pcmu), (6, Codec::Pcma)] {
            let path = dir.0.join(format!("{codec}.wav"));
            std::fs::write(&path, g711_wav(tag, &codes)).unwrap();
            let pcm = load_file(&path).unwrap();
            let mut expected = Vec::new();
            g711::decode(codec, &codes, &mut expected);
            assert_eq!(pcm, expected, "{codec}");
            // And re-encoding gives the original bytes back (µ-law 0x7F → 0xFF aside).
            let p = Prompt::from_pcm("x", pcm);
            for (i, (&a, &b)) in p.encoded(codec).iter().zip(&codes).enumerate() {
                assert!(
                    a == b || (codec == Codec::Pcmu && b == 0x7F),
                    "{codec} byte {i}"
                );
            }
        }
    }

    #[test]
    fn resamples_16k_to_8k() {
        let dir = TempDir::new("16k");
        let path = dir.0.join("tone.wav");
        let n = 16001;
        write_wav16(&path, 16000, 1, &sine(16000, 1000.0, 0.5, n));
        let pcm = load_file(&path).unwrap();
        assert!(pcm.len().abs_diff(n / 2) <= 1, "len {}", pcm.len());
        // Passband tone keeps its level (away from the edges).
        let mid = &pcm[500..pcm.len() - 500];
        let level = rms_dbfs(mid);
        let expected = 20.0 * 0.5f32.log10() - 3.0103;
        assert!((level - expected).abs() < 0.1, "{level} vs {expected}");
    }

    #[test]
    fn resampler_rejects_alias_band() {
        // 6 kHz at 16 kHz would alias to 2 kHz at 8 kHz: it must be filtered out.
        let tone = sine(16000, 6000.0, 0.9, 16000);
        let out = resample(&tone, 16000, 8000);
        let level = rms_dbfs(&out[200..out.len() - 200]);
        assert!(level < -70.0, "alias level {level} dBFS");
        // Upsampling keeps length and level too.
        let tone = sine(8000, 440.0, 0.5, 8000);
        let up = resample(&tone, 8000, 16000);
        assert_eq!(up.len(), 16000);
        let level = rms_dbfs(&up[400..up.len() - 400]);
        assert!((level - rms_dbfs(&tone)).abs() < 0.1);
        // An awkward ratio (44.1 kHz) gets the right length.
        let cd = sine(44100, 440.0, 0.5, 44100 / 2);
        assert_eq!(resample(&cd, 44100, 8000).len(), 4000);
    }

    #[test]
    fn stereo_float_and_8bit_wavs() {
        let dir = TempDir::new("fmt");
        // Stereo 16-bit: L = tone, R = silence → mono tone at half amplitude.
        let tone = sine(8000, 500.0, 0.8, 800);
        let inter: Vec<i16> = tone.iter().flat_map(|&s| [s, 0]).collect();
        let stereo = dir.0.join("stereo.wav");
        write_wav16(&stereo, 8000, 2, &inter);
        let pcm = load_file(&stereo).unwrap();
        assert_eq!(pcm.len(), 800);
        for (a, b) in pcm.iter().zip(&tone) {
            assert!((i32::from(*a) - i32::from(*b) / 2).abs() <= 1);
        }
        // 32-bit float at 44.1 kHz (hound writes it; symphonia decodes it).
        let float = dir.0.join("float.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 44100,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&float, spec).unwrap();
        for s in sine(44100, 440.0, 0.5, 44100) {
            w.write_sample(f32::from(s) / 32768.0).unwrap();
        }
        w.finalize().unwrap();
        let pcm = load_file(&float).unwrap();
        assert_eq!(pcm.len(), 8000);
        assert!((peak_dbfs(&pcm) - 20.0 * 0.5f32.log10()).abs() < 0.2);
        // 8-bit unsigned.
        let eight = dir.0.join("eight.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&eight, spec).unwrap();
        for i in 0..400 {
            w.write_sample(if i % 2 == 0 { 64i8 } else { -64i8 })
                .unwrap();
        }
        w.finalize().unwrap();
        let pcm = load_file(&eight).unwrap();
        assert_eq!(pcm.len(), 400);
        assert_eq!(pcm[0], 64 * 256);
        assert_eq!(pcm[1], -64 * 256);
    }

    /// 40 ms of a 1 kHz tone, 16 kHz stereo FLAC (`sox -n -r 16000 -c 2 -b 16 t.flac synth
    /// 0.04 sine 1000 gain -6`).
    const TONE_FLAC: &[u8] = &[
        0x66, 0x4c, 0x61, 0x43, 0x00, 0x00, 0x00, 0x22, 0x10, 0x00, 0x10, 0x00, 0x00, 0x01, 0xce,
        0x00, 0x01, 0xce, 0x03, 0xe8, 0x02, 0xf0, 0x00, 0x00, 0x02, 0x80, 0x6e, 0x5c, 0x1c, 0x8d,
        0xf1, 0xb0, 0x0a, 0x48, 0xfd, 0x48, 0x56, 0xec, 0x83, 0x01, 0x07, 0x1b, 0x84, 0x00, 0x00,
        0x28, 0x20, 0x00, 0x00, 0x00, 0x72, 0x65, 0x66, 0x65, 0x72, 0x65, 0x6e, 0x63, 0x65, 0x20,
        0x6c, 0x69, 0x62, 0x46, 0x4c, 0x41, 0x43, 0x20, 0x31, 0x2e, 0x34, 0x2e, 0x32, 0x20, 0x32,
        0x30, 0x32, 0x32, 0x31, 0x30, 0x32, 0x32, 0x00, 0x00, 0x00, 0x00, 0xff, 0xf8, 0x75, 0xa8,
        0x00, 0x02, 0x7f, 0x58, 0x46, 0x02, 0x75, 0x18, 0x1f, 0x2d, 0x98, 0x3b, 0x17, 0xb5, 0x3b,
        0x97, 0xf6, 0x44, 0xfa, 0x03, 0x08, 0xc0, 0x00, 0x00, 0x47, 0x19, 0x96, 0xfc, 0x65, 0xb9,
        0x87, 0x06, 0x1b, 0xd8, 0x71, 0x5d, 0xc9, 0x5f, 0x15, 0x7b, 0x93, 0xeb, 0x55, 0xa1, 0x36,
        0x24, 0x99, 0x51, 0x60, 0x42, 0x8d, 0x1a, 0x24, 0x48, 0x52, 0xa4, 0x88, 0x43, 0xbc, 0x62,
        0x91, 0x14, 0x04, 0xb8, 0xa0, 0xd6, 0xc9, 0x62, 0x42, 0x0a, 0xc5, 0x0c, 0xb3, 0xa4, 0x28,
        0x88, 0x89, 0x11, 0x37, 0x7f, 0x28, 0x22, 0x81, 0x17, 0x24, 0xc7, 0x49, 0x64, 0x21, 0x14,
        0x48, 0x5d, 0xed, 0x59, 0x12, 0x10, 0x8b, 0x54, 0xcd, 0x39, 0x41, 0x22, 0x14, 0x55, 0xff,
        0x34, 0x22, 0x82, 0x44, 0x0b, 0xd4, 0x7c, 0xe4, 0x90, 0x84, 0x88, 0x9a, 0x8e, 0x6a, 0xc9,
        0x08, 0x24, 0x8b, 0x12, 0xce, 0xf9, 0x24, 0x20, 0xa1, 0x11, 0x8b, 0x3b, 0xe4, 0x90, 0x44,
        0x84, 0xab, 0xe3, 0xca, 0x18, 0x24, 0x42, 0xc4, 0x4d, 0xa3, 0xd5, 0xa1, 0x08, 0x91, 0x11,
        0x37, 0x7f, 0x24, 0x84, 0x22, 0x52, 0x1d, 0x67, 0xa9, 0x84, 0x88, 0x84, 0x2e, 0x2c, 0xef,
        0x92, 0x22, 0x22, 0x42, 0xe8, 0xed, 0x94, 0x30, 0x44, 0x44, 0x44, 0x4d, 0xdf, 0xc9, 0x11,
        0x21, 0x0a, 0x59, 0x96, 0x32, 0xb2, 0x41, 0x21, 0x0b, 0x84, 0xa0, 0xf2, 0x6c, 0x92, 0x08,
        0xa0, 0x84, 0x6a, 0x3b, 0xe4, 0x90, 0x82, 0x49, 0x22, 0x37, 0x7c, 0x85, 0x11, 0x20, 0x89,
        0x8b, 0xe3, 0xb9, 0x42, 0x09, 0x10, 0x96, 0x59, 0xcd, 0x52, 0xc0, 0x85, 0x10, 0xb1, 0xbe,
        0x3a, 0x50, 0x82, 0x48, 0x21, 0x3d, 0x1f, 0x39, 0x24, 0x20, 0xa1, 0x13, 0x96, 0x77, 0x21,
        0x44, 0x84, 0x16, 0x55, 0x1c, 0xd5, 0x91, 0x12, 0x09, 0x2a, 0x8e, 0xf9, 0x22, 0x41, 0x16,
        0x16, 0x34, 0xde, 0xb4, 0x90, 0x82, 0x50, 0x89, 0xbb, 0xf9, 0x22, 0x24, 0x11, 0x6b, 0x59,
        0xde, 0x21, 0x50, 0x90, 0x49, 0x54, 0x77, 0x78, 0x85, 0x04, 0x58, 0x88, 0xd1, 0xcd, 0x94,
        0x50, 0x90, 0x48, 0x8d, 0x2d, 0x5a, 0x5e, 0x55, 0x94, 0xa5, 0x2d, 0x42, 0xda, 0x9e, 0x2b,
        0x4f, 0xa0, 0xaa, 0x4b, 0xb4, 0xc9, 0x25, 0xc9, 0x32, 0x58, 0x99, 0x67, 0xdc, 0x22, 0x58,
        0x4c, 0x68, 0x1f, 0x00, 0x03, 0x02, 0x00, 0x06, 0x4b, 0x79, 0xfe, 0xd2, 0x7f, 0xe4, 0x99,
        0xf9, 0x33, 0x7b, 0x85, 0xdd, 0x3d, 0x2d, 0xce, 0x4b, 0x8f, 0x39, 0xc9, 0x99, 0x67, 0x93,
        0x95, 0xe4, 0xb3, 0xca, 0x9b, 0xea, 0xb7, 0x52, 0xdb, 0xe1, 0xcb, 0xbb, 0x4b, 0xf3, 0xba,
        0x49, 0x33, 0xe5, 0x26, 0x48, 0x7b, 0xbe, 0x84, 0xb2, 0xdc, 0x99, 0xff, 0xeb, 0x66, 0x6e,
        0xfe, 0x76, 0xff, 0x95, 0xa4, 0x94, 0xe7, 0x52, 0x4d, 0x99, 0xed, 0x6d, 0xff, 0x3f, 0x52,
        0x5e, 0xfe, 0xbf, 0xb7, 0x27, 0xda, 0xb8, 0x9e, 0x4b, 0xa7, 0x2d, 0xdb, 0xa9, 0x63, 0x5d,
        0xff, 0x76, 0x92, 0xae, 0xbf, 0x2b, 0x9f, 0x7e, 0x45, 0x3d, 0x4b, 0x25, 0xfb, 0x79, 0x6f,
        0x39, 0xcf, 0x4d, 0x4c, 0xe5, 0x9e, 0xae, 0x39, 0xaf, 0x39, 0x9e, 0xc8, 0xf9, 0xbf, 0x32,
        0xcc, 0xbe, 0x9e, 0x5b, 0x99, 0xfc, 0xed, 0x5a, 0xac, 0xe9, 0x90, 0xdb, 0x4a, 0xb9, 0xfe,
        0xed, 0x3d, 0x3b, 0x9a, 0x69, 0x60, 0x94, 0x32,
    ];

    #[test]
    fn decodes_flac_and_resamples() {
        let dir = TempDir::new("flac");
        let path = dir.0.join("tone.flac");
        std::fs::write(&path, TONE_FLAC).unwrap();
        let pcm = load_file(&path).unwrap();
        assert_eq!(pcm.len(), 320);
        let peak = peak_dbfs(&pcm[40..280]);
        assert!((peak + 6.0).abs() < 0.5, "peak {peak}");
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file() {
        let dir = TempDir::new("corrupt");
        let garbage = dir.0.join("garbage.wav");
        std::fs::write(&garbage, b"this is not audio at all, just text").unwrap();
        let err = load_file(&garbage).unwrap_err();
        assert!(err.to_string().contains("garbage.wav"), "{err}");
        assert_eq!(err.path(), garbage);

        let missing = dir.0.join("missing.wav");
        let err = load_file(&missing).unwrap_err();
        assert!(matches!(err, PromptError::Io { .. }));
        assert!(err.to_string().contains("missing.wav"), "{err}");

        // A real file cut inside its header, and one cut inside its data.
        let real = std::fs::read(audio_dir().join("en/goodbye.wav")).unwrap();
        let cut = dir.0.join("cut-header.wav");
        std::fs::write(&cut, &real[..30]).unwrap();
        let err = load_file(&cut).unwrap_err();
        assert!(err.to_string().contains("cut-header.wav"), "{err}");
        let cut = dir.0.join("cut-data.wav");
        std::fs::write(&cut, &real[..real.len() / 2]).unwrap();
        match load_file(&cut) {
            Ok(pcm) => assert!(pcm.len() < real.len() / 2),
            Err(err) => assert!(err.to_string().contains("cut-data.wav"), "{err}"),
        }

        // A bad file inside a prompt directory fails the load and names it.
        let lang = dir.0.join("tree/en/sub");
        std::fs::create_dir_all(&lang).unwrap();
        std::fs::write(lang.join("bad.mp3"), [0xFFu8; 64]).unwrap();
        let err = PromptCache::load_dir(&dir.0.join("tree")).unwrap_err();
        assert!(err.to_string().contains("bad.mp3"), "{err}");
    }

    #[test]
    fn mutated_files_never_panic() {
        let dir = TempDir::new("fuzz");
        let small = std::fs::read(audio_dir().join("en/digits/1.wav")).unwrap();
        let seeds: [(&str, Vec<u8>); 3] = [
            ("wav", small[..small.len().min(2000)].to_vec()),
            ("wav", g711_wav(7, &[0x12; 300])),
            ("flac", TONE_FLAC.to_vec()),
        ];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for round in 0..150 {
            let (ext, seed) = &seeds[round % seeds.len()];
            let mut bytes = seed.clone();
            for _ in 0..1 + next() % 8 {
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
            }
            if next() % 4 == 0 {
                let len = (next() as usize) % bytes.len();
                bytes.truncate(len);
            }
            let path = dir.0.join(format!("m{round}.{ext}"));
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = load_file(&path) {
                assert!(e.to_string().contains(&format!("m{round}.{ext}")), "{e}");
            }
        }
    }

    #[test]
    fn duplicate_names_and_hidden_files() {
        let dir = TempDir::new("dup");
        let en = dir.0.join("en");
        std::fs::create_dir_all(en.join(".git")).unwrap();
        write_wav16(&en.join("hello.wav"), 8000, 1, &[0, 100, -100]);
        write_wav16(&en.join(".hidden.wav"), 8000, 1, &[1]);
        std::fs::write(en.join("notes.txt"), "not audio").unwrap();
        std::fs::write(dir.0.join("README.md"), "top-level files are skipped").unwrap();
        let cache = PromptCache::load_dir(&dir.0).unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("en", "hello").unwrap().pcm[..], [0, 100, -100]);

        std::fs::copy(en.join("hello.wav"), en.join("hello.Wave")).unwrap();
        let err = PromptCache::load_dir(&dir.0).unwrap_err();
        assert!(matches!(err, PromptError::Duplicate { .. }), "{err}");
        assert!(err.to_string().contains("en/hello"), "{err}");
    }

    #[test]
    fn insert_and_levels() {
        let mut cache = PromptCache::new();
        assert!(cache.is_empty());
        cache.insert(
            "en",
            Prompt::from_pcm("beep", sine(8000, 1000.0, 1.0, 8000)),
        );
        let p = cache.get("en", "beep").unwrap();
        assert_eq!(p.duration(), Duration::from_secs(1));
        assert!(peak_dbfs(&p.pcm).abs() < 0.01);
        assert!((rms_dbfs(&p.pcm) + 3.01).abs() < 0.02);
        assert_eq!(peak_dbfs(&[0, 0]), f32::NEG_INFINITY);
        assert_eq!(rms_dbfs(&[]), f32::NEG_INFINITY);
        assert_eq!(peak_dbfs(&[i16::MIN]), 0.0);
        // A sine driven past full scale is flattened for many samples in a row; a
        // limiter's single full-scale peak is not clipping.
        let driven: Vec<i16> = sine(8000, 100.0, 2.0, 800);
        assert!(full_scale_run(&driven) > 10, "{}", full_scale_run(&driven));
        assert_eq!(full_scale_run(&[0, 32767, 30000, -32768, 0]), 1);
        assert_eq!(full_scale_run(&[]), 0);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.languages().collect::<Vec<_>>(), ["en"]);
    }
}
