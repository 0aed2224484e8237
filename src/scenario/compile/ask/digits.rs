//! The digit string of an `ask` (`digits: { min, max, terminator }`): a PIN, an order
//! number, typed on the keypad or said; its bounds, its terminator key (which no intent may
//! use), and its target (`on.digits`, else `next`).
//!
//! Deliberately not here: deciding when typed keys are complete (`dialogue`), or the rule
//! that intent keys next to a digit string start with `*` or `#` (`../intent.rs`).

use super::AskContext;
use crate::scenario::compile::core::{is_dtmf_key, pos};
use crate::scenario::compile::{Compiler, DIGITS};
use crate::scenario::error::ErrorKind;
use crate::scenario::{AnswerType, DigitString, MAX_KEYS};

impl<'a> Compiler<'a> {
    /// `answer:` — a built-in answer type (`day_of_month`, `date`), which also takes keys as
    /// a digit string (a day: 1-2 digits; a date: `DDMM`), ended by `#` unless an intent
    /// uses that key. Its target is `on.<type>` (else `next`), kept in the digit string
    /// (which exists even when the question takes no keys). `None` without `answer:`.
    pub(super) fn answer_type(
        &mut self,
        cx: &mut AskContext<'_>,
    ) -> Option<(AnswerType, DigitString)> {
        let a = cx.ask.value.answer.as_ref()?;
        let Some(ty) = AnswerType::parse(&a.value) else {
            self.error(
                ErrorKind::InvalidValue,
                pos(a),
                format!("`{}` is not an answer type", a.value),
            )
            .hint("`answer: day_of_month` or `answer: date`");
            cx.complete = false;
            return None;
        };
        if let Some(d) = &cx.ask.value.digits {
            self.error(
                ErrorKind::InvalidValue,
                pos(d),
                "`digits` and `answer` cannot both be given",
            )
            .hint("an `answer:` type takes keys itself (a day: 1-2 digits, a date: DDMM)");
            cx.complete = false;
            return None;
        }
        let (min, max) = match ty {
            AnswerType::DayOfMonth => (1, 2),
            AnswerType::Date => (4, 4),
        };
        let terminator = (!cx.key_owner.contains_key("#")).then_some('#');
        let qualified = &cx.qualified;
        let jump = self.on_or_next(&cx.on, cx.next, ty.name(), pos(cx.name), || {
            (
                format!("the answer of `ask` node `{qualified}` has no target"),
                format!("add `{}: <node>` under `on:` (or a `next:`)", ty.name()),
            )
        });
        match jump {
            Some(jump) => Some((
                ty,
                DigitString {
                    min,
                    max,
                    terminator,
                    jump,
                },
            )),
            None => {
                cx.complete = false;
                None
            }
        }
    }

    pub(super) fn digit_string(&mut self, cx: &mut AskContext<'_>) -> Option<DigitString> {
        let d = cx.ask.value.digits.as_ref()?;
        let min = d.value.min.as_ref().map_or(1, |m| m.value) as usize;
        let max = d.value.max.as_ref().map_or(20.max(min as u32), |m| m.value) as usize;
        if min == 0 {
            self.error(
                ErrorKind::InvalidValue,
                d.value.min.as_ref().map_or(pos(d), pos),
                "`min` must be at least 1",
            );
        }
        if max < min || max > MAX_KEYS {
            self.error(
                ErrorKind::InvalidValue,
                d.value.max.as_ref().map_or(pos(d), pos),
                format!("`max` must be between `min` ({min}) and {MAX_KEYS}"),
            );
        }
        let terminator = match &d.value.terminator {
            None => None,
            Some(t) => {
                let mut chars = t.value.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if is_dtmf_key(c) && !c.is_ascii_digit() => Some(c),
                    _ => {
                        self.error(
                            ErrorKind::InvalidDigits,
                            pos(t),
                            format!("`{}` is not a terminator key", t.value),
                        )
                        .hint("one of `#`, `*`, `A`-`D`, quoted: `terminator: \"#\"`");
                        None
                    }
                }
            }
        };
        if let Some(t) = terminator
            && let Some(owner) = cx.key_owner.get(&t.to_string())
        {
            self.error(
                ErrorKind::InvalidValue,
                pos(d),
                format!("terminator `{t}` is also the key of intent `{owner}`"),
            );
        }
        let qualified = &cx.qualified;
        let jump = self.on_or_next(&cx.on, cx.next, DIGITS, pos(cx.name), || {
            (
                format!("the digit string of `ask` node `{qualified}` has no target"),
                "add `digits: <node>` under `on:` (or a `next:`)".to_string(),
            )
        });
        match jump {
            Some(jump) => Some(DigitString {
                min,
                max,
                terminator,
                jump,
            }),
            None => {
                cx.complete = false;
                None
            }
        }
    }
}
