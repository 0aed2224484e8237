//! Scenario files: YAML → validated graph, with `file:line:col` errors. Whatever loads is
//! linted too (the linter walks the whole graph).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(s) = ivrflow::scenario::load_str("fuzz.yaml", text) {
        let _ = ivrflow::scenario::lint::lint(&s, None);
    }
});
