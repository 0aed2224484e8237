//! Where a scenario may send a call: the allow-list of transfer targets.
//!
//! A transfer target is a template (`target: "${operator}"`), and the variables it reads
//! can come from outside the file — the API request, a CRM look-up, or (only where a
//! variable says `from: sip_header …`) the caller's own INVITE. Without a limit, whoever
//! sets the variable chooses where the robot calls, through the shop's trunk (issue 12:
//! `X-Operator: +447700900123` and a key press). So every rendered target is checked
//! before anything is dialled:
//!
//! - targets written in the file are always allowed: literal targets, and what a target
//!   template renders to with the variables' declared defaults;
//! - `allow: { transfer: [...] }` adds patterns:
//!   - a number or extension pattern (`"100"`, `"+7495*"`, `"1??"`) matches a bare target
//!     (a number dialled through the trunk) — `*` any run of characters, `?` one;
//!   - a URI pattern (`"sip:*@pbx.shop.example"`, `"sip:sales@10.0.0.5:5060"`) matches a
//!     `sip:`/`sips:` target whose host (and port, when the pattern names one) is the
//!     pattern's and whose user part matches the pattern's user glob.
//!
//! Targets are compared structurally, never as strings with wildcards, so
//! `sip:a@evil.example;x=@pbx.shop.example` does not pass for `sip:*@pbx.shop.example`.
//! A user part may hold only `[A-Za-z0-9+*#._~-]`.
//!
//! Not here: the SIP side of a transfer (`engine::transfer`), or who may set a variable
//! (`from:` on the variable, checked where the call starts).

use std::collections::BTreeSet;

/// One `allow.transfer` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPattern {
    /// A number or extension, dialled through the trunk.
    Number(String),
    /// `sip:USER@HOST[:PORT]`: `user` is a glob, `host` exact (case-insensitive).
    Uri {
        user: String,
        host: String,
        port: Option<u16>,
    },
}

/// A transfer target, parsed for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target<'a> {
    Number(&'a str),
    Uri {
        user: &'a str,
        host: String,
        port: Option<u16>,
    },
}

fn user_chars_ok(user: &str, wildcards: bool) -> bool {
    !user.is_empty()
        && user.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '+' | '#' | '.' | '_' | '~' | '-')
                || (c == '*')
                || (wildcards && c == '?')
        })
}

/// `sip:user@host[:port]` (or `sips:`), with nothing else: no parameters, headers or
/// password. Returns (user, host, port).
fn split_uri(uri: &str) -> Option<(&str, &str, Option<u16>)> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))?;
    let (user, hostport) = rest.split_once('@')?;
    if hostport.contains(['@', ';', '?', '/', ' ', ',']) || user.contains(':') {
        return None;
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, tail) = v6.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if tail.is_empty() => None,
            None => return None,
        };
        (h, port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p.parse().ok()?)),
            None => (hostport, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
    {
        return None;
    }
    Some((user, host, port))
}

impl TargetPattern {
    /// Parses an `allow.transfer` entry; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<TargetPattern, String> {
        let text = text.trim();
        if text.contains(':') {
            let (user, host, port) = split_uri(text).ok_or_else(|| {
                format!("`{text}` is not `sip:USER@HOST[:PORT]` (no parameters or headers)")
            })?;
            if !user_chars_ok(user, true) {
                return Err(format!(
                    "the user part of `{text}` may hold only letters, digits, `+*#._~-` and `?`"
                ));
            }
            if host.contains(['*', '?']) {
                return Err(format!("the host of `{text}` must be written out in full"));
            }
            Ok(TargetPattern::Uri {
                user: user.to_owned(),
                host: host.to_ascii_lowercase(),
                port,
            })
        } else if user_chars_ok(text, true) {
            Ok(TargetPattern::Number(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is neither a number pattern (digits, `+`, `*`, `?`) nor `sip:USER@HOST`"
            ))
        }
    }

    fn matches(&self, target: &Target<'_>) -> bool {
        match (self, target) {
            (TargetPattern::Number(p), Target::Number(n)) => glob(p, n),
            (
                TargetPattern::Uri { user, host, port },
                Target::Uri {
                    user: tu,
                    host: th,
                    port: tp,
                },
            ) => host == th && port.is_none_or(|p| Some(p) == *tp) && glob(user, tu),
            _ => false,
        }
    }
}

fn parse_target(target: &str) -> Option<Target<'_>> {
    if target.contains(':') {
        let (user, host, port) = split_uri(target)?;
        user_chars_ok(user, false).then(|| Target::Uri {
            user,
            host: host.to_ascii_lowercase(),
            port,
        })
    } else {
        user_chars_ok(target, false).then_some(Target::Number(target))
    }
}

/// `*` any run of characters (also none), `?` exactly one; everything else literal.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] == t[ti] && p[pi] != '*')) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The transfer targets a scenario may reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferAllow {
    /// Targets written in the file (literal, or rendered from the declared defaults).
    pub exact: BTreeSet<String>,
    /// `allow.transfer`.
    pub patterns: Vec<TargetPattern>,
}

impl TransferAllow {
    /// Whether `target` (rendered) may be called.
    pub fn allows(&self, target: &str) -> bool {
        let target = target.trim();
        if self.exact.contains(target) {
            return true;
        }
        match parse_target(target) {
            Some(t) => self.patterns.iter().any(|p| p.matches(&t)),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(patterns: &[&str]) -> TransferAllow {
        TransferAllow {
            exact: BTreeSet::from(["sip:orders@pbx.shop.example".to_owned()]),
            patterns: patterns
                .iter()
                .map(|p| TargetPattern::parse(p).unwrap())
                .collect(),
        }
    }

    #[test]
    fn targets_from_the_file_are_allowed_and_nothing_else_by_default() {
        let a = allow(&[]);
        assert!(a.allows("sip:orders@pbx.shop.example"));
        for t in [
            "+447700900123",
            "sip:+447700900123@203.0.113.9",
            "sip:orders@pbx.shop.example.evil.example",
            "",
        ] {
            assert!(!a.allows(t), "{t}");
        }
    }

    #[test]
    fn patterns_match_structurally() {
        let a = allow(&[
            "sip:*@pbx.shop.example",
            "+7495*",
            "1??",
            "sip:agent@10.0.0.5:5070",
        ]);
        assert!(a.allows("sip:sales@pbx.shop.example"));
        assert!(a.allows("sip:sales@PBX.shop.example:5060"));
        assert!(a.allows("+74951234567"));
        assert!(a.allows("100"));
        assert!(!a.allows("1000"));
        assert!(!a.allows("+74851234567"));
        assert!(a.allows("sip:agent@10.0.0.5:5070"));
        assert!(!a.allows("sip:agent@10.0.0.5:5080"));
        assert!(!a.allows("sip:agent@10.0.0.5"));
        // Tricks with the host or the user part.
        for t in [
            "sip:a@evil.example;x=@pbx.shop.example",
            "sip:a@evil.example?x=@pbx.shop.example",
            "sip:x@pbx.shop.example@evil.example",
            "sip:user:pw@pbx.shop.example",
            "sip:a b@pbx.shop.example",
            "sip:sales@pbx.shop.example;transport=tcp",
            "+7495;phone-context=evil",
        ] {
            assert!(!a.allows(t), "{t}");
        }
    }

    #[test]
    fn bad_patterns_are_explained() {
        for p in ["sip:*@*.shop.example", "sip:a@b;x=y", "+7 495", "sip:@host"] {
            assert!(TargetPattern::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn glob_basics() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*b*", "abc"));
        assert!(!glob("a*d", "abc"));
    }
}
