//! SRTP and SDES from outside: `a=crypto` values, SDP offers under an SRTP policy, and
//! packets on an SRTP call's port (forged, replayed, cut short) — refused or accepted,
//! never a panic; what authenticates decrypts to a packet no longer than what came.
#![no_main]
use ivrflow::media::srtp::{CryptoAttr, MasterKey, SrtpSession, Suite};
use ivrflow::sip::sdp::{SrtpPolicy, negotiate_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = CryptoAttr::parse(s);
    }
    let _ = negotiate_with(data, SrtpPolicy::Optional);
    let key = MasterKey::from_bytes([7; 30]);
    for suite in [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32] {
        let mut s = SrtpSession::new(suite, &key, &key).unwrap();
        let mut p = data.to_vec();
        if let Ok(n) = s.unprotect_rtp(&mut p) {
            assert!(n <= data.len());
        }
        let mut p = data.to_vec();
        if let Ok(n) = s.unprotect_rtcp(&mut p) {
            assert!(n <= data.len());
        }
        // Our own packets of any content round-trip.
        let mut out = data.to_vec();
        let len = out.len();
        out.resize(len + ivrflow::media::srtp::MAX_TRAILER, 0);
        if let Ok(n) = s.protect_rtp(&mut out, len) {
            out.truncate(n);
            let mut rx = SrtpSession::new(suite, &key, &key).unwrap();
            assert_eq!(rx.unprotect_rtp(&mut out), Ok(len));
            assert_eq!(&out[..len], data);
        }
    }
});
