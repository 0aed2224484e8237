//! The scenario file as written: serde structs that mirror the YAML one to one.
//!
//! Everything a later error might need to point at is wrapped in [`Spanned`]. Unknown keys
//! are rejected by `deny_unknown_fields`. The hand-written deserializers are for shapes
//! serde cannot derive without losing locations or that take several forms: ordered
//! mappings (node names keep file order and their key positions), prompt items (a bare
//! string or a mapping), `set` values (a scalar or `{ expr }`), `globals` (a bool or a
//! list) and [`Scalar`] (any scalar read as text).
//! No semantic checks here; see `compile/`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML mapping kept in file order, keys with their positions. Duplicate keys are
/// rejected by the YAML parser before they get here.
#[derive(Debug)]
pub(crate) struct OrderedMap<K, V>(pub Vec<(K, V)>);

impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for MapVisitor<K, V> {
            type Value = OrderedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(OrderedMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

pub(crate) type Named<T> = OrderedMap<Spanned<String>, Spanned<T>>;
pub(crate) type PromptList = Spanned<Vec<Spanned<RawPromptItem>>>;

/// Any YAML scalar read as text: `1500`, `true`, `"x"` all work where a value is expected
/// (defaults, `set` literals, `with` arguments, say-as values).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text, number or boolean value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub version: Spanned<u32>,
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    pub languages: Option<Spanned<Vec<Spanned<String>>>>,
    pub variables: Option<Named<RawVariable>>,
    pub global: Option<Spanned<RawGlobal>>,
    pub amd: Option<Spanned<RawAmd>>,
    pub allow: Option<Spanned<RawAllow>>,
    /// The scenario's own CRM events (`notify`), beyond the ones the integration documents.
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    pub acknowledge: Option<Spanned<RawAcknowledge>>,
    pub subdialogs: Option<Named<RawSubdialog>>,
    pub start: Spanned<String>,
    pub nodes: Spanned<Named<RawNode>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawVarType {
    String,
    Digits,
    Integer,
    Number,
    Money,
    Date,
    Time,
    Boolean,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariable {
    #[serde(rename = "type")]
    pub ty: Option<RawVarType>,
    pub default: Option<Spanned<Scalar>>,
    pub description: Option<String>,
    /// `sip_header X-Order-Id`: the caller's INVITE may set it (nothing else may).
    pub from: Option<Spanned<String>>,
    /// Longest value accepted from outside the file (a SIP header).
    pub max_length: Option<Spanned<usize>>,
}

/// `acknowledge:` — known shortcomings the linter should not warn about.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcknowledge {
    /// `lang/name` patterns (`*` any run) of synthetic placeholder prompts the scenario
    /// knowingly plays until they are recorded.
    pub synthetic_prompts: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `allow:` — where the scenario may send a call, beyond the targets written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllow {
    pub transfer: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `global:` — intents and no-input/no-match handling that apply in every `ask`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGlobal {
    pub intents: Option<Spanned<Named<RawIntent>>>,
    pub noinput: Option<Spanned<RawEscalation>>,
    pub nomatch: Option<Spanned<RawEscalation>>,
    pub on: Option<Spanned<Named<String>>>,
}

/// `amd:` — answering-machine detection when the call is answered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAmd {
    /// A node of the main dialogue, or the word `hangup`.
    pub on_machine: Spanned<String>,
    pub max_wait: Option<Spanned<String>>,
    pub greeting: Option<Spanned<String>>,
    pub silence: Option<Spanned<String>>,
    pub max_greeting: Option<Spanned<String>>,
}

/// `subdialogs.<name>:` — a reusable dialogue with parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubdialog {
    pub description: Option<String>,
    pub params: Option<Named<RawVariable>>,
    pub start: Spanned<String>,
    pub nodes: Spanned<Named<RawNode>>,
}

/// A node: exactly one action key plus the keys that modify it. Which combinations are
/// legal is checked in `compile/`, so the author gets "a node has exactly one action"
/// rather than a serde enum error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub play: Option<PromptList>,
    pub ask: Option<Spanned<RawAsk>>,
    pub set: Option<Spanned<Named<RawSetValue>>>,
    pub goto: Option<Spanned<String>>,
    pub hangup: Option<Spanned<RawHangup>>,
    pub branch: Option<Spanned<Vec<Spanned<RawArm>>>>,
    pub switch: Option<Spanned<RawSwitch>>,
    pub record: Option<Spanned<RawRecord>>,
    pub webhook: Option<Spanned<RawWebhook>>,
    pub transfer: Option<Spanned<RawTransfer>>,
    pub sms: Option<Spanned<RawSms>>,
    pub notify: Option<Spanned<RawNotify>>,
    pub call: Option<Spanned<String>>,
    #[serde(rename = "return")]
    pub ret: Option<Spanned<String>>,
    pub with: Option<Spanned<Named<Scalar>>>,
    #[serde(rename = "else")]
    pub otherwise: Option<Spanned<String>>,
    pub next: Option<Spanned<String>>,
    pub on: Option<Spanned<Named<String>>>,
    pub outcome: Option<Spanned<String>>,
}

/// A `set` value: a template string (any scalar) or `{ expr: "…" }`.
#[derive(Debug)]
pub(crate) enum RawSetValue {
    Text(String),
    Expr(RawExpr),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpr {
    pub expr: Spanned<String>,
}

impl<'de> Deserialize<'de> for RawSetValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SetVisitor;
        impl<'de> Visitor<'de> for SetVisitor {
            type Value = RawSetValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or `{ expr: \"…\" }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawSetValue::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(RawSetValue::Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawSetValue::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawSetValue::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawSetValue::Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawSetValue::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawExpr::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSetValue::Expr)
            }
        }
        deserializer.deserialize_any(SetVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArm {
    #[serde(rename = "if")]
    pub cond: Spanned<String>,
    pub goto: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSwitch {
    pub value: Spanned<String>,
    pub cases: Spanned<OrderedMap<Spanned<Scalar>, Spanned<String>>>,
    pub default: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRecord {
    pub prompt: Option<PromptList>,
    pub max_length: Option<Spanned<String>>,
    pub final_silence: Option<Spanned<String>>,
    pub transcribe: Option<bool>,
    pub store: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub name: Option<Spanned<String>>,
    pub url: Option<Spanned<String>>,
    pub method: Option<Spanned<String>>,
    pub body: Option<Spanned<serde_json::Value>>,
    pub timeout: Option<Spanned<String>>,
    pub store: Option<Spanned<Named<String>>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawTransferMode {
    Blind,
    Bridged,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransfer {
    pub target: Spanned<String>,
    pub mode: Option<RawTransferMode>,
    pub announcement: Option<PromptList>,
    pub timeout: Option<Spanned<String>>,
    pub outcome: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSms {
    pub template: Spanned<String>,
    pub to: Option<Spanned<String>>,
    pub data: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    pub event: Spanned<String>,
    pub data: Option<Spanned<serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawInputMode {
    Dtmf,
    Speech,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAsk {
    pub prompt: PromptList,
    pub input: Option<Spanned<Vec<Spanned<RawInputMode>>>>,
    pub timeout: Option<Spanned<String>>,
    pub interdigit_timeout: Option<Spanned<String>>,
    pub term_timeout: Option<Spanned<String>>,
    pub complete_timeout: Option<Spanned<String>>,
    pub incomplete_timeout: Option<Spanned<String>>,
    pub max_speech_timeout: Option<Spanned<String>>,
    pub barge_in: Option<bool>,
    pub intents: Option<Spanned<Named<RawIntent>>>,
    pub digits: Option<Spanned<RawDigits>>,
    pub confidence: Option<Spanned<f64>>,
    pub confirm: Option<Spanned<RawConfirm>>,
    pub globals: Option<Spanned<RawGlobals>>,
    pub store: Option<Spanned<String>>,
    pub noinput: Option<Spanned<RawEscalation>>,
    pub nomatch: Option<Spanned<RawEscalation>>,
    /// `spoken_keys: false`: saying a key's digit does not select its intent.
    pub spoken_keys: Option<Spanned<bool>>,
    /// `typeahead: false`: keys typed before the question are discarded.
    pub typeahead: Option<Spanned<bool>>,
    /// `answer: day_of_month | date`: a typed value instead of intents.
    pub answer: Option<Spanned<String>>,
}

/// `globals: false` (none), `true` (all, the default) or a list of the global intents that
/// apply.
#[derive(Debug)]
pub(crate) enum RawGlobals {
    All(bool),
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for RawGlobals {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GlobalsVisitor;
        impl<'de> Visitor<'de> for GlobalsVisitor {
            type Value = RawGlobals;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true`, `false` or a list of global intent names")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RawGlobals::All(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(RawGlobals::Only(names))
            }
        }
        deserializer.deserialize_any(GlobalsVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIntent {
    pub dtmf: Option<Spanned<Vec<Spanned<String>>>>,
    pub phrases: Option<Spanned<Named<Vec<String>>>>,
    pub say: Option<PromptList>,
    pub repeat: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDigits {
    pub min: Option<Spanned<u32>>,
    pub max: Option<Spanned<u32>>,
    pub terminator: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfirm {
    pub min: Option<Spanned<f64>>,
    pub prompt: PromptList,
    pub question: Option<PromptList>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEscalation {
    pub max: Option<u32>,
    pub reprompt: Option<Vec<PromptList>>,
    pub question: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHangup {
    pub outcome: Option<Spanned<String>>,
    pub play: Option<PromptList>,
}

/// A prompt item: `hello` or `{ prompt: hello, barge_in: false }` or `{ digits: "${x}" }`.
#[derive(Debug)]
pub(crate) enum RawPromptItem {
    Name(String),
    Map(Box<RawPromptMap>),
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawGender {
    Masculine,
    Feminine,
    Neuter,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlural {
    pub one: Option<Spanned<String>>,
    pub few: Option<Spanned<String>>,
    pub many: Option<Spanned<String>>,
    pub other: Option<Spanned<String>>,
}

/// The mapping form. Exactly one of the kind keys (`prompt`, `digits`, `number`, `money`,
/// `date`, `time`) must be present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPromptMap {
    pub prompt: Option<Spanned<String>>,
    pub digits: Option<Spanned<Scalar>>,
    pub number: Option<Spanned<Scalar>>,
    pub money: Option<Spanned<Scalar>>,
    pub date: Option<Spanned<Scalar>>,
    pub time: Option<Spanned<Scalar>>,
    pub ordinal: Option<Spanned<Scalar>>,
    pub currency: Option<Spanned<String>>,
    pub gender: Option<Spanned<RawGender>>,
    pub plural: Option<Spanned<RawPlural>>,
    pub year: Option<bool>,
    pub weekday: Option<bool>,
    pub barge_in: Option<bool>,
    pub when: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawPromptItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = RawPromptItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a prompt name or a mapping such as `{ digits: \"${order_id}\" }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawPromptItem::Name(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(RawPromptItem::Name(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawPromptItem::Name(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawPromptItem::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawPromptMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|m| RawPromptItem::Map(Box::new(m)))
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}
