//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, spec v1).
//!
//! Every request ivrflow sends to the CRM carries three headers:
//!
//! ```text
//! webhook-id:        msg_…        the event's idempotency key, the same on every retry
//! webhook-timestamp: 1614265330   Unix seconds of this attempt
//! webhook-signature: v1,<base64(HMAC-SHA256(secret, "{id}.{timestamp}.{body}"))>
//! ```
//!
//! The secret is configured as `whsec_` followed by the base64 of the key bytes, exactly as
//! the specification and its reference libraries expect, so a CRM can verify with an
//! off-the-shelf `standardwebhooks` library.
//!
//! Pure functions, no I/O. Verification lives here only for the doc example and unit tests;
//! the integration tests verify with an independent implementation (Python's `hmac`).
//! Deliberately not here: asymmetric (`v1a`, ed25519) signatures.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The prefix of a secret in its text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest key accepted (the specification recommends 24 to 64 bytes).
pub const MIN_SECRET_BYTES: usize = 24;

/// A symmetric signing key. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("the webhook secret must start with \"whsec_\" (Standard Webhooks format)")]
    Prefix,
    #[error("the webhook secret after \"whsec_\" is not valid base64: {0}")]
    Base64(String),
    #[error(
        "the webhook secret is {0} bytes; use at least 24 random bytes (e.g. `openssl rand -base64 32`)"
    )]
    TooShort(usize),
}

impl Secret {
    /// Parse `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let b64 = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::Prefix)?;
        let key = B64
            .decode(b64)
            .map_err(|e| SecretError::Base64(e.to_string()))?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(Secret(key))
    }

    /// A secret from raw key bytes (tests, key generation).
    pub fn from_bytes(key: &[u8]) -> Secret {
        Secret(key.to_vec())
    }

    /// The `whsec_…` text form.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    /// The `webhook-signature` header value for one attempt: `v1,<base64>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(msg_id, timestamp, body)))
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `header` (space-separated `v1,<sig>` entries) holds a valid signature.
    /// Constant-time comparison; the timestamp tolerance is the caller's business.
    pub fn verify(&self, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        let expected = self.mac(msg_id, timestamp, body);
        header.split(' ').any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|b| B64.decode(b).ok())
                .is_some_and(|got| constant_time_eq(&got, &expected))
        })
    }
}

/// Equal length and equal bytes, in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries.
    #[test]
    fn reference_vector() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = s.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(s.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
            &format!("v1,bogus {sig}")
        ));
        assert!(!s.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            br#"{"test": 2432232314}"#,
            &sig
        ));
    }

    #[test]
    fn secret_format_errors_are_explained() {
        assert_eq!(Secret::parse("abc"), Err(SecretError::Prefix));
        assert!(matches!(
            Secret::parse("whsec_!!!"),
            Err(SecretError::Base64(_))
        ));
        assert_eq!(
            Secret::parse("whsec_c2hvcnQ="),
            Err(SecretError::TooShort(5))
        );
        let s = Secret::from_bytes(&[7u8; 32]);
        assert_eq!(Secret::parse(&s.to_text()).unwrap(), s);
        assert_eq!(format!("{s:?}"), "Secret(32 bytes)");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
