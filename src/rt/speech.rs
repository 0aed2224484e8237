//! The runtime's side of speech recognition: loading the model at start-up and the worker
//! pool that answers the calls' `Effect::Recognize`.
//!
//! The model is loaded (and self-tested with one decode) before the SIP socket opens when
//! any loaded scenario accepts speech (an `ask` with `input: [.., speech]`, or a `record`
//! node that transcribes); a missing or broken model then stops `serve` with the fix
//! (`./scripts/setup.sh`). Without such a scenario no model is loaded.
//!
//! Recognition runs on the pool's own OS threads (lower priority than the pacing task, see
//! `asr::pool`); each result is sent back over a channel to the task that owns the engine.
//! When the queue is full the utterance is answered as unrecognised at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::api::metrics::Metrics;
use crate::asr::pool::{AsrPool, Done, Job, PoolOptions};
use crate::asr::whisper::{DecodeOptions, WhisperModel};
use crate::asr::{Recognizer, Transcript};
use crate::catalog::accepts_speech;
use crate::config::AsrConfig;
use crate::scenario::Scenario;
use crate::sip::ua::CallHandle;

/// A recognition result for a call.
#[derive(Debug)]
pub struct SpeechResult {
    pub call: CallHandle,
    pub id: u64,
    pub result: Result<Transcript, String>,
}

pub struct Speech {
    pool: AsrPool<(CallHandle, u64)>,
    /// Results, for the engine's task.
    pub results: mpsc::UnboundedReceiver<SpeechResult>,
    /// Results for jobs refused at once (queue full) go here too.
    tx: mpsc::UnboundedSender<SpeechResult>,
    refused: std::sync::atomic::AtomicUsize,
}

impl Speech {
    /// Loads the model and starts the workers if any scenario needs them. Each finished
    /// recognition is timed into `metrics`: its wait in the queue and its decode.
    pub fn start(
        cfg: &AsrConfig,
        scenarios: &BTreeMap<String, Arc<Scenario>>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Option<Speech>> {
        let speaking: Vec<&str> = scenarios
            .iter()
            .filter(|(_, s)| accepts_speech(s))
            .map(|(n, _)| n.as_str())
            .collect();
        if speaking.is_empty() {
            tracing::info!("no scenario accepts speech; the speech model is not loaded");
            return Ok(None);
        }
        let path = cfg.model_path();
        let model = WhisperModel::load_checked(&path).with_context(|| {
            format!(
                "scenarios {} accept speech, but the speech model cannot be used",
                speaking.join(", ")
            )
        })?;
        tracing::info!(
            model = %path.display(),
            kind = %model.kind(),
            load_ms = model.load_time().as_millis() as u64,
            workers = cfg.workers,
            threads = cfg.threads,
            "speech model loaded"
        );
        let (tx, results) = mpsc::unbounded_channel();
        let out = tx.clone();
        let threads = cfg.threads;
        let pool = AsrPool::start(
            &PoolOptions {
                workers: cfg.workers.max(1),
                queue: cfg.queue,
                ..PoolOptions::default()
            },
            move |_| -> Box<dyn Recognizer> {
                Box::new(model.recognizer(DecodeOptions {
                    threads,
                    ..DecodeOptions::default()
                }))
            },
            move |done: Done<(CallHandle, u64)>| {
                let (call, id) = done.tag;
                metrics
                    .asr_queue_wait_seconds
                    .observe(done.queued.as_secs_f64());
                if let Ok(t) = &done.result {
                    metrics.asr_decode_seconds.observe(t.elapsed.as_secs_f64());
                }
                if done.queued.as_millis() > 200 {
                    tracing::debug!(
                        queued_ms = done.queued.as_millis() as u64,
                        "recognition waited in the queue"
                    );
                }
                let _ = out.send(SpeechResult {
                    call,
                    id,
                    result: done.result,
                });
            },
        )
        .context("starting the recognition threads")?;
        Ok(Some(Speech {
            pool,
            results,
            tx,
            refused: Default::default(),
        }))
    }

    /// Jobs dropped before a result since the start: replaced in the queue by a newer
    /// utterance of the same call, cancelled, refused (queue full).
    pub fn dropped(&self) -> [(&'static str, usize); 3] {
        [
            ("replaced", self.pool.replaced()),
            ("cancelled", self.pool.cancelled()),
            (
                "refused",
                self.refused.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ]
    }

    /// The call no longer wants recognition `id` (see `asr::pool::AsrPool::cancel`).
    pub fn cancel(&self, call: CallHandle, id: u64) {
        self.pool.cancel(&(call, id));
    }

    /// Queue an utterance; a full queue (or no model) answers at once with an error.
    pub fn submit(
        &self,
        call: CallHandle,
        id: u64,
        audio: Vec<i16>,
        lang: String,
        phrases: Vec<String>,
    ) {
        let job = Job {
            tag: (call, id),
            owner: call.0,
            audio,
            lang,
            phrases,
        };
        if let Err((_, why)) = self.pool.submit(job) {
            tracing::warn!(
                pending = self.pool.pending(),
                why = %match why {
                    crate::asr::pool::Refused::Full => "full",
                    crate::asr::pool::Refused::Closed => "closed",
                },
                "recognition queue full; the utterance counts as unrecognised"
            );
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = self.tx.send(SpeechResult {
                call,
                id,
                result: Err("recognition queue full".to_owned()),
            });
        }
    }
}
