//! Prompt items → the recordings to play, in one language.
//!
//! This is where typed values become recorded fragments: recordings and `digits` directly,
//! `number`, `money`, `date` and `time` through the grammar in [`crate::sayas`]. Items with
//! a `when:` condition that does not hold are left out. Problems with call data (a value
//! that does not parse as its type, a currency nobody knows, a templated prompt name that
//! renders to something unsafe) never fail the call: the item falls back to reading the
//! value's digits, or is skipped, with a warning. The values themselves are not logged, as
//! they may be personal data.

use std::collections::BTreeMap;

use super::PromptRef;
use crate::sayas::{self, DateStyle, SayError};
use crate::scenario::{PromptItem, PromptKind, Template, validate_prompt_name};

/// Appends the recordings for `items` to `out`. `barge_in` decides each item's flag.
pub(crate) fn render(
    items: &[PromptItem],
    lang: &str,
    vars: &BTreeMap<String, String>,
    barge_in: impl Fn(&PromptItem) -> bool,
    out: &mut Vec<PromptRef>,
) {
    for item in items {
        if let Some(cond) = &item.when
            && !cond.is_true(vars)
        {
            continue;
        }
        let barge_in = barge_in(item);
        let mut names = Vec::new();
        fragments(item, lang, vars, &mut names);
        out.extend(names.into_iter().map(|name| PromptRef {
            lang: lang.to_string(),
            name,
            barge_in,
        }));
    }
}

/// The fragment names one item speaks.
fn fragments(
    item: &PromptItem,
    lang: &str,
    vars: &BTreeMap<String, String>,
    out: &mut Vec<String>,
) {
    let line = item.pos.line;
    match &item.kind {
        PromptKind::Recording(template) => push_name(template, vars, line, out),
        PromptKind::Digits(template) => {
            let value = template.render(vars);
            let skipped = digits(&value, out);
            if skipped > 0 {
                tracing::warn!(
                    line,
                    template = template.source(),
                    skipped,
                    "`digits` value contains non-digit characters; they are not spoken"
                );
            }
        }
        PromptKind::Number {
            value,
            gender,
            plural,
        } => {
            let text = value.render(vars);
            if text.trim().is_empty() {
                return;
            }
            let said = sayas::parse_integer(&text).and_then(|n| {
                let words = sayas::number(lang, n, *gender)?;
                Ok((n, words))
            });
            match said {
                Ok((n, words)) => {
                    out.extend(words);
                    if let Some(plural) = plural {
                        let category = sayas::plural(lang, n.unsigned_abs());
                        if let Some(noun) = plural.pick(category) {
                            push_name(noun, vars, line, out);
                        }
                    }
                }
                Err(e) => fallback(&text, &e, "number", line, out),
            }
        }
        PromptKind::Money { value, currency } => {
            let text = value.render(vars);
            if text.trim().is_empty() {
                return;
            }
            let cur = currency.render(vars);
            let said = sayas::parse_money(&text)
                .and_then(|(neg, major, minor)| sayas::money(lang, neg, major, minor, &cur));
            match said {
                Ok(words) => out.extend(words),
                Err(e) => fallback(&text, &e, "money", line, out),
            }
        }
        PromptKind::Date {
            value,
            year,
            weekday,
        } => {
            let text = value.render(vars);
            if text.trim().is_empty() {
                return;
            }
            let style = DateStyle {
                year: *year,
                weekday: *weekday,
            };
            match sayas::parse_date(&text).and_then(|d| sayas::date(lang, d, style)) {
                Ok(words) => out.extend(words),
                Err(e) => fallback(&text, &e, "date", line, out),
            }
        }
        PromptKind::Ordinal(value) => {
            let text = value.render(vars);
            if text.trim().is_empty() {
                return;
            }
            let said = text
                .trim()
                .parse::<u32>()
                .map_err(|_| SayError::Invalid(text.clone()))
                .and_then(|n| sayas::ordinal(lang, n));
            match said {
                Ok(words) => out.extend(words),
                Err(e) => fallback(&text, &e, "ordinal", line, out),
            }
        }
        PromptKind::Time(value) => {
            let text = value.render(vars);
            if text.trim().is_empty() {
                return;
            }
            match sayas::parse_time(&text).and_then(|(h, m)| sayas::time(lang, h, m)) {
                Ok(words) => out.extend(words),
                Err(e) => fallback(&text, &e, "time", line, out),
            }
        }
    }
}

fn push_name(
    template: &Template,
    vars: &BTreeMap<String, String>,
    line: u32,
    out: &mut Vec<String>,
) {
    let name = template.render(vars);
    match validate_prompt_name(&name) {
        Ok(()) => out.push(name),
        Err(_) => tracing::warn!(
            line,
            template = template.source(),
            "prompt name rendered from call data is not a valid name; skipped"
        ),
    }
}

/// `digits/<d>` for each 0-9 of `value`; returns how many characters were skipped.
fn digits(value: &str, out: &mut Vec<String>) -> usize {
    let mut skipped = 0;
    for c in value.chars() {
        if c.is_ascii_digit() {
            out.push(format!("digits/{c}"));
        } else {
            skipped += 1;
        }
    }
    skipped
}

fn fallback(value: &str, error: &SayError, kind: &str, line: u32, out: &mut Vec<String>) {
    let kind_of_error = match error {
        SayError::Language(_) => "no grammar for the language",
        SayError::OutOfRange(_) => "out of range",
        SayError::Invalid(_) => "not a valid value",
        SayError::Currency(_) => "unknown currency",
    };
    tracing::warn!(
        line,
        kind,
        reason = kind_of_error,
        "say-as value cannot be spoken; reading its digits instead"
    );
    digits(value, out);
}
