//! Audio files as operators upload them (prompts, test recordings): WAV headers and chunks,
//! and the formats symphonia reads. Decoding must fail with an error, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("ivrflow-fuzz-{}.wav", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = ivrflow::media::prompts::load_file(&path);
    }
});
