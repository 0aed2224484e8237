//! Classification of collected DTMF keys: against an `ask`'s intents, or as a digit string.
//!
//! Intents (VoiceXML-like, without grammars): the buffer matches at once when it equals an
//! intent key and no longer key starts with it; it waits for the inter-digit timeout while a
//! longer key could still match; it is a no-match as soon as no key starts with it.
//!
//! Digit strings (VoiceXML 2.0 Appendix D with `termchar`): below `min` keys the input is
//! incomplete (inter-digit timeout, then no-match); from `min` to below `max` it is
//! complete but could go on (inter-digit timeout, then match); at `max` it is complete and
//! cannot go on (match at once, or after `term_timeout` when a terminator is configured and
//! the timeout is not zero). The terminator ends the string: a match if it is complete, a
//! no-match otherwise. A key that is not a digit inside a digit string is a no-match.

use crate::scenario::{DigitString, Intent, MAX_KEYS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyMatch {
    /// Index into the intents.
    Match(usize),
    /// A longer key starts with the buffer; wait for more keys.
    Partial,
    NoMatch,
}

/// The intent whose key equals `keys` exactly.
pub(crate) fn exact(keys: &str, intents: &[Intent]) -> Option<usize> {
    intents
        .iter()
        .position(|intent| intent.dtmf.iter().any(|k| k == keys))
}

pub(crate) fn classify(keys: &str, intents: &[Intent]) -> KeyMatch {
    if keys.is_empty() || keys.len() > MAX_KEYS {
        return KeyMatch::NoMatch;
    }
    let longer = intents
        .iter()
        .flat_map(|i| i.dtmf.iter())
        .any(|k| k.len() > keys.len() && k.starts_with(keys));
    match (exact(keys, intents), longer) {
        (_, true) => KeyMatch::Partial,
        (Some(i), false) => KeyMatch::Match(i),
        (None, false) => KeyMatch::NoMatch,
    }
}

/// Where a digit string stands after a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DigitsState {
    /// The terminator ended a complete string (the value excludes it).
    Terminated,
    /// Complete and at `max`: accept (now, or after `term_timeout`).
    Full,
    /// Complete, more keys possible: accept when the inter-digit timeout expires.
    Complete,
    /// Too short yet: no-match when the inter-digit timeout expires.
    Incomplete,
    NoMatch,
}

pub(crate) fn digits_state(keys: &str, spec: &DigitString) -> DigitsState {
    let (body, terminated) = match (spec.terminator, keys.chars().last()) {
        (Some(t), Some(last)) if t == last => (&keys[..keys.len() - last.len_utf8()], true),
        _ => (keys, false),
    };
    let n = body.chars().count();
    if !body.chars().all(|c| c.is_ascii_digit()) || n > spec.max {
        return DigitsState::NoMatch;
    }
    match (terminated, n >= spec.min, n == spec.max) {
        (true, true, _) => DigitsState::Terminated,
        (true, false, _) => DigitsState::NoMatch,
        (false, true, true) => DigitsState::Full,
        (false, true, false) => DigitsState::Complete,
        (false, false, _) => DigitsState::Incomplete,
    }
}

/// The digits of a digit string without its terminator.
pub(crate) fn digits_value(keys: &str, spec: &DigitString) -> String {
    keys.chars()
        .filter(|c| Some(*c) != spec.terminator)
        .collect()
}

/// Normalises a key from the engine: 0-9, *, #, A-D (a-d accepted); anything else is None.
pub(crate) fn normalize_key(key: char) -> Option<char> {
    let key = key.to_ascii_uppercase();
    matches!(key, '0'..='9' | '*' | '#' | 'A'..='D').then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{IntentAction, Jump, NodeId, SourcePos};

    fn intents(keys: &[&[&str]]) -> Vec<Intent> {
        keys.iter()
            .enumerate()
            .map(|(i, ks)| Intent {
                name: format!("i{i}"),
                dtmf: ks.iter().map(|k| k.to_string()).collect(),
                phrases: Default::default(),
                say: Vec::new(),
                action: IntentAction::Goto(Jump::local(NodeId(0), "next")),
                global: false,
                pos: SourcePos::default(),
            })
            .collect()
    }

    #[test]
    fn classifies_prefixes() {
        let set = intents(&[&["1"], &["2", "21"], &["*0"]]);
        assert_eq!(classify("1", &set), KeyMatch::Match(0));
        assert_eq!(classify("2", &set), KeyMatch::Partial);
        assert_eq!(exact("2", &set), Some(1));
        assert_eq!(classify("21", &set), KeyMatch::Match(1));
        assert_eq!(classify("*", &set), KeyMatch::Partial);
        assert_eq!(exact("*", &set), None);
        assert_eq!(classify("*0", &set), KeyMatch::Match(2));
        assert_eq!(classify("9", &set), KeyMatch::NoMatch);
        assert_eq!(classify("11", &set), KeyMatch::NoMatch);
        assert_eq!(classify("", &set), KeyMatch::NoMatch);
    }

    #[test]
    fn digit_strings_follow_appendix_d() {
        let spec = DigitString {
            min: 3,
            max: 5,
            terminator: Some('#'),
            jump: Jump::local(NodeId(0), "digits"),
        };
        use DigitsState::*;
        for (keys, want) in [
            ("1", Incomplete),
            ("12", Incomplete),
            ("123", Complete),
            ("1234", Complete),
            ("12345", Full),
            ("123456", NoMatch),
            ("12#", NoMatch),
            ("123#", Terminated),
            ("#", NoMatch),
            ("1*", NoMatch),
        ] {
            assert_eq!(digits_state(keys, &spec), want, "{keys}");
        }
        assert_eq!(digits_value("1234#", &spec), "1234");
        let open = DigitString {
            terminator: None,
            ..spec
        };
        assert_eq!(digits_state("123#", &open), NoMatch);
    }

    #[test]
    fn normalizes_keys() {
        assert_eq!(normalize_key('a'), Some('A'));
        assert_eq!(normalize_key('#'), Some('#'));
        assert_eq!(normalize_key('x'), None);
        assert_eq!(normalize_key('E'), None);
    }
}
