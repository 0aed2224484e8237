//! What a dialogue produces for the call record: the outcome, the answers by node, the
//! variables, the path, and who hung up.
//!
//! Deliberately not here: the CRM payload (the engine builds it from [`DialogueResult`]).

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupBy {
    Caller,
    Robot,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DialogueResult {
    pub outcome: Option<String>,
    /// Answers by node name (`ask` and `record` nodes; inside a sub-dialogue qualified by
    /// the call: `quality/ask`); a node asked twice keeps its last answer. A question left
    /// by `on.noinput` / `on.nomatch` has an answer too, without a value, with its reason.
    pub answers: BTreeMap<String, Answer>,
    /// Declared defaults, overridden by the call's variables and by `set`.
    pub variables: BTreeMap<String, String>,
    /// Node names in visit order (reprompts are not visits), qualified like answers.
    pub path: Vec<String>,
    pub hangup_by: Option<HangupBy>,
}

/// One answer. In JSON: `input`, `value`, `intent`, and `confidence`, `file`, `reason` when
/// they apply; the `value` of a question that got no answer is `null`.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// `"dtmf"`, `"speech"` or `"recording"`; for a question that got no answer, what it
    /// listened for: `"dtmf"`, `"speech"` or `"dtmf+speech"`.
    pub input: String,
    /// The keys as pressed (`"1"`), the transcript, or a recording's transcript; empty
    /// (`null` in JSON) for a question that got no answer.
    pub value: String,
    /// Why a question got no answer: `"noinput"` or `"nomatch"` (absent when it did).
    pub reason: Option<String>,
    pub intent: Option<String>,
    /// For speech: min(recogniser confidence, intent match score).
    pub confidence: Option<f32>,
    /// For recordings: where the audio was stored.
    pub file: Option<String>,
}

impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("input", &self.input)?;
        // No answer has no value, not an empty one.
        let value = self.reason.is_none().then_some(&self.value);
        map.serialize_entry("value", &value)?;
        map.serialize_entry("intent", &self.intent)?;
        if let Some(c) = self.confidence {
            map.serialize_entry("confidence", &c)?;
        }
        if let Some(f) = &self.file {
            map.serialize_entry("file", f)?;
        }
        if let Some(r) = &self.reason {
            map.serialize_entry("reason", r)?;
        }
        map.end()
    }
}
