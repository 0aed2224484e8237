//! Configuration files: YAML → a validated configuration or an error with its position.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = ivrflow::config::Config::from_yaml("fuzz.yaml", text) {
        let _ = c.validate("fuzz.yaml");
    }
});
