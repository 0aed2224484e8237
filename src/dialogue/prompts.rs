//! Prompt items → the recordings to play, in one language.
//!
//! This is where typed values become recorded fragments. v1 knows recordings and
//! `digits`; say-as kinds (numbers, money, dates, times with ru/uk/en grammar) add arms to
//! [`render`]. Problems with call data (non-digits in a `digits` value, a templated prompt
//! name that renders to something unsafe) skip the fragment with a warning rather than fail
//! the call; the values themselves are not logged, as they may be personal data.

use std::collections::BTreeMap;

use super::PromptRef;
use crate::scenario::{PromptItem, PromptKind, validate_prompt_name};

/// Appends the recordings for `items` to `out`. `barge_in` decides each item's flag.
pub(crate) fn render(
    items: &[PromptItem],
    lang: &str,
    vars: &BTreeMap<String, String>,
    barge_in: impl Fn(&PromptItem) -> bool,
    out: &mut Vec<PromptRef>,
) {
    for item in items {
        let barge_in = barge_in(item);
        let push = |out: &mut Vec<PromptRef>, name: String| {
            out.push(PromptRef {
                lang: lang.to_string(),
                name,
                barge_in,
            })
        };
        match &item.kind {
            PromptKind::Recording(template) => {
                let name = template.render(vars);
                match validate_prompt_name(&name) {
                    Ok(()) => push(out, name),
                    Err(_) => tracing::warn!(
                        line = item.pos.line,
                        template = template.source(),
                        "prompt name rendered from call data is not a valid name; skipped"
                    ),
                }
            }
            PromptKind::Digits(template) => {
                let value = template.render(vars);
                let mut skipped = 0usize;
                for c in value.chars() {
                    if c.is_ascii_digit() {
                        push(out, format!("digits/{c}"));
                    } else {
                        skipped += 1;
                    }
                }
                if skipped > 0 {
                    tracing::warn!(
                        line = item.pos.line,
                        template = template.source(),
                        skipped,
                        "`digits` value contains non-digit characters; they are not spoken"
                    );
                }
            }
        }
    }
}
