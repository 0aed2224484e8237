//! The node's ids: a call's `call_ref` (the id in `/v1/calls/{id}` and in every CRM event)
//! and each event's message id (`webhook-id`), drawn from the node's one seeded RNG so
//! that a simulated world replays the same ids from the same seed.
//!
//! Not here: SIP's own tags, branches and Call-IDs (the user agent draws those).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Ids {
    rng: StdRng,
}

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids {
            rng: StdRng::seed_from_u64(seed ^ 0x1d5_1d5_1d5),
        }
    }

    fn bytes(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        // RFC 9562 version 4, variant 10.
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        b
    }

    /// A new call id: a hyphenated version-4 UUID.
    pub fn call_ref(&mut self) -> String {
        uuid::Uuid::from_bytes(self.bytes())
            .hyphenated()
            .to_string()
    }

    /// A new message id: `msg_` and 32 hex digits.
    pub fn message_id(&mut self) -> String {
        format!("msg_{}", uuid::Uuid::from_bytes(self.bytes()).simple())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_and_replay_from_the_seed() {
        let (mut a, mut b) = (Ids::new(7), Ids::new(7));
        let r = a.call_ref();
        assert_eq!(r, b.call_ref());
        let u = uuid::Uuid::parse_str(&r).unwrap();
        assert_eq!(u.get_version_num(), 4);
        let m = a.message_id();
        assert!(m.starts_with("msg_") && m.len() == 36, "{m}");
        assert_ne!(a.call_ref(), r);
    }
}
