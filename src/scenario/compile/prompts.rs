//! Prompt lists: recordings by name, and the say-as items (`digits`, `number` with its
//! gender and plural nouns, `money`, `date`, `time`), each with its optional `when:` and
//! `barge_in:`. Literal names and values are checked here; templated ones at run time.
//!
//! Deliberately not here: whether the recordings exist (that is the linter, per language),
//! or how values are spoken (`crate::sayas`).

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{PromptList, RawGender, RawPromptItem, RawPromptMap, Scalar};
use crate::scenario::{
    Gender, PluralNames, PromptItem, PromptKind, SourcePos, Template, VarType, validate_prompt_name,
};

impl<'a> Compiler<'a> {
    pub(super) fn prompts(&mut self, list: &PromptList) -> Vec<PromptItem> {
        let mut out = Vec::with_capacity(list.value.len());
        for item in &list.value {
            let at = pos(item);
            let (kind, barge_in, when) = match &item.value {
                RawPromptItem::Name(name) => {
                    let spanned = Spanned::new(name.clone(), item.referenced, item.defined);
                    (self.recording(&spanned), None, None)
                }
                RawPromptItem::Map(map) => {
                    let when = map.when.as_ref().and_then(|w| self.expr(w));
                    (self.prompt_map(map, at), map.barge_in, when)
                }
            };
            if let Some(kind) = kind {
                out.push(PromptItem {
                    kind,
                    barge_in,
                    when,
                    pos: at,
                });
            }
        }
        out
    }

    fn prompt_map(&mut self, map: &RawPromptMap, at: SourcePos) -> Option<PromptKind> {
        let scalar = |s: &Spanned<Scalar>| Spanned::new(s.value.0.clone(), s.referenced, s.defined);
        let present: Vec<&str> = [
            ("prompt", map.prompt.is_some()),
            ("digits", map.digits.is_some()),
            ("number", map.number.is_some()),
            ("money", map.money.is_some()),
            ("date", map.date.is_some()),
            ("time", map.time.is_some()),
            ("ordinal", map.ordinal.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.then_some(k))
        .collect();
        if present.len() != 1 {
            let msg = if present.is_empty() {
                "prompt item has none of `prompt`, `digits`, `number`, `ordinal`, `money`, `date`, `time`"
                    .to_string()
            } else {
                format!(
                    "prompt item has {} kinds ({})",
                    present.len(),
                    present.join(", ")
                )
            };
            self.error(ErrorKind::InvalidValue, at, msg)
                .hint("one kind per item, e.g. `{ prompt: hello }`, `{ money: \"${total}\", currency: RUB }`");
            return None;
        }
        let kind = present[0];
        // Options that belong to other kinds.
        let misplaced: Vec<(&str, bool, &[&str])> = vec![
            ("currency", map.currency.is_some(), &["money"]),
            ("gender", map.gender.is_some(), &["number"]),
            ("plural", map.plural.is_some(), &["number"]),
            ("year", map.year.is_some(), &["date"]),
            ("weekday", map.weekday.is_some(), &["date"]),
        ];
        for (key, present, kinds) in misplaced {
            if present && !kinds.contains(&kind) {
                self.error(
                    ErrorKind::Misplaced,
                    at,
                    format!("`{key}` does not apply to a `{kind}` item"),
                )
                .hint(format!("`{key}` belongs to `{}` items", kinds.join("`, `")));
            }
        }
        match kind {
            "prompt" => self.recording(map.prompt.as_ref()?),
            "digits" => self.digits(&scalar(map.digits.as_ref()?)),
            "number" => {
                let v = scalar(map.number.as_ref()?);
                let value = self.say_value(&v, VarType::Integer)?;
                let gender = match map.gender.as_ref().map(|g| g.value) {
                    Some(RawGender::Feminine) => Gender::Feminine,
                    Some(RawGender::Neuter) => Gender::Neuter,
                    _ => Gender::Masculine,
                };
                let plural = match &map.plural {
                    None => None,
                    Some(p) => {
                        let mut names = PluralNames::default();
                        for (slot, raw) in [
                            (&mut names.one, &p.value.one),
                            (&mut names.few, &p.value.few),
                            (&mut names.many, &p.value.many),
                            (&mut names.other, &p.value.other),
                        ] {
                            if let Some(r) = raw
                                && let Some(PromptKind::Recording(t)) = self.recording(r)
                            {
                                *slot = Some(t);
                            }
                        }
                        if names.one.is_none() || (names.many.is_none() && names.other.is_none()) {
                            self.error(
                                ErrorKind::InvalidValue,
                                pos(p),
                                "`plural` needs at least `one` and `many` (or `other`)",
                            )
                            .hint("e.g. `plural: { one: item, few: items-few, many: items }`; English uses `one` and `other`");
                        }
                        Some(names)
                    }
                };
                Some(PromptKind::Number {
                    value,
                    gender,
                    plural,
                })
            }
            "money" => {
                let v = scalar(map.money.as_ref()?);
                let value = self.say_value(&v, VarType::Money)?;
                let Some(cur) = &map.currency else {
                    self.error(
                        ErrorKind::InvalidValue,
                        at,
                        "`money` item has no `currency`",
                    )
                    .hint(format!(
                        "add `currency: RUB` (one of {})",
                        crate::sayas::CURRENCIES.join(", ")
                    ));
                    return None;
                };
                let currency = self.template(cur)?;
                if let Some(lit) = currency.as_literal()
                    && !crate::sayas::CURRENCIES.contains(&lit.as_str())
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(cur),
                        format!("unknown currency `{lit}`"),
                    )
                    .hint(format!("known: {}", crate::sayas::CURRENCIES.join(", ")));
                    return None;
                }
                Some(PromptKind::Money { value, currency })
            }
            "date" => {
                let v = scalar(map.date.as_ref()?);
                Some(PromptKind::Date {
                    value: self.say_value(&v, VarType::Date)?,
                    year: map.year.unwrap_or(false),
                    weekday: map.weekday.unwrap_or(false),
                })
            }
            "ordinal" => {
                let v = scalar(map.ordinal.as_ref()?);
                let value = self.say_value(&v, VarType::Integer)?;
                if let Some(lit) = value.as_literal()
                    && !lit
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|n| (1..=99).contains(&n))
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(&v),
                        format!("ordinal `{lit}` is not between 1 and 99"),
                    )
                    .hint("ordinals are spoken from 1 to 99 (English: 1 to 39)");
                    return None;
                }
                Some(PromptKind::Ordinal(value))
            }
            _ => {
                let v = scalar(map.time.as_ref()?);
                Some(PromptKind::Time(self.say_value(&v, VarType::Time)?))
            }
        }
    }

    /// The value of a say-as item: a template; a literal must be valid for `ty`.
    fn say_value(&mut self, v: &Spanned<String>, ty: VarType) -> Option<Template> {
        let t = self.template(v)?;
        if let Some(lit) = t.as_literal()
            && let Err(e) = ty.check(&lit)
        {
            self.error(ErrorKind::InvalidValue, pos(v), e)
                .hint("use `${variable}` for call data");
            return None;
        }
        Some(t)
    }

    fn recording(&mut self, name: &Spanned<String>) -> Option<PromptKind> {
        let template = self.template(name)?;
        if let Some(literal) = template.as_literal() {
            if let Err(e) = validate_prompt_name(&literal) {
                self.error(ErrorKind::InvalidName, pos(name), e)
                    .hint("a prompt is named by its path under audio/<lang>/ without `.wav`, e.g. `digits/1`");
                return None;
            }
            if literal.ends_with(".wav") {
                self.error(
                    ErrorKind::InvalidName,
                    pos(name),
                    format!("prompt name `{literal}` includes the file extension"),
                )
                .hint(format!(
                    "write `{}`; the runtime finds audio/<lang>/<name>.wav",
                    literal.trim_end_matches(".wav")
                ));
                return None;
            }
        }
        Some(PromptKind::Recording(template))
    }

    fn digits(&mut self, digits: &Spanned<String>) -> Option<PromptKind> {
        let template = self.template(digits)?;
        if let Some(literal) = template.as_literal()
            && (literal.is_empty() || !literal.chars().all(|c| c.is_ascii_digit()))
        {
            self.error(
                ErrorKind::InvalidDigits,
                pos(digits),
                format!("`{literal}` is not a string of digits"),
            )
            .hint("literal `digits` may contain only 0-9; use `${variable}` for call data");
            return None;
        }
        Some(PromptKind::Digits(template))
    }
}
