//! Understanding what a caller said: transcript text → intent.
//!
//! Pure functions, no I/O. The dialogue calls [`classify`] with the transcript, the
//! language and the node's intents (name → phrases); speech recognition lives in `asr`.
//! This first version normalises case, punctuation and «ё» and matches whole phrases; the
//! speech milestone grows it (numbers in words, negation, near-miss transcripts).

/// The best intent for a transcript, with a score in [0, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct IntentMatch {
    pub intent: String,
    pub score: f32,
}

/// Lower-case, «ё» → «е», punctuation to spaces, whitespace collapsed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'ё' => 'е',
            c if c.is_alphanumeric() || c == '\'' => c,
            _ => ' ',
        };
        out.push(c);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Pick the intent whose phrase appears (as whole words) in the transcript; the longest
/// matching phrase wins. `intents` are (name, phrases) for the call's language.
pub fn classify(text: &str, _lang: &str, intents: &[(String, Vec<String>)]) -> Option<IntentMatch> {
    let said = format!(" {} ", normalize(text));
    let mut best: Option<(usize, &str)> = None;
    for (name, phrases) in intents {
        for p in phrases {
            let p = normalize(p);
            if p.is_empty() {
                continue;
            }
            if said.contains(&format!(" {p} ")) && best.is_none_or(|(len, _)| p.len() > len) {
                best = Some((p.len(), name));
            }
        }
    }
    best.map(|(_, name)| IntentMatch {
        intent: name.to_owned(),
        score: 1.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_punctuation_and_yo() {
        assert_eq!(normalize("  Да, ВСЁ верно! "), "да все верно");
    }

    #[test]
    fn whole_phrase_match_longest_wins() {
        let intents = vec![
            ("yes".to_owned(), vec!["yes".to_owned()]),
            ("no".to_owned(), vec!["no".to_owned(), "not yes".to_owned()]),
        ];
        assert_eq!(classify("Yes.", "en", &intents).unwrap().intent, "yes");
        assert_eq!(
            classify("well, not yes", "en", &intents).unwrap().intent,
            "no"
        );
        assert_eq!(classify("yesterday", "en", &intents), None);
    }
}
