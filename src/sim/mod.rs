//! Simulated calls: the real call core (dialogue, prompt playout, RTP packetisation) on a
//! virtual clock, with a scripted caller. No sockets, no sleeps; a minute of call runs in
//! milliseconds and the same way every time.
//!
//! The caller model: keys are pressed once the robot has been silent for a moment (a person
//! waits for the question to end), or at a fixed time for barge-in; silence lets the robot's
//! timers run; hang-up ends the call. After the script the caller stays silent.
//!
//! Not here: SIP. Tests of the SIP path run the real server against SIPp on loopback.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::call::{CallCore, CallInfo, MediaParams, TraceEvent};
use crate::crm::CallCompleted;
use crate::dialogue::HangupBy;
use crate::media::Codec;
use crate::media::prompts::PromptCache;
use crate::scenario::Scenario;

/// One thing the simulated caller does.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerStep {
    /// Press `digits` once the robot has been silent for `after_silence`.
    Keys {
        digits: String,
        after_silence: Duration,
    },
    /// Press `digit` at `at` after the call started, whatever the robot is doing.
    KeyAt { digit: char, at: Duration },
    /// Say nothing for this long.
    Silence(Duration),
    /// Hang up after this long.
    Hangup { after: Duration },
}

impl CallerStep {
    /// A key press the way a person does it: when the question has ended.
    pub fn key(digits: &str) -> CallerStep {
        CallerStep::Keys {
            digits: digits.to_owned(),
            after_silence: Duration::from_millis(700),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The call is cut after this much virtual time (a scenario that never ends is a bug).
    pub limit: Duration,
    pub codec: Codec,
    /// Wall-clock time the call starts at, for the CRM record.
    pub start_wall: SystemTime,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            limit: Duration::from_secs(600),
            codec: Codec::Pcmu,
            start_wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        }
    }
}

/// What a simulated call produced.
#[derive(Debug, Clone)]
pub struct SimReport {
    pub record: CallCompleted,
    /// RTP packets the robot sent.
    pub packets: u64,
    /// Virtual duration of the call.
    pub duration: Duration,
    /// The call hit [`SimOptions::limit`] without ending.
    pub timed_out: bool,
}

impl SimReport {
    /// Prompt lists of every `Play`, in order (`"en/hello"` …), for exact assertions.
    pub fn plays(&self) -> Vec<Vec<String>> {
        self.record
            .trace
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Play { prompts, .. } => Some(prompts.clone()),
                _ => None,
            })
            .collect()
    }
}

const PTIME: Duration = Duration::from_millis(20);

/// Run one call to its end on a virtual clock.
pub fn run_call(
    scenario: Arc<Scenario>,
    variables: BTreeMap<String, String>,
    prompts: Arc<PromptCache>,
    script: &[CallerStep],
    opts: &SimOptions,
) -> SimReport {
    let t0 = Instant::now();
    let media = MediaParams {
        codec: opts.codec,
        payload_type: opts.codec.payload_type(),
        telephone_event_pt: Some(101),
        ssrc: 0x1234_5678,
        initial_seq: 1,
        initial_ts: 0,
    };
    let scenario_name = scenario.name.clone();
    let mut core = CallCore::new(scenario, variables, prompts, media, t0);
    let mut buf = [0u8; 1500];
    let mut now = t0;
    let mut next_tick = t0;
    let mut step = 0usize;
    let mut step_started = t0;
    let mut silent_since: Option<Instant> = Some(t0);
    let by;
    let mut timed_out = false;
    core.start(now);
    loop {
        if core.wants_hangup() {
            by = HangupBy::Robot;
            break;
        }
        if core.is_finished() {
            by = HangupBy::Caller;
            break;
        }
        if now.duration_since(t0) >= opts.limit {
            timed_out = true;
            core.handle_hangup(now);
            by = HangupBy::Caller;
            break;
        }
        // When does the caller act next?
        let caller_due: Option<Instant> = match script.get(step) {
            Some(CallerStep::Keys { after_silence, .. }) => {
                silent_since.map(|s| s.max(step_started) + *after_silence)
            }
            Some(CallerStep::KeyAt { at, .. }) => Some(t0 + *at),
            Some(CallerStep::Silence(d)) => Some(step_started + *d),
            Some(CallerStep::Hangup { after }) => Some(step_started + *after),
            None => None,
        };
        let mut next = next_tick;
        if let Some(t) = core.poll_timeout() {
            next = next.min(t);
        }
        if let Some(t) = caller_due {
            next = next.min(t);
        }
        now = next.max(now);
        core.handle_timeout(now);
        if caller_due.is_some_and(|t| t <= now) {
            match &script[step] {
                CallerStep::Keys { digits, .. } => {
                    for d in digits.chars() {
                        core.handle_dtmf(now, d);
                    }
                }
                CallerStep::KeyAt { digit, .. } => core.handle_dtmf(now, *digit),
                CallerStep::Silence(_) => {}
                CallerStep::Hangup { .. } => core.handle_hangup(now),
            }
            step += 1;
            step_started = now;
        }
        if now >= next_tick {
            core.poll_packet(now, &mut buf);
            next_tick += PTIME;
            if core.is_playing() {
                silent_since = None;
            } else if silent_since.is_none() {
                silent_since = Some(now);
            }
        }
    }
    let record = core.completed_record(
        CallInfo {
            call_id: "simulated",
            scenario: &scenario_name,
            direction: "simulated",
            started_wall: opts.start_wall,
        },
        now,
        by,
    );
    SimReport {
        record,
        packets: core.packets_sent(),
        duration: now.duration_since(t0),
        timed_out,
    }
}
