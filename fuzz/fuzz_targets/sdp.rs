//! SDP offers as callers send them: negotiation must give an answer or an error, never a
//! panic, and whatever it accepts must produce a well-formed answer.
#![no_main]
use ivrflow::sip::sdp::{LocalMedia, Origin, answer, negotiate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(neg) = negotiate(data) {
        let local = LocalMedia {
            addr: "127.0.0.1:20000".parse().unwrap(),
            origin: Origin {
                session_id: 1,
                version: 1,
            },
        };
        let text = answer(&neg, &local);
        assert!(text.starts_with("v=0\r\n"));
    }
});
