//! What the engine and the dialogue tell each other: [`Input`]s in, [`Action`]s out, and
//! the data they carry — prompts to play, webhook requests, transfer results, what the
//! speech recogniser should listen for, a pending recording.
//!
//! Deliberately not here: what the dialogue does with them (the interpreter and the node
//! kinds), or how the engine carries them out.

use std::time::Duration;

use serde::Serialize;

use crate::scenario::TransferMode;

/// One recording to play: `audio/<lang>/<name>.wav` as the engine resolves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PromptRef {
    pub lang: String,
    pub name: String,
    /// Whether a key pressed while this prompt plays interrupts it (and counts as input).
    pub barge_in: bool,
}

/// What the engine tells the dialogue.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// A DTMF key: 0-9, *, #, A-D.
    Dtmf(char),
    /// Play `id` finished: its last packet was sent.
    PlaybackDone { id: u64 },
    /// Play `id` was stopped (after [`Action::StopPlayback`], or by the engine).
    PlaybackStopped { id: u64 },
    /// Prompt `index` (into the `prompts` of Play `id`) started on the wire. Lets barge-in
    /// follow per-item `barge_in`; optional when all prompts of a play share one flag.
    PromptStarted { id: u64, index: usize },
    /// The caller hung up.
    Hangup,
    /// The caller started talking (voice activity while [`Dialogue::listen_spec`] is
    /// `Some`). During a prompt that allows barge-in the dialogue answers with
    /// [`Action::StopPlayback`]; in any case the no-input timer is suspended until the
    /// utterance is decided.
    ///
    /// [`Dialogue::listen_spec`]: super::Dialogue::listen_spec
    SpeechStarted,
    /// The final transcript of what the caller said, with the recogniser's confidence in
    /// [0, 1].
    Utterance { text: String, confidence: f32 },
    /// The caller said something, but nothing usable came of it (noise, an empty or
    /// unintelligible transcript). Counts as a no-match.
    SpeechUnrecognised,
    /// The result of [`Action::Webhook`] `id`: the response body (JSON) or why it failed.
    /// A result after the node's timeout is ignored (the dialogue has moved on).
    WebhookResult {
        id: u64,
        result: Result<serde_json::Value, String>,
    },
    /// The result of [`Action::Transfer`] `id`.
    TransferResult { id: u64, outcome: TransferOutcome },
    /// [`Action::Record`] `id` ended: how long the recording is, its transcript when one was
    /// asked for and could be made, and where the audio was stored (if it was).
    RecordingDone {
        id: u64,
        duration: Duration,
        transcript: Option<String>,
        file: Option<String>,
    },
}

impl Input {
    /// The variant's name, for logs (a key's value or a transcript is not logged: they can
    /// be personal data).
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Dtmf(_) => "dtmf",
            Input::PlaybackDone { .. } => "playback_done",
            Input::PlaybackStopped { .. } => "playback_stopped",
            Input::PromptStarted { .. } => "prompt_started",
            Input::Hangup => "hangup",
            Input::SpeechStarted => "speech_started",
            Input::Utterance { .. } => "utterance",
            Input::SpeechUnrecognised => "speech_unrecognised",
            Input::WebhookResult { .. } => "webhook_result",
            Input::TransferResult { .. } => "transfer_result",
            Input::RecordingDone { .. } => "recording_done",
        }
    }
}

/// What the dialogue asks the engine to do. `Play`, `StopPlayback` and `Hangup` are media
/// actions the call core performs itself; every other variant leaves the call core as
/// `call::Effect::Dialogue` and its result (if it has one) comes back as an [`Input`] with
/// the same `id`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Play the prompts back to back. Ids increase; a new Play replaces the current one.
    Play { id: u64, prompts: Vec<PromptRef> },
    /// Barge-in: stop the current play; the engine then feeds `PlaybackStopped`.
    StopPlayback,
    /// The robot hangs up (after the hangup node's prompts have finished).
    Hangup,
    /// Fetch or send data mid-call; answer with [`Input::WebhookResult`]. The dialogue
    /// enforces `request.timeout` itself.
    Webhook { id: u64, request: WebhookRequest },
    /// Hand the caller to `target`; answer with [`Input::TransferResult`]. `announcement`
    /// is played to the agent before the caller is connected (bridged mode).
    Transfer {
        id: u64,
        target: String,
        mode: TransferMode,
        announcement: Vec<PromptRef>,
    },
    /// A fire-and-forget event for the CRM (`sms.requested`, `dnc.requested`,
    /// `callback.requested`, …). No result comes back.
    Notify {
        event: String,
        data: serde_json::Value,
    },
    /// Record the caller; answer with [`Input::RecordingDone`]. Recording stops after
    /// `max_length`, or after `final_silence` of silence once the caller has spoken.
    Record {
        id: u64,
        max_length: Duration,
        final_silence: Duration,
        transcribe: bool,
    },
}

/// A mid-call HTTP request from a `webhook` node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookRequest {
    /// The node's `name:` (a label for the CRM's routing and for logs).
    pub name: Option<String>,
    /// Where to send it; `None` means the configured CRM webhook URL.
    pub url: Option<String>,
    /// `GET` or `POST`.
    pub method: String,
    /// The JSON body (for `GET`, the runtime may send it as query parameters).
    pub body: serde_json::Value,
    /// The dialogue gives up after this long and takes the node's `error` path.
    #[serde(serialize_with = "serialize_millis")]
    pub timeout: Duration,
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How a transfer ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferOutcome {
    /// The caller is connected to the target; the dialogue ends.
    Connected,
    Busy,
    NoAnswer,
    Failed(String),
}

/// What the speech recogniser should listen for now (see [`Dialogue::listen_spec`]).
///
/// [`Dialogue::listen_spec`]: super::Dialogue::listen_spec
#[derive(Clone, Debug, PartialEq)]
pub struct ListenSpec {
    /// Language of the expected speech (the call's prompt language).
    pub lang: String,
    /// The phrases the current question expects in `lang` (its intents and the global ones);
    /// a hint for the decoder's initial prompt, not a grammar.
    pub phrases: Vec<String>,
    /// `true` while the question is still playing and speech may interrupt it (send
    /// [`Input::SpeechStarted`] and the dialogue stops the prompt); `false` once the prompt
    /// has finished.
    pub barge_in: bool,
    /// Silence after speech that already matches something before the utterance is final
    /// (VoiceXML `completetimeout`).
    pub complete_timeout: Duration,
    /// Silence after speech that matches nothing yet before the utterance is final
    /// (VoiceXML `incompletetimeout`).
    pub incomplete_timeout: Duration,
    /// Longest utterance; cut (and recognised as it is) after this (VoiceXML
    /// `maxspeechtimeout`).
    pub max_speech_timeout: Duration,
}

/// The parameters of a pending [`Action::Record`] (see [`Dialogue::recording`]).
///
/// [`Dialogue::recording`]: super::Dialogue::recording
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRequest {
    pub id: u64,
    pub max_length: Duration,
    pub final_silence: Duration,
    pub transcribe: bool,
}
