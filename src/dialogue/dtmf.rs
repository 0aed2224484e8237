//! Classification of collected DTMF keys against an `ask`'s intents.
//!
//! The rule (VoiceXML-like, without grammars): the buffer matches at once when it equals an
//! intent key and no longer key starts with it; it waits for the inter-digit timeout while a
//! longer key could still match; it is a no-match as soon as no key starts with it.

use crate::scenario::Intent;

/// Longest key buffer kept; a longer one is a no-match whatever the intents say.
pub(crate) const MAX_KEYS: usize = 64;

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

/// Normalises a key from the engine: 0-9, *, #, A-D (a-d accepted); anything else is None.
pub(crate) fn normalize_key(key: char) -> Option<char> {
    let key = key.to_ascii_uppercase();
    matches!(key, '0'..='9' | '*' | '#' | 'A'..='D').then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::NodeId;

    fn intents(keys: &[&[&str]]) -> Vec<Intent> {
        keys.iter()
            .enumerate()
            .map(|(i, ks)| Intent {
                name: format!("i{i}"),
                dtmf: ks.iter().map(|k| k.to_string()).collect(),
                target: NodeId(0),
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
    fn normalizes_keys() {
        assert_eq!(normalize_key('a'), Some('A'));
        assert_eq!(normalize_key('#'), Some('#'));
        assert_eq!(normalize_key('x'), None);
        assert_eq!(normalize_key('E'), None);
    }
}
