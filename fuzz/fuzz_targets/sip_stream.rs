//! Bytes off a SIP TCP/TLS connection, in arbitrary pieces: the framer yields messages,
//! pings or an error that closes the stream — never a panic, never more held than the
//! limits allow.
#![no_main]
use ivrflow::sip::transport::framing::{Framer, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_header: 2048,
        max_body: 2048,
    };
    let mut f = Framer::new(limits);
    // The first byte picks the size of the pieces the rest arrives in.
    let (chunk, rest) = match data.split_first() {
        Some((c, r)) => (usize::from(*c).max(1), r),
        None => return,
    };
    for piece in rest.chunks(chunk) {
        f.push(piece);
        loop {
            match f.poll() {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(f.buffered() <= 2048 + 2048 + chunk);
    }
});
