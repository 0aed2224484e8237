//! Caller scripts: `<scenario>.test.yaml` files that describe calls and what they must
//! produce, for `ivrflow test`.
//!
//! ```yaml
//! scenario: order-confirmation.yaml      # optional: default is the script's stem + .yaml
//! direction: outbound                    # optional: every call's direction (default: the
//!                                        # simulator's, see `super::call_variables`)
//! calls:
//!   - name: key 1 confirms
//!     direction: inbound                 # optional: this call's
//!     variables: { order_id: "4711", customer: "+15551230000" }
//!     steps:
//!       - press: "1"                     # when the robot has been silent 700 ms
//!       - { press: "1", at: 7s }         # at 7 s into the call (barge-in)
//!       - { press: "4711#", gap: 300ms } # a digit string, keys 300 ms apart
//!       - say: "yes"                     # speech (confidence 1.0 unless given)
//!       - noise: true                    # speech the recogniser cannot use
//!       - silence: 6s
//!       - hangup: 2s
//!       - answer: machine                # first step, scenarios with `amd:`: who picks up
//!       - { answer: machine, greeting: 8s }  # (human by default; or `silent`)
//!     webhooks: [{ respond: { open: true }, after: 300ms }, { error: "HTTP 503" }, { timeout: true }]
//!     transfers: [busy, { outcome: connected, after: 5s }]
//!     recordings: [{ transcript: "the courier was late", duration: 4s }]
//!     expect:
//!       outcome: confirmed
//!       path: [greet, confirm, confirmed]
//!       answers: { confirm: { intent: confirm, value: "1" } }
//!       events: [sms.requested]
//!       payload: { answers.confirm.input: dtmf }
//! ```
//!
//! Parsing reports `file:line:col` like scenario files. [`check`] compares a finished
//! call's report with the expectations and returns what differs.
//!
//! Deliberately not here: running calls (that is [`super::run_call`]) or printing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

use super::{
    CallerStep, DEFAULT_REACTION, EffectScript, RecordingReply, SimReport, TransferReply,
    WebhookReply,
};
use crate::call::TraceEvent;
use crate::dialogue::{HangupBy, TransferOutcome};
use crate::scenario::builtins::{CallDirection, DIRECTION};
use crate::scenario::raw_support::{OrderedMap, Scalar};
use crate::scenario::{Diagnostic, ErrorKind, LoadError, SourcePos, parse_duration};

/// A parsed caller script.
#[derive(Debug, Clone)]
pub struct Script {
    /// The file it was loaded from (label for messages).
    pub file: String,
    /// The scenario file it exercises.
    pub scenario: PathBuf,
    pub calls: Vec<CallSpec>,
}

/// One scripted call.
#[derive(Debug, Clone)]
pub struct CallSpec {
    pub name: String,
    pub pos: SourcePos,
    pub variables: BTreeMap<String, String>,
    pub steps: Vec<CallerStep>,
    pub effects: EffectScript,
    pub expect: Expect,
}

/// What a call must produce. Absent fields are not checked.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub outcome: Option<String>,
    /// The exact path.
    pub path: Option<Vec<String>>,
    /// Nodes the path must pass through, in this order (other nodes may come between).
    pub visits: Vec<String>,
    pub answers: BTreeMap<String, ExpectAnswer>,
    pub variables: BTreeMap<String, String>,
    /// The exact list of CRM events (`sms.requested`, …).
    pub events: Option<Vec<String>>,
    /// For some of those events (by index in `events`), fields their data must have:
    /// dotted paths into the data and the value each must have.
    pub event_data: Vec<(usize, Vec<(String, serde_json::Value)>)>,
    pub hangup_by: Option<HangupBy>,
    /// Dotted paths into the `call.completed` JSON and the value each must have.
    pub payload: Vec<(String, serde_json::Value)>,
    /// Prompts (`en/hello`) that must have been played.
    pub plays: Vec<String>,
    pub max_duration: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectAnswer {
    pub input: Option<String>,
    pub value: Option<String>,
    pub intent: Option<String>,
    /// `noinput` / `nomatch`: the question got no answer.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScript {
    scenario: Option<Spanned<String>>,
    /// `inbound` or `outbound`: the direction of every call that does not say.
    direction: Option<Spanned<String>>,
    calls: Spanned<Vec<Spanned<RawCall>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    name: Spanned<String>,
    direction: Option<Spanned<String>>,
    variables: Option<OrderedMap<Spanned<String>, Spanned<Scalar>>>,
    steps: Option<Vec<Spanned<RawStep>>>,
    webhooks: Option<Vec<Spanned<RawWebhookReply>>>,
    transfers: Option<Vec<Spanned<RawTransferReply>>>,
    recordings: Option<Vec<Spanned<RawRecordingReply>>>,
    expect: Option<Spanned<RawExpect>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    press: Option<Spanned<Scalar>>,
    say: Option<Spanned<String>>,
    noise: Option<bool>,
    wav: Option<Spanned<String>>,
    silence: Option<Spanned<String>>,
    hangup: Option<Spanned<Scalar>>,
    after: Option<Spanned<String>>,
    at: Option<Spanned<String>>,
    gap: Option<Spanned<String>>,
    confidence: Option<Spanned<f64>>,
    answer: Option<Spanned<String>>,
    greeting: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhookReply {
    respond: Option<serde_json::Value>,
    error: Option<String>,
    timeout: Option<bool>,
    after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransferMap {
    outcome: Spanned<String>,
    after: Option<Spanned<String>>,
    reason: Option<String>,
}

/// `busy` or `{ outcome: busy, after: 5s }`.
#[derive(Debug)]
enum RawTransferReply {
    Short(String),
    Full(RawTransferMap),
}

impl<'de> Deserialize<'de> for RawTransferReply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawTransferReply;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`connected`, `busy`, `no_answer`, `failed` or `{ outcome: …, after: … }`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawTransferReply::Short(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawTransferMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawTransferReply::Full)
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecordingReply {
    transcript: Option<String>,
    duration: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    outcome: Option<String>,
    path: Option<Vec<String>>,
    visits: Option<Vec<String>>,
    answers: Option<OrderedMap<String, RawExpectAnswer>>,
    variables: Option<OrderedMap<String, Scalar>>,
    events: Option<Vec<RawEventExpect>>,
    hangup_by: Option<Spanned<String>>,
    payload: Option<OrderedMap<String, serde_json::Value>>,
    plays: Option<Vec<String>>,
    max_duration: Option<Spanned<String>>,
}

/// An expected CRM event: `sms.requested`, or `{ sms.requested: { to: "+1555…" } }` to also
/// check fields of its data.
#[derive(Debug)]
struct RawEventExpect {
    event: String,
    data: Vec<(String, serde_json::Value)>,
}

impl<'de> Deserialize<'de> for RawEventExpect {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEventExpect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event name, or `{ event.name: { field: value } }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawEventExpect {
                    event: v.to_string(),
                    data: Vec::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let Some((event, fields)) =
                    map.next_entry::<String, OrderedMap<String, serde_json::Value>>()?
                else {
                    return Err(de::Error::custom("an empty mapping names no event"));
                };
                if map.next_entry::<String, de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom(
                        "one event per list item: `- { sms.requested: { to: … } }`",
                    ));
                }
                Ok(RawEventExpect {
                    event,
                    data: fields.0,
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectAnswer {
    input: Option<String>,
    value: Option<Scalar>,
    intent: Option<String>,
    reason: Option<String>,
}

fn pos<T>(s: &Spanned<T>) -> SourcePos {
    SourcePos::of(&s.referenced)
}

struct Parser {
    diags: Vec<Diagnostic>,
}

impl Parser {
    fn error(&mut self, at: SourcePos, message: impl Into<String>, hint: &str) {
        self.diags.push(
            Diagnostic::new(ErrorKind::InvalidValue, at, message).with_hint(hint.to_string()),
        );
    }

    fn duration(&mut self, d: Option<&Spanned<String>>, default: Duration) -> Duration {
        let Some(d) = d else {
            return default;
        };
        match parse_duration(&d.value) {
            Ok(v) => v,
            Err(e) => {
                self.diags.push(
                    Diagnostic::new(ErrorKind::InvalidDuration, pos(d), e)
                        .with_hint("write a number with a unit: `700ms`, `5s`"),
                );
                default
            }
        }
    }

    fn step(&mut self, s: &Spanned<RawStep>) -> Option<CallerStep> {
        let raw = &s.value;
        let at_pos = pos(s);
        let actions: Vec<&str> = [
            ("press", raw.press.is_some()),
            ("say", raw.say.is_some()),
            ("noise", raw.noise.is_some()),
            ("wav", raw.wav.is_some()),
            ("silence", raw.silence.is_some()),
            ("hangup", raw.hangup.is_some()),
            ("answer", raw.answer.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.then_some(k))
        .collect();
        if actions.len() != 1 {
            self.error(
                at_pos,
                format!(
                    "a step does exactly one thing, this one has {}",
                    actions.len()
                ),
                "one of `press`, `say`, `noise`, `wav`, `silence`, `hangup`, `answer` per step",
            );
            return None;
        }
        let after = self.duration(raw.after.as_ref(), DEFAULT_REACTION);
        let at = raw
            .at
            .as_ref()
            .map(|a| self.duration(Some(a), Duration::ZERO));
        let confidence = raw.confidence.as_ref().map_or(1.0, |c| c.value as f32);
        for (key, present, allowed) in [
            ("at", raw.at.is_some(), &["press", "say"][..]),
            ("gap", raw.gap.is_some(), &["press"][..]),
            ("confidence", raw.confidence.is_some(), &["say"][..]),
            ("greeting", raw.greeting.is_some(), &["answer"][..]),
            (
                "after",
                raw.after.is_some(),
                &["press", "say", "noise", "wav"][..],
            ),
        ] {
            if present && !allowed.contains(&actions[0]) {
                self.error(
                    at_pos,
                    format!("`{key}` does not apply to `{}`", actions[0]),
                    "see src/sim/script.rs or docs/scenario-language.md for the step keys",
                );
            }
        }
        match actions[0] {
            "press" => {
                let keys = raw.press.as_ref()?;
                let digits = keys.value.0.clone();
                if digits.is_empty()
                    || !digits.chars().all(
                        |c| matches!(c.to_ascii_uppercase(), '0'..='9' | '*' | '#' | 'A'..='D'),
                    )
                {
                    self.error(
                        pos(keys),
                        format!("`{digits}` is not a key sequence"),
                        "keys are 0-9, *, # and A-D; quote them: `press: \"1\"`",
                    );
                    return None;
                }
                if let Some(at) = at {
                    let mut chars = digits.chars();
                    let (Some(digit), None) = (chars.next(), chars.next()) else {
                        self.error(
                            pos(keys),
                            "`at` presses a single key",
                            "split the keys into steps",
                        );
                        return None;
                    };
                    return Some(CallerStep::KeyAt { digit, at });
                }
                Some(CallerStep::Keys {
                    digits,
                    after_silence: after,
                    gap: self.duration(raw.gap.as_ref(), Duration::ZERO),
                })
            }
            "say" => {
                let text = raw.say.as_ref()?.value.clone();
                if !(0.0..=1.0).contains(&confidence) {
                    self.error(
                        at_pos,
                        "confidence must be between 0 and 1",
                        "e.g. `confidence: 0.6`",
                    );
                }
                Some(match at {
                    Some(at) => CallerStep::SayAt {
                        text,
                        confidence,
                        at,
                    },
                    None => CallerStep::Say {
                        text,
                        confidence,
                        after_silence: after,
                    },
                })
            }
            "noise" => Some(CallerStep::Noise {
                after_silence: after,
            }),
            "wav" => Some(CallerStep::SayWav {
                path: PathBuf::from(&raw.wav.as_ref()?.value),
                after_silence: after,
            }),
            "answer" => {
                let who = raw.answer.as_ref()?;
                let greeting =
                    self.duration(raw.greeting.as_ref(), super::DEFAULT_MACHINE_GREETING);
                match who.value.as_str() {
                    "human" => Some(CallerStep::Answer(super::Answerer::Human)),
                    "silent" => Some(CallerStep::Answer(super::Answerer::Silent)),
                    "machine" => Some(CallerStep::Answer(super::Answerer::Machine { greeting })),
                    other => {
                        self.error(
                            pos(who),
                            format!("`{other}` is not who answers"),
                            "`answer: human`, `answer: machine` or `answer: silent`",
                        );
                        None
                    }
                }
            }
            "silence" => Some(CallerStep::Silence(
                self.duration(raw.silence.as_ref(), Duration::ZERO),
            )),
            _ => {
                let h = raw.hangup.as_ref()?;
                let after = match h.value.0.as_str() {
                    "now" | "true" => Duration::ZERO,
                    text => match parse_duration(text) {
                        Ok(d) => d,
                        Err(e) => {
                            self.error(pos(h), e, "`hangup: 2s` (after 2 s) or `hangup: now`");
                            return None;
                        }
                    },
                };
                Some(CallerStep::Hangup { after })
            }
        }
    }

    /// `inbound` / `outbound`, reported when it is neither.
    fn direction(&mut self, d: &Spanned<String>) -> Option<CallDirection> {
        let parsed = CallDirection::parse(&d.value);
        if parsed.is_none() {
            self.error(
                pos(d),
                format!("`{}` is not a call direction", d.value),
                "`direction: inbound` (the customer calls) or `direction: outbound` (we call)",
            );
        }
        parsed
    }

    fn call(
        &mut self,
        c: &Spanned<RawCall>,
        default_direction: Option<CallDirection>,
    ) -> Option<CallSpec> {
        let raw = &c.value;
        let mut variables = BTreeMap::new();
        for (k, v) in raw.variables.iter().flat_map(|m| m.0.iter()) {
            variables.insert(k.value.clone(), v.value.0.clone());
        }
        let direction = match &raw.direction {
            Some(d) => self.direction(d),
            None => default_direction,
        };
        if let Some(d) = direction {
            variables.insert(DIRECTION.to_string(), d.as_str().to_string());
        }
        let mut steps = Vec::new();
        for s in raw.steps.iter().flatten() {
            if let Some(step) = self.step(s) {
                if matches!(step, CallerStep::Answer(_))
                    && direction == Some(CallDirection::Inbound)
                {
                    self.error(
                        pos(s),
                        "`answer:` says who picks up a call we place; this call is inbound",
                        "remove the step, or make the call `direction: outbound`",
                    );
                }
                steps.push(step);
            }
        }
        let mut effects = EffectScript::default();
        for w in raw.webhooks.iter().flatten() {
            let after = self.duration(w.value.after.as_ref(), super::DEFAULT_WEBHOOK_LATENCY);
            let kinds = [
                w.value.respond.is_some(),
                w.value.error.is_some(),
                w.value.timeout == Some(true),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                self.error(
                    pos(w),
                    "a webhook reply is one of `respond`, `error`, `timeout: true`",
                    "e.g. `{ respond: { open: true } }`",
                );
                continue;
            }
            effects.webhooks.push(if let Some(body) = &w.value.respond {
                WebhookReply::Respond {
                    body: body.clone(),
                    after,
                }
            } else if let Some(e) = &w.value.error {
                WebhookReply::Fail {
                    error: e.clone(),
                    after,
                }
            } else {
                WebhookReply::NoReply
            });
        }
        for t in raw.transfers.iter().flatten() {
            let (outcome, after, reason, at) = match &t.value {
                RawTransferReply::Short(s) => {
                    (s.clone(), super::DEFAULT_TRANSFER_TIME, None, pos(t))
                }
                RawTransferReply::Full(m) => (
                    m.outcome.value.clone(),
                    self.duration(m.after.as_ref(), super::DEFAULT_TRANSFER_TIME),
                    m.reason.clone(),
                    pos(&m.outcome),
                ),
            };
            let outcome = match outcome.as_str() {
                "connected" => TransferOutcome::Connected,
                "busy" => TransferOutcome::Busy,
                "no_answer" | "noanswer" => TransferOutcome::NoAnswer,
                "failed" => TransferOutcome::Failed(reason.unwrap_or_else(|| "failed".to_string())),
                other => {
                    self.error(
                        at,
                        format!("`{other}` is not a transfer outcome"),
                        "one of `connected`, `busy`, `no_answer`, `failed`",
                    );
                    continue;
                }
            };
            effects.transfers.push(TransferReply { outcome, after });
        }
        for r in raw.recordings.iter().flatten() {
            effects.recordings.push(RecordingReply {
                transcript: r.value.transcript.clone(),
                duration: self.duration(r.value.duration.as_ref(), Duration::from_secs(3)),
            });
        }
        let expect = raw
            .expect
            .as_ref()
            .map(|e| self.expect(e))
            .unwrap_or_default();
        Some(CallSpec {
            name: raw.name.value.clone(),
            pos: pos(c),
            variables,
            steps,
            effects,
            expect,
        })
    }

    fn expect(&mut self, e: &Spanned<RawExpect>) -> Expect {
        let raw = &e.value;
        let hangup_by = match &raw.hangup_by {
            None => None,
            Some(h) => match h.value.as_str() {
                "robot" => Some(HangupBy::Robot),
                "caller" => Some(HangupBy::Caller),
                other => {
                    self.error(pos(h), format!("`{other}` is not `robot` or `caller`"), "");
                    None
                }
            },
        };
        Expect {
            outcome: raw.outcome.clone(),
            path: raw.path.clone(),
            visits: raw.visits.clone().unwrap_or_default(),
            answers: raw
                .answers
                .iter()
                .flat_map(|m| m.0.iter())
                .map(|(k, a)| {
                    (
                        k.clone(),
                        ExpectAnswer {
                            input: a.input.clone(),
                            value: a.value.as_ref().map(|v| v.0.clone()),
                            intent: a.intent.clone(),
                            reason: a.reason.clone(),
                        },
                    )
                })
                .collect(),
            variables: raw
                .variables
                .iter()
                .flat_map(|m| m.0.iter())
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            events: raw
                .events
                .as_ref()
                .map(|l| l.iter().map(|e| e.event.clone()).collect()),
            event_data: raw
                .events
                .iter()
                .flatten()
                .enumerate()
                .filter(|(_, e)| !e.data.is_empty())
                .map(|(i, e)| (i, e.data.clone()))
                .collect(),
            hangup_by,
            payload: raw
                .payload
                .iter()
                .flat_map(|m| m.0.iter())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            plays: raw.plays.clone().unwrap_or_default(),
            max_duration: raw
                .max_duration
                .as_ref()
                .map(|d| self.duration(Some(d), Duration::ZERO)),
        }
    }
}

/// The caller-script file that goes with a scenario file: `x.yaml` → `x.test.yaml`.
pub fn script_path_for(scenario: &Path) -> PathBuf {
    let stem = scenario
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario");
    scenario.with_file_name(format!("{stem}.test.yaml"))
}

/// Parses a caller script; `file_label` names it in errors and locates the default
/// scenario (`<dir>/<stem without .test>.yaml`).
pub fn parse_script(file_label: &str, text: &str) -> Result<Script, LoadError> {
    let raw: RawScript = serde_saphyr::from_str(text).map_err(|e| {
        LoadError::invalid(file_label, vec![crate::scenario::yaml_diagnostic(&e, text)])
    })?;
    let mut p = Parser { diags: Vec::new() };
    let label_path = Path::new(file_label);
    let dir = label_path.parent().unwrap_or(Path::new(""));
    let scenario = match &raw.scenario {
        Some(s) => dir.join(&s.value),
        None => {
            let name = label_path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let stem = name
                .strip_suffix(".test.yaml")
                .or_else(|| name.strip_suffix(".test.yml"))
                .unwrap_or(name);
            dir.join(format!("{stem}.yaml"))
        }
    };
    if raw.calls.value.is_empty() {
        p.error(
            pos(&raw.calls),
            "`calls` is empty",
            "a script describes at least one call",
        );
    }
    let default_direction = raw.direction.as_ref().and_then(|d| p.direction(d));
    let mut calls = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for c in &raw.calls.value {
        if !names.insert(c.value.name.value.clone()) {
            p.error(
                pos(&c.value.name),
                format!("two calls are named `{}`", c.value.name.value),
                "give each call its own name",
            );
        }
        if let Some(call) = p.call(c, default_direction) {
            calls.push(call);
        }
    }
    if !p.diags.is_empty() {
        return Err(LoadError::invalid(file_label, p.diags));
    }
    Ok(Script {
        file: file_label.to_string(),
        scenario,
        calls,
    })
}

/// Loads a caller script from a file.
pub fn load_script(path: &Path) -> Result<Script, LoadError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        file: label.clone(),
        source,
    })?;
    parse_script(&label, &text)
}

fn json_at<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let mut cur = value;
    for seg in path.split('.') {
        cur = match cur {
            serde_json::Value::Object(m) => m.get(seg)?,
            serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn same_json(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    match (want, got) {
        // "3" in a script matches the number 3 in the payload.
        (serde_json::Value::String(w), other) if !other.is_string() => {
            let got = other.to_string();
            got == *w
        }
        (w, g) => w == g,
    }
}

/// What differs between a call's report and the expectations (empty: the call passed).
/// A call that did not end by itself, or that asked for a prompt with no recording, fails
/// whatever the expectations say.
pub fn check(expect: &Expect, report: &SimReport) -> Vec<String> {
    let mut out = Vec::new();
    let r = &report.record;
    if report.timed_out {
        out.push(format!(
            "the call did not end within {:.0}s",
            report.duration.as_secs_f64()
        ));
    }
    for e in &r.trace {
        if let TraceEvent::MissingPrompt { prompt, .. } = e {
            out.push(format!("prompt {prompt} has no recording"));
        }
    }
    if let Some(want) = &expect.outcome
        && r.outcome.as_deref() != Some(want.as_str())
    {
        out.push(format!(
            "outcome: expected `{want}`, got `{}`",
            r.outcome.as_deref().unwrap_or("-")
        ));
    }
    if let Some(want) = &expect.path
        && *want != r.path
    {
        out.push(format!(
            "path: expected [{}], got [{}]",
            want.join(", "),
            r.path.join(", ")
        ));
    }
    let mut rest = r.path.iter();
    for v in &expect.visits {
        if !rest.any(|p| p == v) {
            out.push(format!(
                "visits: `{v}` not reached in order; path was [{}]",
                r.path.join(", ")
            ));
            break;
        }
    }
    for (node, want) in &expect.answers {
        let Some(got) = r.answers.get(node) else {
            out.push(format!("answers.{node}: no answer"));
            continue;
        };
        for (field, w, g) in [
            ("input", &want.input, Some(&got.input)),
            (
                "value",
                &want.value,
                got.reason.is_none().then_some(&got.value),
            ),
            ("intent", &want.intent, got.intent.as_ref()),
            ("reason", &want.reason, got.reason.as_ref()),
        ] {
            if let Some(w) = w
                && g != Some(w)
            {
                out.push(format!(
                    "answers.{node}.{field}: expected `{w}`, got `{}`",
                    g.map_or("-", |s| s.as_str())
                ));
            }
        }
    }
    for (k, want) in &expect.variables {
        let got = r.variables.get(k).map(String::as_str);
        if got != Some(want.as_str()) {
            out.push(format!(
                "variables.{k}: expected `{want}`, got `{}`",
                got.unwrap_or("-")
            ));
        }
    }
    if let Some(want) = &expect.events {
        let got = report.events();
        if got != want.iter().map(String::as_str).collect::<Vec<_>>() {
            out.push(format!(
                "events: expected [{}], got [{}]",
                want.join(", "),
                got.join(", ")
            ));
        }
    }
    let sent: Vec<(&str, &serde_json::Value)> = report
        .effects
        .iter()
        .filter_map(|e| match e {
            super::EffectLog::Notify { event, data, .. } => Some((event.as_str(), data)),
            _ => None,
        })
        .collect();
    for (i, fields) in &expect.event_data {
        let name = expect
            .events
            .as_ref()
            .and_then(|e| e.get(*i))
            .map_or("", String::as_str);
        let Some((_, data)) = sent.get(*i).filter(|(e, _)| *e == name) else {
            continue; // the list of events already differs
        };
        for (path, want) in fields {
            match json_at(data, path) {
                Some(got) if same_json(want, got) => {}
                Some(got) => out.push(format!("events.{name}.{path}: expected {want}, got {got}")),
                None => out.push(format!("events.{name}.{path}: not in the event's data")),
            }
        }
    }
    if let Some(want) = expect.hangup_by
        && r.hangup_by != want
    {
        out.push(format!(
            "hangup_by: expected {want:?}, got {:?}",
            r.hangup_by
        ));
    }
    if !expect.payload.is_empty() {
        match serde_json::to_value(r) {
            Ok(json) => {
                for (path, want) in &expect.payload {
                    match json_at(&json, path) {
                        Some(got) if same_json(want, got) => {}
                        Some(got) => {
                            out.push(format!("payload.{path}: expected {want}, got {got}"))
                        }
                        None => out.push(format!("payload.{path}: not in the payload")),
                    }
                }
            }
            Err(e) => out.push(format!("payload: cannot serialise the record: {e}")),
        }
    }
    let played: Vec<String> = report.plays().into_iter().flatten().collect();
    for p in &expect.plays {
        if !played.contains(p) {
            out.push(format!("plays: `{p}` was never played"));
        }
    }
    if let Some(max) = expect.max_duration
        && report.duration > max
    {
        out.push(format!(
            "duration: {:.1}s is longer than {:.1}s",
            report.duration.as_secs_f64(),
            max.as_secs_f64()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_effects_and_expectations() {
        let s = parse_script(
            "dir/x.test.yaml",
            "calls:\n  - name: a\n    variables: { n: 4 }\n    steps:\n      - press: \"12#\"\n      - { press: \"1\", at: 7s }\n      - { say: да, confidence: 0.5 }\n      - noise: true\n      - silence: 2s\n      - hangup: now\n    webhooks: [{ respond: { ok: true } }, { error: boom }, { timeout: true }]\n    transfers: [busy, { outcome: failed, reason: x, after: 1s }]\n    recordings: [{ transcript: hi, duration: 2s }]\n    expect: { outcome: done, hangup_by: robot, payload: { answers.q.value: 3 } }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.scenario, Path::new("dir/x.yaml"));
        let c = &s.calls[0];
        assert_eq!(c.variables["n"], "4");
        assert_eq!(c.steps.len(), 6);
        assert_eq!(
            c.steps[1],
            CallerStep::KeyAt {
                digit: '1',
                at: Duration::from_secs(7)
            }
        );
        assert_eq!(
            c.steps[5],
            CallerStep::Hangup {
                after: Duration::ZERO
            }
        );
        assert_eq!(c.effects.webhooks.len(), 3);
        assert_eq!(c.effects.webhooks[2], WebhookReply::NoReply);
        assert_eq!(
            c.effects.transfers[1].outcome,
            TransferOutcome::Failed("x".into())
        );
        assert_eq!(c.expect.hangup_by, Some(HangupBy::Robot));
        assert!(same_json(&serde_json::json!("3"), &serde_json::json!(3)));
    }

    #[test]
    fn errors_name_the_place() {
        for (text, line, col, needle) in [
            (
                "calls:\n  - name: a\n    steps:\n      - press: \"1x\"\n",
                4,
                16,
                "not a key sequence",
            ),
            (
                "calls:\n  - name: a\n    steps:\n      - { press: \"1\", say: x }\n",
                4,
                9,
                "exactly one thing",
            ),
            (
                "calls:\n  - name: a\n    transfers: [maybe]\n",
                3,
                17,
                "not a transfer outcome",
            ),
            (
                "calls:\n  - name: a\n    steps:\n      - silence: 5\n",
                4,
                18,
                "has no unit",
            ),
            (
                "calls:\n  - name: a\n  - name: a\n",
                3,
                11,
                "two calls are named",
            ),
            (
                "calls:\n  - name: a\n    stpes: []\n",
                3,
                5,
                "unknown key `stpes` in a `calls` item",
            ),
        ] {
            let e = parse_script("x.test.yaml", text).expect_err(text);
            let d = &e.diagnostics()[0];
            assert_eq!((d.line, d.column), (line, col), "{text}: {e}");
            assert!(d.message.contains(needle), "{text}: {e}");
        }
        let e = parse_script("x.test.yaml", "calls:\n  - name: a\n    stpes: []\n").unwrap_err();
        assert_eq!(
            e.diagnostics()[0].hint.as_deref(),
            Some("did you mean `steps`?")
        );
    }
}
