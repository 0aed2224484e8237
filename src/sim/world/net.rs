//! The simulated network: datagrams between addresses, each delivered after a latency,
//! and — when the world says so — lost, duplicated or reordered (a random extra delay per
//! datagram, so later ones can overtake earlier ones). Seeded: the same seed, the same
//! fate for every datagram.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How the network misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Largest extra delay of a datagram (uniform in `[0, jitter]`): reordering.
    pub jitter: Duration,
}

/// A datagram on its way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

pub struct Network {
    faults: Faults,
    latency: Duration,
    rng: StdRng,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, Datagram)>>,
    /// Datagrams sent, lost, duplicated (for the report).
    pub sent: u64,
    pub lost: u64,
    pub duplicated: u64,
}

impl Network {
    pub fn new(seed: u64, latency: Duration, faults: Faults) -> Network {
        Network {
            faults,
            latency,
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            queue: BinaryHeap::new(),
            sent: 0,
            lost: 0,
            duplicated: 0,
        }
    }

    fn delay(&mut self) -> Duration {
        let j = self.faults.jitter.as_micros() as u64;
        let extra = if j == 0 {
            0
        } else {
            self.rng.random_range(0..=j)
        };
        self.latency + Duration::from_micros(extra)
    }

    /// Send `payload` from `from` to `to` at `now`.
    pub fn send(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, payload: Vec<u8>) {
        self.sent += 1;
        if self.faults.loss > 0.0 && self.rng.random::<f64>() < self.faults.loss {
            self.lost += 1;
            return;
        }
        let copies =
            if self.faults.duplicate > 0.0 && self.rng.random::<f64>() < self.faults.duplicate {
                self.duplicated += 1;
                2
            } else {
                1
            };
        for _ in 0..copies {
            let at = now + self.delay();
            self.seq += 1;
            self.queue.push(Reverse((
                at,
                self.seq,
                Datagram {
                    from,
                    to,
                    payload: payload.clone(),
                },
            )));
        }
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((t, _, _))| *t)
    }

    /// The next datagram due by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Datagram> {
        if self.next_arrival()? > now {
            return None;
        }
        self.queue.pop().map(|Reverse((_, _, d))| d)
    }
}
