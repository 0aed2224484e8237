//! `POST /v1/calls` bodies: JSON → a validated call request or a 4xx naming the field.
#![no_main]
use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scenarios = BTreeSet::from(["order-confirmation".to_owned()]);
    let campaigns = BTreeSet::from(["cart".to_owned()]);
    if let Err(e) = ivrflow::api::parse_call_request(data, Some("key"), &scenarios, &campaigns) {
        assert!(e.status.is_client_error(), "{e:?}");
    }
});
