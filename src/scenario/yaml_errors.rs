//! YAML syntax and schema errors in plain words.
//!
//! The YAML parser and serde say what they expected in their own terms ("while parsing a
//! block mapping, did not find expected key", "invalid u32", "unknown field `promt`,
//! expected one of prompt, input, …"). This module keeps their position (`line:col`) and
//! says what is wrong in the author's terms, from the error and the file's text:
//!
//! - an unknown key: "did you mean" the closest key of that place, or where the key does
//!   belong when it is a key of the enclosing or an inner mapping (an indentation slip:
//!   `on:` written inside `ask:`, `intents:` beside it);
//! - indentation: which keys above the line it fails to line up with, tabs;
//! - a value of the wrong type: what the key takes, with an example;
//! - an unclosed bracket or quote, a missing key, a value that is not one of the choices.
//!
//! [`typo_fix`] gives the replacement that lets the loader carry on past a misspelt key, so
//! every misspelt key of a file is reported in one pass.
//!
//! Deliberately not here: parsing (serde-saphyr does it) and checks of meaning
//! (`compile/`). The text is only looked at around the error, never re-parsed.

use super::SourcePos;
use super::compile::closest;
use super::error::{Diagnostic, ErrorKind, Severity};

/// The keys of the top level, as serde lists them.
const TOP_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "languages",
    "variables",
    "global",
    "amd",
    "allow",
    "events",
    "acknowledge",
    "subdialogs",
    "start",
    "nodes",
];
/// The keys of a node.
const NODE_KEYS: &[&str] = &[
    "play", "ask", "set", "goto", "hangup", "branch", "switch", "record", "webhook", "transfer",
    "sms", "notify", "call", "return", "with", "else", "next", "on", "outcome",
];
/// The keys of `ask:`.
const ASK_KEYS: &[&str] = &[
    "prompt",
    "input",
    "timeout",
    "interdigit_timeout",
    "term_timeout",
    "complete_timeout",
    "incomplete_timeout",
    "max_speech_timeout",
    "barge_in",
    "intents",
    "digits",
    "confidence",
    "confirm",
    "globals",
    "store",
    "noinput",
    "nomatch",
];

/// Which mapping an "expected one of …" list describes.
fn place(expected: &[String]) -> Option<&'static str> {
    let is = |keys: &[&str]| {
        expected.len() == keys.len() && expected.iter().zip(keys).all(|(a, b)| a == b)
    };
    if is(TOP_KEYS) {
        Some("top")
    } else if is(NODE_KEYS) {
        Some("node")
    } else if is(ASK_KEYS) {
        Some("ask")
    } else {
        None
    }
}

/// The serde message parts of "unknown field `x`, expected one of a, b" (or "expected
/// `a` or `b`", "expected `a`").
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let list = rest
        .strip_prefix(", expected ")
        .map(|l| l.strip_prefix("one of ").unwrap_or(l))
        .unwrap_or("");
    let expected = list
        .split(", ")
        .flat_map(|p| p.split(" or "))
        .map(|p| p.trim().trim_matches('`').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    Some((key.to_string(), expected))
}

/// For a misspelt key with a close match, the key to put in its place so that parsing
/// can go on: (misspelt, replacement).
pub(crate) fn typo_fix(message: &str) -> Option<(String, String)> {
    let (key, expected) = unknown_field(message)?;
    let fix = closest(&key, expected.iter().map(String::as_str))?;
    Some((key, fix.to_string()))
}

fn line_of<'a>(lines: &[&'a str], line: u32) -> &'a str {
    lines
        .get(line.saturating_sub(1) as usize)
        .copied()
        .unwrap_or("")
}

fn indent(text: &str) -> usize {
    text.chars().take_while(|c| *c == ' ').count()
}

/// A line's content without a trailing comment (roughly: ` #` outside quotes).
fn content(text: &str) -> &str {
    let mut quote = None;
    let mut prev = ' ';
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev == ' ' => return text[..i].trim_end(),
            _ => {}
        }
        prev = c;
    }
    text.trim_end()
}

/// The key of a `key: …` line (after an optional `- `).
fn key_of(text: &str) -> Option<&str> {
    let t = content(text).trim_start();
    let t = t.strip_prefix("- ").unwrap_or(t);
    let (key, _) = t.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty() && !key.contains(['{', '[', ' '])).then_some(key)
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '"' | '\'')
}

/// The key whose value is at `line:col` (1-based): `key:` just before it on the line, or
/// the key of the flow collection it sits in, or the key of the block above it.
fn context_key(lines: &[&str], line: u32, col: u32) -> Option<String> {
    let chars: Vec<char> = line_of(lines, line).chars().collect();
    let mut i = (col as usize).saturating_sub(1).min(chars.len());
    let mut depth = 0usize;
    while i > 0 {
        i -= 1;
        match chars[i] {
            ']' | '}' => depth += 1,
            '[' | '{' if depth > 0 => depth -= 1,
            ':' if depth == 0 => {
                let end = i;
                let mut start = end;
                while start > 0 && is_key_char(chars[start - 1]) {
                    start -= 1;
                }
                let key: String = chars[start..end]
                    .iter()
                    .collect::<String>()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .to_string();
                if !key.is_empty() {
                    return Some(key);
                }
            }
            _ => {}
        }
    }
    // The value starts its own line: the nearest less indented `key:` above.
    let own = indent(line_of(lines, line));
    (1..line).rev().find_map(|l| {
        let text = line_of(lines, l);
        if content(text).trim().is_empty() || indent(text) >= own {
            return None;
        }
        key_of(text).map(str::to_string)
    })
}

/// The key before the character at index `i` of `chars` (`key:` then spaces), if any.
fn key_before(chars: &[char], i: usize) -> Option<String> {
    let mut j = i;
    while j > 0 && chars[j - 1] == ' ' {
        j -= 1;
    }
    if j == 0 || chars[j - 1] != ':' {
        return None;
    }
    let end = j - 1;
    let mut start = end;
    while start > 0 && is_key_char(chars[start - 1]) {
        start -= 1;
    }
    let key: String = chars[start..end].iter().collect();
    let key = key.trim_matches(|c| c == '"' || c == '\'').to_string();
    (!key.is_empty()).then_some(key)
}

/// The mapping a key at `line:col` belongs to, in words: "`ask`", "a `play` item", or
/// `None` at the top level or when it cannot be told.
fn parent_of_key(lines: &[&str], line: u32, col: u32) -> Option<String> {
    let chars: Vec<char> = line_of(lines, line).chars().collect();
    let mut i = (col as usize).saturating_sub(1).min(chars.len());
    let mut depth = 0usize;
    let mut in_list = false;
    while i > 0 {
        i -= 1;
        match chars[i] {
            ']' | '}' => depth += 1,
            '[' | '{' if depth > 0 => depth -= 1,
            '{' | '[' => {
                let opener = chars[i];
                if let Some(k) = key_before(&chars, i) {
                    return Some(if in_list {
                        format!("a `{k}` item")
                    } else if opener == '{' {
                        format!("`{k}`")
                    } else {
                        format!("a `{k}` item")
                    });
                }
                // `[{ …` or `, { …`: a mapping inside a list; the list's key names it.
                in_list = true;
            }
            _ => {}
        }
    }
    // A block mapping: the nearest less indented `key:` above. A `- key:` line starts a
    // list item whose keys are two columns right of the dash: a key there is that item's
    // sibling, and the item belongs to the list's key further up.
    let text = line_of(lines, line);
    let own = indent(text);
    let mut item = in_list || content(text).trim_start().starts_with("- ");
    let mut limit = own;
    for l in (1..line).rev() {
        let above = line_of(lines, l);
        if content(above).trim().is_empty() {
            continue;
        }
        let ind = indent(above);
        let dash = content(above).trim_start().starts_with("- ");
        if dash && ind + 2 == limit {
            item = true;
            limit = ind;
            continue;
        }
        if ind < limit
            && let Some(k) = key_of(above)
        {
            return Some(if item {
                format!("a `{k}` item")
            } else {
                format!("`{k}`")
            });
        }
    }
    None
}

/// The token at `line:col`: up to a `,`, `]`, `}` or the end of the line.
fn token_at(lines: &[&str], line: u32, col: u32) -> String {
    let text = line_of(lines, line);
    let rest: String = text.chars().skip(col.saturating_sub(1) as usize).collect();
    content(&rest)
        .split([',', ']', '}'])
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

/// What a scalar type is, in words, for "invalid …" messages.
fn type_words(message: &str) -> Option<&'static str> {
    let t = message.strip_prefix("invalid ")?;
    Some(match t {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number, like `2`",
        "floating point" => "a number, like `0.6`",
        "boolean" => "`true` or `false`",
        _ => return None,
    })
}

/// An example of the list a key takes.
fn list_example(key: &str) -> &'static str {
    match key {
        "reprompt" => {
            "a list of prompt lists, one per retry: `[[im-sorry], [im-sorry, please-try-again]]`"
        }
        "dtmf" => "a list of keys, quoted: `[\"1\"]`",
        "languages" => "a list of languages: `[en, ru, uk]`",
        "input" => "a list: `[dtmf]`, `[speech]` or `[dtmf, speech]`",
        "branch" => "a list of arms: `[{ if: \"total > 1000\", goto: vip }]`",
        "transfer" => "a list of allowed targets: `[\"sip:*@pbx.example\"]`",
        _ => "a list: `[hello, goodbye]`, or one `- item` per line under it",
    }
}

/// The lines above `line` whose keys it could line up with: (indent, key, line number),
/// nearest first, one per indentation.
fn keys_above(lines: &[&str], line: u32) -> Vec<(usize, String, u32)> {
    let mut out: Vec<(usize, String, u32)> = Vec::new();
    let mut limit = usize::MAX;
    for l in (1..line).rev() {
        let text = line_of(lines, l);
        if content(text).trim().is_empty() {
            continue;
        }
        let ind = indent(text);
        if ind >= limit {
            continue;
        }
        if let Some(k) = key_of(text) {
            out.push((ind, k.to_string(), l));
        }
        limit = ind;
        if ind == 0 || out.len() == 3 {
            break;
        }
    }
    out
}

/// Where the first unclosed `[` or `{` before `line` is, if a bracket was left open.
fn unclosed_bracket(lines: &[&str], line: u32) -> Option<(u32, char)> {
    let mut open: Vec<(u32, char)> = Vec::new();
    for l in 1..line {
        let mut quote = None;
        for c in content(line_of(lines, l)).chars() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => open.push((l, c)),
                (None, ']' | '}') => {
                    open.pop();
                }
                _ => {}
            }
        }
    }
    open.first().copied()
}

/// The last line before `line` with an unbalanced double quote.
fn unclosed_quote(lines: &[&str], line: u32) -> Option<u32> {
    (1..line)
        .rev()
        .find(|l| content(line_of(lines, *l)).matches('"').count() % 2 == 1)
}

/// The message (without the library's location suffix) and text → the plain-words
/// diagnostic at `line:col`.
pub(crate) fn explain(message: &str, line: u32, column: u32, text: &str) -> Diagnostic {
    let lines: Vec<&str> = text.lines().collect();
    let here = SourcePos { line, column };
    let (message, hint) = plain(message, &lines, here);
    Diagnostic {
        kind: ErrorKind::Yaml,
        severity: Severity::Error,
        line,
        column,
        message,
        hint,
    }
}

fn plain(message: &str, lines: &[&str], at: SourcePos) -> (String, Option<String>) {
    let (line, col) = (at.line, at.column);
    if let Some((key, expected)) = unknown_field(message) {
        let parent = parent_of_key(lines, line, col);
        let place = place(&expected);
        let here = match (place, &parent) {
            (Some("top"), _) => "at the top level".to_string(),
            (Some("node"), Some(p)) => format!("in node {p}"),
            (_, Some(p)) => format!("in {p}"),
            (_, None) => "here".to_string(),
        };
        let msg = format!("unknown key `{key}` {here}");
        let action = parent
            .as_deref()
            .map(|p| p.trim_matches('`'))
            .filter(|p| NODE_KEYS[..14].contains(p));
        let hint = if let Some(fix) = closest(&key, expected.iter().map(String::as_str)) {
            format!("did you mean `{fix}`?")
        } else if place == Some("top") && NODE_KEYS.contains(&key.as_str()) {
            format!(
                "`{key}` is a key of a node: nodes go under `nodes:`, each node's keys indented under its name"
            )
        } else if let Some(a) = action
            && NODE_KEYS.contains(&key.as_str())
        {
            format!(
                "`{key}` is a key of the node, beside `{a}:`, not inside it: move it left, to the column of `{a}:`"
            )
        } else if place == Some("node") && ASK_KEYS.contains(&key.as_str()) {
            format!("`{key}` is a key of `ask:`: indent it under `ask:`")
        } else if place == Some("node") && TOP_KEYS.contains(&key.as_str()) {
            format!("`{key}` is a top-level key: write it without indentation")
        } else if expected.is_empty() {
            "see docs/scenario-language.md for the keys each place accepts".to_string()
        } else {
            format!("the keys here are: {}", expected.join(", "))
        };
        return (msg, Some(hint));
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return (
            format!("duplicate key `{key}`"),
            Some("each key may appear once in a mapping".to_string()),
        );
    }
    if message.contains("did not find expected key")
        || message.contains("mapping values are not allowed")
        || message.contains("did not find expected '-' indicator")
    {
        let text = line_of(lines, line);
        let own = indent(text);
        let key = key_of(text).unwrap_or("this line");
        let above: Vec<String> = keys_above(lines, line)
            .into_iter()
            .filter(|(ind, _, _)| *ind != own)
            .map(|(ind, k, l)| format!("{ind} (`{k}`, line {l})"))
            .collect();
        let msg = format!("line {line} is not indented like the keys around it");
        let hint = if above.is_empty() {
            "keys of one mapping start in the same column; indent with spaces".to_string()
        } else {
            format!(
                "`{key}` is indented {own} space{}, the keys above it {}: keys of one mapping start in the same column, so line it up with the one it belongs to",
                if own == 1 { "" } else { "s" },
                above.join(", ")
            )
        };
        return (msg, Some(hint));
    }
    if message.contains("tabs disallowed")
        || message.contains("found character that cannot start any token")
            && line_of(lines, line).contains('\t')
    {
        return (
            format!("line {line} is indented with a tab"),
            Some("YAML indents with spaces only: replace the tab with spaces".to_string()),
        );
    }
    if message.contains("multiline quoted scalar")
        || message.contains("found unexpected end of stream while scanning a quoted scalar")
    {
        let open = unclosed_quote(lines, line + 1).unwrap_or(line);
        return (
            format!("a quoted text that starts on line {open} is not closed"),
            Some("add the closing `\"` (or `'`) at the end of the text".to_string()),
        );
    }
    if let Some((l, c)) = unclosed_bracket(lines, line) {
        let close = if c == '[' { ']' } else { '}' };
        return (
            format!("a `{c}` opened on line {l} is not closed"),
            Some(format!(
                "close it with `{close}` on line {l}, or continue the list on the next lines indented"
            )),
        );
    }
    if message.contains("illegal placement of ':'") || message.contains("mapping values") {
        return (
            "a `:` that is not between a key and its value".to_string(),
            Some("quote a value that contains `: `, e.g. `\"Note: …\"`".to_string()),
        );
    }
    let key = context_key(lines, line, col);
    let key_words = key
        .as_deref()
        .map_or("this value".to_string(), |k| format!("`{k}`"));
    let value = token_at(lines, line, col);
    if let Some(words) = type_words(message) {
        return (format!("{key_words} takes {words}, not `{value}`"), None);
    }
    if message.starts_with("expected sequence start") {
        let example = list_example(key.as_deref().unwrap_or(""));
        return (
            format!("{key_words} takes a list"),
            Some(format!("write {example}")),
        );
    }
    if message.starts_with("expected mapping start") {
        let text = line_of(lines, line);
        let next = lines
            .iter()
            .skip(line as usize)
            .find(|l| !content(l).trim().is_empty());
        let empty_here = value.is_empty() || text.trim_end().ends_with(':');
        if empty_here
            && let Some(next) = next
            && indent(next) <= indent(text)
        {
            let k = key_of(text).unwrap_or("it");
            return (
                format!("`{k}` is empty"),
                Some(format!(
                    "the keys that belong to `{k}` must be indented further than `{k}:` on line {line}"
                )),
            );
        }
        return (
            format!("{key_words} takes a mapping, not `{value}`"),
            Some("write `{ key: value }`, or `key: value` lines indented under it".to_string()),
        );
    }
    if message.starts_with("expected string scalar") {
        return (
            format!("{key_words} takes one value (a name or a text), not a list or a mapping"),
            Some("e.g. `next: confirm`; quote texts with special characters".to_string()),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (got, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let choices: Vec<String> = rest
            .strip_prefix(", expected ")
            .map(|l| l.strip_prefix("one of ").unwrap_or(l))
            .unwrap_or("")
            .split(", ")
            .flat_map(|p| p.split(" or "))
            .map(|p| p.trim().trim_matches('`').to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let hint = match closest(got, choices.iter().map(String::as_str)) {
            Some(c) => format!("did you mean `{c}`?"),
            None => format!("one of: {}", choices.join(", ")),
        };
        return (format!("{key_words} cannot be `{got}`"), Some(hint));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let text = line_of(lines, line);
        let at_key = col as usize == indent(text) + 1;
        let owner = if at_key && indent(text) == 0 {
            "the scenario".to_string()
        } else if at_key {
            // A block mapping: its key is the nearest less indented one above.
            keys_above(lines, line)
                .into_iter()
                .find(|(ind, _, _)| *ind < indent(text))
                .map_or("this mapping".to_string(), |(_, k, _)| format!("`{k}`"))
        } else {
            context_key(lines, line, col).map_or("this mapping".to_string(), |p| format!("`{p}`"))
        };
        return (
            format!("{owner} needs `{field}`"),
            Some(format!("add `{field}:` to it")),
        );
    }
    if message.starts_with("unexpected end of input") {
        return (
            message.to_string(),
            Some("the file is empty or cut short; a scenario starts with `version: 1`".to_string()),
        );
    }
    (message.to_string(), None)
}
