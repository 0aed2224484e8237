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
    /// the call: `quality/ask`); a node asked twice keeps its last answer.
    pub answers: BTreeMap<String, Answer>,
    /// Declared defaults, overridden by the call's variables and by `set`.
    pub variables: BTreeMap<String, String>,
    /// Node names in visit order (reprompts are not visits), qualified like answers.
    pub path: Vec<String>,
    pub hangup_by: Option<HangupBy>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// `"dtmf"`, `"speech"` or `"recording"`.
    pub input: String,
    /// The keys as pressed (`"1"`), the transcript, or a recording's transcript.
    pub value: String,
    pub intent: Option<String>,
    /// For speech: min(recogniser confidence, intent match score).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
    /// For recordings: where the audio was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}
