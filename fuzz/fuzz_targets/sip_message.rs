//! SIP messages: the parser, the RFC 3261 checks, and the lazy header views a request is
//! read through (URI, name-addr, Via, CSeq). Must never panic; errors are values.
#![no_main]
use ivrflow::sip::message::{Message, parse, parse_cseq, parse_name_addr, parse_uri, parse_via};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = parse(data) else { return };
    let headers = match &msg {
        Message::Request(r) => {
            let _ = parse_uri(&r.uri);
            &r.headers
        }
        Message::Response(r) => &r.headers,
    };
    for name in ["From", "To", "Contact", "P-Asserted-Identity", "Refer-To"] {
        if let Some(v) = headers.get(name) {
            let _ = parse_name_addr(v).map(|n| parse_uri(&n.uri));
        }
    }
    if let Some(v) = headers.get("Via") {
        let _ = parse_via(v);
    }
    if let Some(v) = headers.get("CSeq") {
        let _ = parse_cseq(v);
    }
    if let Message::Request(r) = &msg {
        let _ = ivrflow::engine::asserted_identity(r);
        let _ = ivrflow::engine::dtmf_from_info(r);
    }
});
