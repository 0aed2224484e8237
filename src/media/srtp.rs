//! SRTP and SRTCP (RFC 3711) with keys exchanged by SDES (RFC 4568), sans-IO.
//!
//! What it does: the two crypto suites every SIP trunk and softphone speaks —
//! `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32` — for one call's two directions:
//! key derivation (§4.3, key derivation rate 0), AES counter mode (§4.1.1), HMAC-SHA1
//! authentication (§4.2), the rollover counter and index estimation (§3.3.1), and replay
//! protection with a 64-packet window (§3.3.2); SRTCP with its 31-bit index and E flag (§3.4).
//! It also parses and writes the SDP `a=crypto` attribute (RFC 4568 §9.1).
//!
//! The primitives come from `aws-lc-rs` (maintained, already in the tree under rustls):
//! AES-128 in CTR mode and HMAC-SHA1. The transform around them is ours and is checked
//! against RFC 3711's test vectors (Appendix B) and libsrtp's reference packet.
//!
//! What it deliberately does not do: MKI, key derivation rates other than 0, the
//! `UNENCRYPTED_*`/`FEC_*` session parameters (crypto lines carrying them are skipped),
//! AES-192/256 and AEAD suites, DTLS-SRTP, re-keying. A packet that fails authentication or
//! replay checks is an [`SrtpError`] — never a panic.

use std::fmt;

use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::hmac;
use base64::Engine as _;

/// Master key length (AES-128).
pub const MASTER_KEY_LEN: usize = 16;
/// Master salt length.
pub const MASTER_SALT_LEN: usize = 14;
/// The longest authentication tag either suite appends (SRTCP tag plus its 4-byte index
/// when protecting RTCP): what a buffer needs beyond the plain packet.
pub const MAX_TRAILER: usize = 14;

/// An SDES crypto suite (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    pub fn parse(name: &str) -> Option<Suite> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Suite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Suite::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// SRTP authentication tag length. SRTCP always uses 80 bits (RFC 4568 §6.2.2).
    fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 => 10,
            Suite::AesCm128HmacSha1_32 => 4,
        }
    }
}

/// Why a packet was refused, or keys could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    #[error("packet too short for SRTP ({0} bytes)")]
    TooShort(usize),
    #[error("authentication tag does not match")]
    AuthFailed,
    #[error("replayed packet (index {0})")]
    Replayed(u64),
    #[error("packet index too old for the replay window (index {0})")]
    TooOld(u64),
    #[error("buffer too small to append the authentication tag")]
    NoRoom,
    #[error("cipher failure")]
    Cipher,
}

/// Why an `a=crypto` line was not usable (the offer may carry another that is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoAttrError {
    #[error("a=crypto: {0}")]
    Syntax(&'static str),
    #[error("a=crypto: unsupported crypto suite {0:?}")]
    UnsupportedSuite(String),
    #[error("a=crypto: only the inline key method is supported")]
    KeyMethod,
    #[error("a=crypto: the key is not base64 of a 16-byte key and a 14-byte salt")]
    BadKey,
    #[error("a=crypto: MKI is not supported")]
    Mki,
    #[error("a=crypto: session parameter {0:?} is not supported")]
    SessionParam(String),
}

/// A master key and salt (the `inline:` value of an `a=crypto` line).
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    pub key: [u8; MASTER_KEY_LEN],
    pub salt: [u8; MASTER_SALT_LEN],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never reach a log.
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A key from 30 random bytes (the caller's CSPRNG).
    pub fn from_bytes(b: [u8; 30]) -> MasterKey {
        let mut key = [0u8; MASTER_KEY_LEN];
        let mut salt = [0u8; MASTER_SALT_LEN];
        key.copy_from_slice(&b[..16]);
        salt.copy_from_slice(&b[16..]);
        MasterKey { key, salt }
    }

    fn inline(&self) -> String {
        let mut b = Vec::with_capacity(30);
        b.extend_from_slice(&self.key);
        b.extend_from_slice(&self.salt);
        base64::engine::general_purpose::STANDARD.encode(b)
    }
}

/// One `a=crypto` attribute (RFC 4568 §9.1), the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttr {
    pub tag: u32,
    pub suite: Suite,
    pub key: MasterKey,
}

impl CryptoAttr {
    /// Parses the value after `a=crypto:`. Accepts an optional lifetime (`|2^31`) and
    /// refuses an MKI (`|1:4`), other key methods and session parameters.
    pub fn parse(value: &str) -> Result<CryptoAttr, CryptoAttrError> {
        let mut parts = value.split_ascii_whitespace();
        let tag_s = parts.next().ok_or(CryptoAttrError::Syntax("empty"))?;
        if tag_s.is_empty() || tag_s.len() > 9 || !tag_s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CryptoAttrError::Syntax("the tag is not 1-9 digits"));
        }
        let tag: u32 = tag_s
            .parse()
            .map_err(|_| CryptoAttrError::Syntax("bad tag"))?;
        let suite_s = parts.next().ok_or(CryptoAttrError::Syntax("no suite"))?;
        let suite = Suite::parse(suite_s)
            .ok_or_else(|| CryptoAttrError::UnsupportedSuite(suite_s.chars().take(40).collect()))?;
        let key_params = parts
            .next()
            .ok_or(CryptoAttrError::Syntax("no key parameters"))?;
        if let Some(p) = parts.next() {
            return Err(CryptoAttrError::SessionParam(p.chars().take(40).collect()));
        }
        // Several key-params (";"-separated) would need MKIs to tell them apart.
        if key_params.contains(';') {
            return Err(CryptoAttrError::Mki);
        }
        let info = key_params
            .strip_prefix("inline:")
            .ok_or(CryptoAttrError::KeyMethod)?;
        let mut fields = info.split('|');
        let b64 = fields.next().unwrap_or("");
        for f in fields {
            if f.contains(':') {
                return Err(CryptoAttrError::Mki);
            }
            // A lifetime: "2^20" or a decimal; we never send that many packets in a call.
            let ok = f
                .strip_prefix("2^")
                .map_or(f.bytes().all(|b| b.is_ascii_digit()), |e| {
                    e.bytes().all(|b| b.is_ascii_digit())
                });
            if !ok || f.is_empty() {
                return Err(CryptoAttrError::Syntax("bad lifetime"));
            }
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| CryptoAttrError::BadKey)?;
        let bytes: [u8; 30] = raw.try_into().map_err(|_| CryptoAttrError::BadKey)?;
        Ok(CryptoAttr {
            tag,
            suite,
            key: MasterKey::from_bytes(bytes),
        })
    }

    /// The attribute's value (after `a=crypto:`).
    pub fn to_value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            self.suite.name(),
            self.key.inline()
        )
    }
}

/// Session keys for one direction of one stream (RTP or RTCP).
struct SessionKeys {
    cipher: EncryptingKey,
    salt: [u8; MASTER_SALT_LEN],
    auth: hmac::Key,
}

impl SessionKeys {
    /// RFC 3711 §4.3.1 with kdr = 0: labels `base`, `base+1`, `base+2` give the cipher key,
    /// the authentication key and the salt.
    fn derive(master: &MasterKey, base: u8) -> Result<SessionKeys, SrtpError> {
        let mut ck = [0u8; 16];
        prf(master, base, &mut ck)?;
        let mut ak = [0u8; 20];
        prf(master, base + 1, &mut ak)?;
        let mut salt = [0u8; MASTER_SALT_LEN];
        prf(master, base + 2, &mut salt)?;
        let cipher = UnboundCipherKey::new(&AES_128, &ck)
            .and_then(EncryptingKey::ctr)
            .map_err(|_| SrtpError::Cipher)?;
        Ok(SessionKeys {
            cipher,
            salt,
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &ak),
        })
    }

    /// AES-CM over `data` (§4.1.1): IV = salt·2^16 ⊕ SSRC·2^64 ⊕ index·2^16.
    fn crypt(&self, ssrc: u32, index: u64, data: &mut [u8]) -> Result<(), SrtpError> {
        if data.is_empty() {
            return Ok(());
        }
        let mut iv = [0u8; 16];
        iv[..MASTER_SALT_LEN].copy_from_slice(&self.salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        let idx = (index & 0xFFFF_FFFF_FFFF).to_be_bytes();
        for i in 0..6 {
            iv[8 + i] ^= idx[2 + i];
        }
        self.cipher
            .less_safe_encrypt(data, EncryptionContext::Iv128(iv.into()))
            .map(|_| ())
            .map_err(|_| SrtpError::Cipher)
    }

    fn tag(&self, data: &[u8], trailer: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.auth);
        ctx.update(data);
        ctx.update(trailer);
        ctx.sign()
    }
}

/// The key derivation function (AES-CM as a PRF, §4.3.3): IV = (label·2^48 ⊕ salt)·2^16.
fn prf(master: &MasterKey, label: u8, out: &mut [u8]) -> Result<(), SrtpError> {
    let mut iv = [0u8; 16];
    iv[..MASTER_SALT_LEN].copy_from_slice(&master.salt);
    // key_id = label || r (48 bits of r = 0) is right-aligned in the 112-bit salt.
    iv[7] ^= label;
    out.fill(0);
    let key = UnboundCipherKey::new(&AES_128, &master.key)
        .and_then(EncryptingKey::ctr)
        .map_err(|_| SrtpError::Cipher)?;
    key.less_safe_encrypt(out, EncryptionContext::Iv128(iv.into()))
        .map(|_| ())
        .map_err(|_| SrtpError::Cipher)
}

/// A 64-packet sliding replay window (RFC 3711 §3.3.2).
#[derive(Debug, Default, Clone)]
struct ReplayWindow {
    /// Highest index authenticated so far.
    top: Option<u64>,
    /// Bit `i` set: index `top - i` was seen.
    bits: u64,
}

impl ReplayWindow {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(top) = self.top else { return Ok(()) };
        if index > top {
            return Ok(());
        }
        let delta = top - index;
        if delta >= 64 {
            return Err(SrtpError::TooOld(index));
        }
        if self.bits & (1 << delta) != 0 {
            return Err(SrtpError::Replayed(index));
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        match self.top {
            None => {
                self.top = Some(index);
                self.bits = 1;
            }
            Some(top) if index > top => {
                let shift = index - top;
                self.bits = if shift >= 64 { 0 } else { self.bits << shift };
                self.bits |= 1;
                self.top = Some(index);
            }
            Some(top) => self.bits |= 1 << (top - index),
        }
    }
}

/// Sending one SSRC's packets: the rollover counter follows our own sequence numbers.
struct Sender {
    keys: SessionKeys,
    rtcp: SessionKeys,
    roc: u32,
    last_seq: Option<u16>,
    rtcp_index: u32,
}

/// Receiving: index estimation per §3.3.1 and the replay windows.
struct Receiver {
    keys: SessionKeys,
    rtcp: SessionKeys,
    roc: u32,
    /// Highest sequence number authenticated (`s_l`).
    s_l: Option<u16>,
    window: ReplayWindow,
    rtcp_window: ReplayWindow,
}

/// One call's SRTP: our outgoing stream (keyed by our master key) and the peer's (keyed by
/// theirs). Both suites use the same tag length in each direction (the negotiated one).
pub struct SrtpSession {
    suite: Suite,
    tx: Sender,
    rx: Receiver,
}

impl fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSession")
            .field("suite", &self.suite)
            .field("tx_roc", &self.tx.roc)
            .field("rx_roc", &self.rx.roc)
            .finish_non_exhaustive()
    }
}

impl SrtpSession {
    /// `local` keys what we send, `remote` what the peer sends.
    pub fn new(suite: Suite, local: &MasterKey, remote: &MasterKey) -> Result<Self, SrtpError> {
        Ok(SrtpSession {
            suite,
            tx: Sender {
                keys: SessionKeys::derive(local, 0)?,
                rtcp: SessionKeys::derive(local, 3)?,
                roc: 0,
                last_seq: None,
                rtcp_index: 0,
            },
            rx: Receiver {
                keys: SessionKeys::derive(remote, 0)?,
                rtcp: SessionKeys::derive(remote, 3)?,
                roc: 0,
                s_l: None,
                window: ReplayWindow::default(),
                rtcp_window: ReplayWindow::default(),
            },
        })
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Encrypts the RTP packet in `buf[..len]` in place and appends the tag; returns the
    /// new length. `buf` needs [`MAX_TRAILER`] spare bytes.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let hdr = rtp_header_len(&buf[..len])?;
        let tag_len = self.suite.rtp_tag_len();
        if buf.len() < len + tag_len {
            return Err(SrtpError::NoRoom);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let tx = &mut self.tx;
        if let Some(last) = tx.last_seq
            && seq < last
            && last - seq > 0x8000
        {
            tx.roc = tx.roc.wrapping_add(1);
        }
        tx.last_seq = Some(seq);
        let index = (u64::from(tx.roc) << 16) | u64::from(seq);
        tx.keys.crypt(ssrc, index, &mut buf[hdr..len])?;
        let tag = tx.keys.tag(&buf[..len], &tx.roc.to_be_bytes());
        buf[len..len + tag_len].copy_from_slice(&tag.as_ref()[..tag_len]);
        Ok(len + tag_len)
    }

    /// Checks and decrypts the SRTP packet in `buf` in place; returns the plain RTP length.
    /// Nothing about the stream's state changes unless the packet authenticates.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let tag_len = self.suite.rtp_tag_len();
        if buf.len() < 12 + tag_len {
            return Err(SrtpError::TooShort(buf.len()));
        }
        let len = buf.len() - tag_len;
        let hdr = rtp_header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let rx = &mut self.rx;
        // §3.3.1: guess the rollover counter from the highest sequence number seen.
        let v = match rx.s_l {
            None => rx.roc,
            Some(s_l) if s_l < 0x8000 => {
                if seq > s_l && seq - s_l > 0x8000 {
                    rx.roc.wrapping_sub(1)
                } else {
                    rx.roc
                }
            }
            Some(s_l) => {
                if s_l - 0x8000 > seq {
                    rx.roc.wrapping_add(1)
                } else {
                    rx.roc
                }
            }
        };
        let index = (u64::from(v) << 16) | u64::from(seq);
        rx.window.check(index)?;
        let tag = rx.keys.tag(&buf[..len], &v.to_be_bytes());
        if !constant_time_eq(&tag.as_ref()[..tag_len], &buf[len..]) {
            return Err(SrtpError::AuthFailed);
        }
        rx.keys.crypt(ssrc, index, &mut buf[hdr..len])?;
        rx.window.accept(index);
        let advance = rx
            .s_l
            .is_none_or(|s_l| index > ((u64::from(rx.roc) << 16) | u64::from(s_l)));
        if advance {
            rx.roc = v;
            rx.s_l = Some(seq);
        }
        Ok(len)
    }

    /// Protects the compound RTCP packet in `buf[..len]` (SRTCP, always encrypted):
    /// appends E‖index and the 80-bit tag; returns the new length.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        if len < 8 {
            return Err(SrtpError::TooShort(len));
        }
        if buf.len() < len + 14 {
            return Err(SrtpError::NoRoom);
        }
        let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let tx = &mut self.tx;
        let index = tx.rtcp_index & 0x7FFF_FFFF;
        tx.rtcp_index = tx.rtcp_index.wrapping_add(1);
        tx.rtcp.crypt(ssrc, u64::from(index), &mut buf[8..len])?;
        let e_index = (index | 0x8000_0000).to_be_bytes();
        buf[len..len + 4].copy_from_slice(&e_index);
        let tag = tx.rtcp.tag(&buf[..len + 4], &[]);
        buf[len + 4..len + 14].copy_from_slice(&tag.as_ref()[..10]);
        Ok(len + 14)
    }

    /// Checks and decrypts an SRTCP packet in place; returns the plain RTCP length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        if buf.len() < 8 + 14 {
            return Err(SrtpError::TooShort(buf.len()));
        }
        let end = buf.len() - 10;
        let len = end - 4;
        let e_index = u32::from_be_bytes([buf[len], buf[len + 1], buf[len + 2], buf[len + 3]]);
        let index = u64::from(e_index & 0x7FFF_FFFF);
        let rx = &mut self.rx;
        rx.rtcp_window.check(index)?;
        let tag = rx.rtcp.tag(&buf[..end], &[]);
        if !constant_time_eq(&tag.as_ref()[..10], &buf[end..]) {
            return Err(SrtpError::AuthFailed);
        }
        if e_index & 0x8000_0000 != 0 {
            let ssrc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            rx.rtcp.crypt(ssrc, index, &mut buf[8..len])?;
        }
        rx.rtcp_window.accept(index);
        Ok(len)
    }
}

/// The length of the RTP header with CSRCs and extension (what SRTP leaves in clear).
fn rtp_header_len(p: &[u8]) -> Result<usize, SrtpError> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return Err(SrtpError::TooShort(p.len()));
    }
    let mut n = 12 + 4 * usize::from(p[0] & 0x0F);
    if p[0] & 0x10 != 0 {
        if p.len() < n + 4 {
            return Err(SrtpError::TooShort(p.len()));
        }
        let words = usize::from(u16::from_be_bytes([p[n + 2], p[n + 3]]));
        n += 4 + 4 * words;
    }
    if n > p.len() {
        return Err(SrtpError::TooShort(p.len()));
    }
    Ok(n)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn master(key: &str, salt: &str) -> MasterKey {
        MasterKey {
            key: hex(key).try_into().unwrap(),
            salt: hex(salt).try_into().unwrap(),
        }
    }

    /// RFC 3711 Appendix B.3: key derivation test vectors.
    #[test]
    fn rfc3711_b3_key_derivation() {
        let m = master(
            "E1F97A0D3E018BE0D64FA32C06DE4139",
            "0EC675AD498AFEEBB6960B3AABE6",
        );
        let mut ck = [0u8; 16];
        prf(&m, 0, &mut ck).unwrap();
        assert_eq!(ck.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut salt = [0u8; 14];
        prf(&m, 2, &mut salt).unwrap();
        assert_eq!(salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut ak = [0u8; 94];
        prf(&m, 1, &mut ak).unwrap();
        assert_eq!(
            ak.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
    }

    /// RFC 3711 Appendix B.2: AES-CM keystream for SSRC 0, index 0.
    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        let keys = SessionKeys {
            cipher: UnboundCipherKey::new(&AES_128, &hex("2B7E151628AED2A6ABF7158809CF4F3C"))
                .and_then(EncryptingKey::ctr)
                .unwrap(),
            salt: hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD").try_into().unwrap(),
            auth: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &[0; 20]),
        };
        let mut ks = [0u8; 48];
        keys.crypt(0, 0, &mut ks).unwrap();
        assert_eq!(
            ks.to_vec(),
            hex(
                "E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB
                 41E95B3BB0A2E8DD477901E4FCA894C0"
            )
        );
        // The 0xFEFF-th block (RFC 3711 lists it at the end of B.2's keystream).
        let mut tail = vec![0u8; 0xFF00 * 16];
        keys.crypt(0, 0, &mut tail).unwrap();
        assert_eq!(
            tail[0xFEFF * 16..].to_vec(),
            hex("EC8CDF7398607CB0F2D21675EA9EA1E4")
        );
    }

    fn reference_session(suite: Suite) -> SrtpSession {
        let m = master(
            "E1F97A0D3E018BE0D64FA32C06DE4139",
            "0EC675AD498AFEEBB6960B3AABE6",
        );
        SrtpSession::new(suite, &m, &m).unwrap()
    }

    /// libsrtp's reference packet (`srtp_driver`'s AES_CM_128_HMAC_SHA1_80 test): the same
    /// master key as B.3, SSRC 0xcafebabe, sequence 0x1234.
    #[test]
    fn libsrtp_reference_packet() {
        let plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
        let want =
            hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb");
        let mut s = reference_session(Suite::AesCm128HmacSha1_80);
        let mut buf = plain.clone();
        buf.resize(plain.len() + MAX_TRAILER, 0);
        let n = s.protect_rtp(&mut buf, plain.len()).unwrap();
        assert_eq!(buf[..n].to_vec(), want);
        let mut rx = reference_session(Suite::AesCm128HmacSha1_80);
        let mut pkt = want.clone();
        let n = rx.unprotect_rtp(&mut pkt).unwrap();
        assert_eq!(pkt[..n].to_vec(), plain);
    }

    fn rtp(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 160, 1, 2, 3, 4]);
        p.extend(std::iter::repeat_n(0xFFu8, 160));
        p
    }

    fn pair(suite: Suite) -> (SrtpSession, SrtpSession) {
        let a = MasterKey::from_bytes([7u8; 30]);
        let b = MasterKey::from_bytes([9u8; 30]);
        (
            SrtpSession::new(suite, &a, &b).unwrap(),
            SrtpSession::new(suite, &b, &a).unwrap(),
        )
    }

    fn send(s: &mut SrtpSession, seq: u16) -> Vec<u8> {
        let p = rtp(seq);
        let mut buf = p.clone();
        buf.resize(p.len() + MAX_TRAILER, 0);
        let n = s.protect_rtp(&mut buf, p.len()).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn round_trip_both_suites_and_rollover() {
        for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
            let (mut a, mut b) = pair(suite);
            for i in 0..70_000u32 {
                let seq = (0xFF00u32 + i) as u16;
                let mut pkt = send(&mut a, seq);
                assert_eq!(pkt.len(), 172 + suite.rtp_tag_len());
                let n = b.unprotect_rtp(&mut pkt).unwrap();
                assert_eq!(pkt[..n], rtp(seq)[..], "seq {seq} ({suite:?})");
            }
            // 0xFF00 + 70,000 crosses two wraps of the sequence number.
            assert_eq!((a.tx.roc, b.rx.roc), (2, 2));
        }
    }

    #[test]
    fn replays_tampering_and_garbage_are_refused() {
        let (mut a, mut b) = pair(Suite::AesCm128HmacSha1_80);
        let first = send(&mut a, 100);
        let mut p = first.clone();
        b.unprotect_rtp(&mut p).unwrap();
        let mut again = first.clone();
        assert_eq!(b.unprotect_rtp(&mut again), Err(SrtpError::Replayed(100)));
        // Reordering inside the window is fine; below it is refused.
        let late = send(&mut a, 90);
        for s in 101..200 {
            let mut p = send(&mut a, s);
            b.unprotect_rtp(&mut p).unwrap();
        }
        let mut l = late.clone();
        assert_eq!(b.unprotect_rtp(&mut l), Err(SrtpError::TooOld(90)));
        let mut t = send(&mut a, 200);
        t[20] ^= 1;
        assert_eq!(b.unprotect_rtp(&mut t), Err(SrtpError::AuthFailed));
        // A forged packet leaves the state alone: the genuine one still passes.
        let mut g = send(&mut a, 201);
        let mut forged = g.clone();
        let n = forged.len();
        forged[n - 1] ^= 0xFF;
        assert_eq!(b.unprotect_rtp(&mut forged), Err(SrtpError::AuthFailed));
        b.unprotect_rtp(&mut g).unwrap();
        for junk in [&[][..], &[0x80; 5][..], &[0x00; 40][..], &[0x9F; 30][..]] {
            let mut j = junk.to_vec();
            assert!(b.unprotect_rtp(&mut j).is_err());
            assert!(b.unprotect_rtcp(&mut j).is_err());
        }
    }

    #[test]
    fn rtcp_round_trip_and_replay() {
        let (mut a, mut b) = pair(Suite::AesCm128HmacSha1_32);
        let sr: Vec<u8> = {
            let mut v = vec![0x80, 200, 0, 6, 1, 2, 3, 4];
            v.extend_from_slice(&[0x11; 20]);
            v
        };
        let mut buf = sr.clone();
        buf.resize(sr.len() + MAX_TRAILER, 0);
        let n = a.protect_rtcp(&mut buf, sr.len()).unwrap();
        assert_eq!(n, sr.len() + 14);
        assert_ne!(buf[8..sr.len()], sr[8..]);
        let mut p = buf[..n].to_vec();
        let m = b.unprotect_rtcp(&mut p).unwrap();
        assert_eq!(p[..m], sr[..]);
        let mut again = buf[..n].to_vec();
        assert_eq!(b.unprotect_rtcp(&mut again), Err(SrtpError::Replayed(0)));
    }

    #[test]
    fn crypto_attribute_parse_and_write() {
        let v = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let a = CryptoAttr::parse(v).unwrap();
        assert_eq!(a.tag, 1);
        assert_eq!(a.suite, Suite::AesCm128HmacSha1_80);
        let back = CryptoAttr::parse(&a.to_value()).unwrap();
        assert_eq!(back, a);
        assert_eq!(format!("{:?}", a.key), "MasterKey(..)");
        for bad in [
            "",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 F8_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 uri:http://x",
            "1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:4",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR KDR=1",
            "1234567890 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        ] {
            assert!(CryptoAttr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
