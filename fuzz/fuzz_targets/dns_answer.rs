//! Answers from a DNS server to an RFC 3263 lookup (NAPTR, SRV, A/AAAA): used, ignored or
//! taken as empty — never a panic; a finished lookup has targets or an error.
#![no_main]
use ivrflow::sip::dns::Lookup;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Query ids start at the first two bytes of the packet, so answers can match them.
    let id = data
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .unwrap_or(0);
    let mut l = Lookup::new("trunk.test", None, None, id);
    while l.poll_query().is_some() {}
    for piece in data.split(|b| *b == 0xA5) {
        l.handle_response(piece);
        while l.poll_query().is_some() {}
    }
    l.handle_response(data);
    let open: Vec<u16> = l.outstanding().collect();
    for q in open {
        l.handle_failed(q);
        while l.poll_query().is_some() {}
    }
    if let Some(Ok(r)) = l.result() {
        assert!(!r.targets.is_empty());
    }
});
