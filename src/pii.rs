//! Personal data in logs: phone numbers, names, SIP From/To URIs and transcripts.
//!
//! Wrap such values in [`Pii`] before they reach a `tracing` macro. By default they print as
//! `<redacted>`; an operator who needs them (a debugging session on a test trunk) turns them
//! on for the whole process with [`set_reveal`] (`--log-pii` / `log.pii: true`).
//! This module does not scrub free text: anything personal must be wrapped at the source.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static REVEAL: AtomicBool = AtomicBool::new(false);

/// Show personal data in logs from now on (process-wide).
pub fn set_reveal(reveal: bool) {
    REVEAL.store(reveal, Ordering::Relaxed);
}

/// Whether personal data is currently shown in logs.
pub fn revealed() -> bool {
    REVEAL.load(Ordering::Relaxed)
}

/// A value that is personal data: `Display`/`Debug` redact it unless revealing is on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pii<T>(pub T);

impl<T: fmt::Display> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if revealed() {
            self.0.fmt(f)
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if revealed() {
            self.0.fmt(f)
        } else {
            f.write_str("<redacted>")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_by_default_and_revealed_on_request() {
        // One test touches the global switch, so both states are checked here in order.
        let n = Pii("+441234567890");
        assert_eq!(format!("{n} {n:?}"), "<redacted> <redacted>");
        set_reveal(true);
        assert_eq!(format!("{n}"), "+441234567890");
        set_reveal(false);
        assert_eq!(format!("{n}"), "<redacted>");
    }
}
