//! RTP from the network: the header view (CSRCs, extension, padding) and the RFC 4733
//! telephone-event receiver fed a stream of arbitrary packets.
#![no_main]
use std::time::{Duration, Instant};

use ivrflow::media::dtmf::DtmfReceiver;
use ivrflow::media::rtp::parse_rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut rx = DtmfReceiver::new(101);
    // The input as a sequence of packets: each prefixed by a one-byte length.
    let mut rest = data;
    let mut n = 0u64;
    while let Some((&len, tail)) = rest.split_first() {
        let len = (len as usize).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        if let Some(view) = parse_rtp(packet) {
            assert!(view.payload.start <= view.payload.end && view.payload.end <= packet.len());
        }
        let _ = rx.handle_rtp(t0 + Duration::from_millis(20 * n), packet);
        n += 1;
        rest = tail;
    }
});
