//! The scenario file as written: serde structs that mirror the YAML one to one.
//!
//! Everything a later error might need to point at is wrapped in [`Spanned`]. Unknown keys
//! are rejected by `deny_unknown_fields`. The only hand-written deserializers are for
//! shapes serde cannot derive without losing locations: ordered mappings (node names keep
//! file order and their key positions) and prompt items (a bare string or a mapping).
//! No semantic checks here; see `compile.rs`.

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub version: Spanned<u32>,
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    pub languages: Option<Spanned<Vec<Spanned<String>>>>,
    pub variables: Option<Named<RawVariable>>,
    pub start: Spanned<String>,
    pub nodes: Spanned<Named<RawNode>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RawVarType {
    String,
    Digits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVariable {
    #[serde(rename = "type")]
    pub ty: Option<RawVarType>,
    pub default: Option<Spanned<String>>,
    pub description: Option<String>,
}

/// A node: exactly one action key (`play`, `ask`, `set`, `goto`, `hangup`) plus the keys
/// that modify it. Which combinations are legal is checked in `compile.rs`, so the author
/// gets "a node has exactly one action" rather than a serde enum error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNode {
    pub play: Option<PromptList>,
    pub ask: Option<Spanned<RawAsk>>,
    pub set: Option<Spanned<Named<String>>>,
    pub goto: Option<Spanned<String>>,
    pub hangup: Option<Spanned<RawHangup>>,
    pub next: Option<Spanned<String>>,
    pub on: Option<Spanned<Named<String>>>,
    pub outcome: Option<Spanned<String>>,
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
    pub barge_in: Option<bool>,
    pub intents: Spanned<Named<RawIntent>>,
    pub noinput: Option<Spanned<RawEscalation>>,
    pub nomatch: Option<Spanned<RawEscalation>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIntent {
    pub dtmf: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEscalation {
    pub max: Option<u32>,
    pub reprompt: Option<Vec<PromptList>>,
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
    Map(RawPromptMap),
}

/// The mapping form. Exactly one of the kind keys (`prompt`, `digits`) must be present;
/// say-as kinds (`number`, `money`, `date`, `time`) are added here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPromptMap {
    pub prompt: Option<Spanned<String>>,
    pub digits: Option<Spanned<String>>,
    pub barge_in: Option<bool>,
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
                    .map(RawPromptItem::Map)
            }
        }
        deserializer.deserialize_any(ItemVisitor)
    }
}
