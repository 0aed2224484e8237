//! Nothing is promised before it is stored: the node's commit gate.
//!
//! Every call record (a row change and the CRM event it produces) goes to the store as
//! part of a commit. SIP that follows a call's event — the 200 OK after `call.started`, the
//! BYE after `call.completed` — is held until that event is committed, and an inbound
//! call's greeting waits for its held 200 OK. A datagram is held only when its own call
//! (its SIP Call-ID) has an uncommitted record; other calls are not delayed.
//!
//! ```text
//!   records ──► next batch ──(no commit in flight)──► Commit{ticket} ──► store
//!   SIP of a call with records in a batch ──► that batch's held list
//!   Stored{ticket} ──► release its held SIP (in order), then the next batch goes
//!   StoreFailed{ticket} ──► failing: retry the same batch after a backoff; held SIP waits
//! ```
//! One commit is in flight at a time; whatever is recorded meanwhile is committed together
//! next (group commit), so per-call event order is the commit order and a failed batch is
//! retried before anything recorded after it. While the store fails the node says no to new
//! work (see `crate::node`) — nothing is dropped, nothing is reported as done.
//!
//! Not here: what the records mean (`records`), or SQL (`crate::store`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::recordings::Attachment;
use crate::sip::ua::{CallHandle, Transmit};
use crate::store::Record;

/// First retry of a failed commit; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Batch {
    ticket: u64,
    records: Vec<Record>,
    /// Recordings to write before the records are committed (the records, or later ones,
    /// name them).
    files: Vec<Attachment>,
    /// SIP Call-IDs with a record in this batch.
    calls: Vec<String>,
    /// SIP waiting for this batch, in order.
    held: VecDeque<Transmit>,
    /// Inbound calls whose 200 OK is in `held` (their greetings start on release).
    starts: Vec<CallHandle>,
}

/// Why the store is failing, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    pub since: Instant,
    pub error: String,
    pub tries: u32,
    pub retry_at: Instant,
}

/// What the gate wants from its owner.
#[derive(Debug)]
pub enum GateOutput {
    /// Write these files, then store these records in one transaction; answer with
    /// [`Gate::handle_stored`] or [`Gate::handle_failed`] for `ticket`.
    Commit {
        ticket: u64,
        records: Vec<Record>,
        files: Vec<Attachment>,
    },
    /// SIP that may leave now.
    Sip(Transmit),
    /// An inbound call's 200 OK has left: its greeting may start.
    Start(CallHandle),
}

#[derive(Default)]
pub struct Gate {
    next_ticket: u64,
    in_flight: Option<Batch>,
    next: Batch,
    /// Call-ID → batches (in flight, next) that hold a record of it.
    pending: HashMap<String, u8>,
    failing: Option<Failing>,
    out: VecDeque<GateOutput>,
    /// Commits acknowledged, and failures seen, since the start.
    pub committed: u64,
    pub failures: u64,
}

const IN_FLIGHT: u8 = 1;
const NEXT: u8 = 2;

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Records of call `sip_call_id` (empty for records of no SIP call, e.g. a dialer
    /// refusal) to commit.
    pub fn record(&mut self, sip_call_id: &str, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        self.next.records.extend(records);
        if !sip_call_id.is_empty() {
            let flags = self.pending.entry(sip_call_id.to_owned()).or_default();
            if *flags & NEXT == 0 {
                *flags |= NEXT;
                self.next.calls.push(sip_call_id.to_owned());
            }
        }
    }

    /// A recording to write with the next commit: on disk before any record committed
    /// after it, so the event that names it never points at nothing. A file the disk
    /// refuses fails its commit like a record would.
    pub fn attach(&mut self, file: Attachment) {
        self.next.files.push(file);
    }

    /// A SIP datagram: held behind its call's uncommitted records, or free to go.
    pub fn sip(&mut self, t: Transmit) {
        let flags = call_id_of(&t.payload)
            .and_then(|id| self.pending.get(id))
            .copied()
            .unwrap_or(0);
        if flags & NEXT != 0 {
            self.next.held.push_back(t);
        } else if flags & IN_FLIGHT != 0
            && let Some(b) = self.in_flight.as_mut()
        {
            b.held.push_back(t);
        } else {
            self.out.push_back(GateOutput::Sip(t));
        }
    }

    /// Inbound `call`'s greeting waits for its 200 OK, which is held with `sip_call_id`'s
    /// records (or started at once when nothing of that call is held).
    pub fn start_after(&mut self, call: CallHandle, sip_call_id: &str) {
        match self.pending.get(sip_call_id).copied().unwrap_or(0) {
            f if f & NEXT != 0 => self.next.starts.push(call),
            f if f & IN_FLIGHT != 0 => match self.in_flight.as_mut() {
                Some(b) => b.starts.push(call),
                None => self.out.push_back(GateOutput::Start(call)),
            },
            _ => self.out.push_back(GateOutput::Start(call)),
        }
    }

    /// Sends the next batch if nothing is in flight and the store is not failing.
    fn pump(&mut self, _now: Instant) {
        if self.in_flight.is_some() || self.failing.is_some() {
            return;
        }
        if self.next.records.is_empty() && self.next.files.is_empty() {
            // Nothing to store: anything parked here (cannot happen) goes at once.
            self.release_next_without_records();
            return;
        }
        self.next_ticket += 1;
        let mut batch = std::mem::take(&mut self.next);
        batch.ticket = self.next_ticket;
        for c in &batch.calls {
            if let Some(f) = self.pending.get_mut(c) {
                *f = (*f & !NEXT) | IN_FLIGHT;
            }
        }
        self.out.push_back(GateOutput::Commit {
            ticket: batch.ticket,
            records: batch.records.clone(),
            files: batch.files.clone(),
        });
        self.in_flight = Some(batch);
    }

    fn release_next_without_records(&mut self) {
        let b = std::mem::take(&mut self.next);
        for t in b.held {
            self.out.push_back(GateOutput::Sip(t));
        }
        for c in b.starts {
            self.out.push_back(GateOutput::Start(c));
        }
    }

    /// Commit `ticket` is on disk: its held SIP leaves, then the next batch goes.
    pub fn handle_stored(&mut self, now: Instant, ticket: u64) {
        if self.in_flight.as_ref().is_none_or(|b| b.ticket != ticket) {
            tracing::warn!(
                ticket,
                "acknowledgement of a commit that is not in flight; ignored"
            );
            return;
        }
        let Some(b) = self.in_flight.take() else {
            return;
        };
        self.committed += 1;
        if let Some(f) = self.failing.take() {
            tracing::info!(
                failed_for_ms = now.saturating_duration_since(f.since).as_millis() as u64,
                tries = f.tries,
                "the store accepts commits again; held events and SIP go out"
            );
        }
        for c in &b.calls {
            if let Some(f) = self.pending.get_mut(c) {
                *f &= !IN_FLIGHT;
                if *f == 0 {
                    self.pending.remove(c);
                }
            }
        }
        for t in b.held {
            self.out.push_back(GateOutput::Sip(t));
        }
        for c in b.starts {
            self.out.push_back(GateOutput::Start(c));
        }
        self.pump(now);
    }

    /// Commit `ticket` failed: the store is failing; the batch is retried after a
    /// backoff (the same records, so nothing recorded later overtakes them).
    pub fn handle_failed(&mut self, now: Instant, ticket: u64, error: &str) {
        if self.in_flight.as_ref().is_none_or(|b| b.ticket != ticket) {
            return;
        }
        self.failures += 1;
        let tries = self.failing.as_ref().map_or(0, |f| f.tries) + 1;
        let backoff =
            (FIRST_BACKOFF * 2u32.saturating_pow(tries.saturating_sub(1).min(8))).min(MAX_BACKOFF);
        if tries == 1 {
            tracing::error!(%error, ticket, "the store cannot commit: refusing new calls, holding SIP until it can");
        } else {
            tracing::warn!(%error, ticket, tries, "commit failed again");
        }
        let since = self.failing.as_ref().map_or(now, |f| f.since);
        self.failing = Some(Failing {
            since,
            error: error.to_owned(),
            tries,
            retry_at: now + backoff,
        });
    }

    /// When the gate needs [`Gate::handle_timeout`]: the next retry of a failed commit.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.failing.as_ref().map(|f| f.retry_at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(f) = self.failing.as_mut() else {
            return;
        };
        if f.retry_at > now {
            return;
        }
        // Retry: the same batch again (it stays in flight). `failing` stays set until a
        // commit succeeds; the next retry is armed far out until this one is answered.
        f.retry_at = now + MAX_BACKOFF * 12;
        if let Some(b) = self.in_flight.as_ref() {
            self.out.push_back(GateOutput::Commit {
                ticket: b.ticket,
                records: b.records.clone(),
                files: b.files.clone(),
            });
        }
    }

    /// The store's trouble, while it lasts.
    pub fn failing(&self) -> Option<&Failing> {
        self.failing.as_ref()
    }

    /// Records and SIP not yet committed or released (for metrics and drain).
    pub fn backlog(&self) -> (usize, usize) {
        let records =
            self.next.records.len() + self.in_flight.as_ref().map_or(0, |b| b.records.len());
        let held = self.next.held.len() + self.in_flight.as_ref().map_or(0, |b| b.held.len());
        (records, held)
    }

    /// Nothing waits to be handed over (held SIP does not count).
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// What to do now; call [`Gate::flush`] first to send what was recorded.
    pub fn poll(&mut self) -> Option<GateOutput> {
        self.out.pop_front()
    }

    /// The owner has handed over everything of this step: commit what was recorded.
    pub fn flush(&mut self, now: Instant) {
        self.pump(now);
    }
}

/// The Call-ID of a SIP message (`Call-ID:` or its compact form `i:`), from the raw bytes.
pub fn call_id_of(msg: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(msg.get(..msg.len().min(8192))?).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{CallChange, CallUpdate};

    fn rec(id: &str) -> Vec<Record> {
        vec![Record {
            call_id: id.into(),
            at: 0,
            change: CallChange::Update(CallUpdate::default()),
            event: None,
        }]
    }

    fn sip(call_id: &str, what: &str) -> Transmit {
        Transmit {
            dest: "127.0.0.1:5060".parse().unwrap(),
            payload: format!("SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nX-What: {what}\r\n\r\n")
                .into_bytes(),
            transport: Default::default(),
        }
    }

    fn drain(g: &mut Gate) -> Vec<String> {
        std::iter::from_fn(|| g.poll())
            .map(|o| match o {
                GateOutput::Commit {
                    ticket,
                    records,
                    files,
                } => {
                    if files.is_empty() {
                        format!("commit {ticket} ({})", records.len())
                    } else {
                        format!("commit {ticket} ({}, {} files)", records.len(), files.len())
                    }
                }
                GateOutput::Sip(t) => {
                    let s = String::from_utf8(t.payload).unwrap();
                    let what = s
                        .split("X-What: ")
                        .nth(1)
                        .unwrap()
                        .split("\r\n")
                        .next()
                        .unwrap()
                        .to_owned();
                    format!("sip {what}")
                }
                GateOutput::Start(c) => format!("start {c}"),
            })
            .collect()
    }

    #[test]
    fn sip_of_a_call_waits_for_its_records_and_no_other_call_waits() {
        let t0 = Instant::now();
        let mut g = Gate::new();
        g.record("a", rec("A"));
        g.sip(sip("a", "a-200"));
        g.start_after(CallHandle(1), "a");
        g.sip(sip("b", "b-503"));
        g.flush(t0);
        assert_eq!(drain(&mut g), ["sip b-503", "commit 1 (1)"]);
        // More of call a while the first commit is in flight: the next batch.
        g.record("a", rec("A"));
        g.sip(sip("a", "a-bye"));
        g.flush(t0);
        assert!(drain(&mut g).is_empty(), "one commit in flight at a time");
        g.handle_stored(t0, 1);
        assert_eq!(drain(&mut g), ["sip a-200", "start #1", "commit 2 (1)"]);
        g.handle_stored(t0, 2);
        assert_eq!(drain(&mut g), ["sip a-bye"]);
        g.sip(sip("a", "a-late"));
        assert_eq!(drain(&mut g), ["sip a-late"]);
    }

    #[test]
    fn a_failed_commit_is_retried_first_and_nothing_is_released_meanwhile() {
        let t0 = Instant::now();
        let mut g = Gate::new();
        g.record("a", rec("A1"));
        g.sip(sip("a", "a-200"));
        g.flush(t0);
        assert_eq!(drain(&mut g), ["commit 1 (1)"]);
        g.handle_failed(t0, 1, "disk full");
        assert!(g.failing().is_some());
        g.record("a", rec("A2"));
        g.sip(sip("a", "a-bye"));
        g.flush(t0);
        assert!(drain(&mut g).is_empty());
        let retry = g.poll_timeout().unwrap();
        assert_eq!(retry, t0 + FIRST_BACKOFF);
        g.handle_timeout(retry);
        assert_eq!(drain(&mut g), ["commit 1 (1)"], "the same batch again");
        g.handle_failed(retry, 1, "disk full");
        assert_eq!(g.poll_timeout(), Some(retry + FIRST_BACKOFF * 2));
        let retry = g.poll_timeout().unwrap();
        g.handle_timeout(retry);
        assert_eq!(drain(&mut g), ["commit 1 (1)"]);
        g.handle_stored(retry, 1);
        assert!(g.failing().is_none());
        assert_eq!(drain(&mut g), ["sip a-200", "commit 2 (1)"]);
        g.handle_stored(retry, 2);
        assert_eq!(drain(&mut g), ["sip a-bye"]);
        assert_eq!(g.backlog(), (0, 0));
    }

    #[test]
    fn call_ids_are_read_in_both_forms() {
        assert_eq!(
            call_id_of(b"BYE sip:a SIP/2.0\r\nVia: x\r\ni: abc@h\r\n\r\n"),
            Some("abc@h")
        );
        assert_eq!(
            call_id_of(b"SIP/2.0 200 OK\r\ncall-id:  x \r\n\r\nbody"),
            Some("x")
        );
        assert_eq!(call_id_of(b"garbage"), None);
    }
}
