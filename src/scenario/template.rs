//! `${name}` interpolation in scenario strings.
//!
//! A [`Template`] is parsed once at load time; the names it refers to are checked against
//! the declared variables then, so rendering at call time cannot fail: a variable that the
//! call does not provide renders as its declared default (and a name that is absent from the
//! map renders as the empty string). `$$` writes a literal `$`. There are no expressions,
//! filters or nested templates here on purpose: typed formatting (numbers, money, dates) is
//! the job of say-as prompt items, not of string interpolation.

use std::collections::BTreeMap;
use std::fmt;

/// A string with `${variable}` references, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

/// Why a template did not parse; `offset` is the character offset of the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Template {
    /// Parses `text`. `${` must be closed by `}` and enclose a variable name.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '$' && chars.get(i + 1) == Some(&'$') {
                literal.push('$');
                i += 2;
            } else if c == '$' && chars.get(i + 1) == Some(&'{') {
                let start = i;
                let Some(len) = chars[i + 2..].iter().position(|&c| c == '}') else {
                    return Err(TemplateError {
                        offset: start,
                        message: "`${` is not closed by `}`".to_string(),
                    });
                };
                let name: String = chars[i + 2..i + 2 + len].iter().collect();
                let name = name.trim();
                if !is_variable_name(name) {
                    return Err(TemplateError {
                        offset: start,
                        message: format!(
                            "`${{{name}}}` is not a variable reference (names are letters, digits and `_`)"
                        ),
                    });
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Variable(name.to_string()));
                i += 3 + len;
            } else {
                literal.push(c);
                i += 1;
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: text.to_string(),
            parts,
        })
    }

    /// A template without variables.
    pub fn literal(text: &str) -> Template {
        Template {
            source: text.replace('$', "$$"),
            parts: if text.is_empty() {
                Vec::new()
            } else {
                vec![Part::Literal(text.to_string())]
            },
        }
    }

    /// The text as written in the scenario.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the template has no `${…}` references.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The literal text, when [`is_literal`](Self::is_literal).
    pub fn as_literal(&self) -> Option<String> {
        self.is_literal().then(|| self.render(&BTreeMap::new()))
    }

    /// Names of the referenced variables, in order of appearance (with repeats).
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Substitutes the variables; a missing variable renders as "".
    pub fn render(&self, vars: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => {
                    if let Some(value) = vars.get(name) {
                        out.push_str(value);
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_variables_and_escapes() {
        let t = Template::parse("order ${order_id}, $$5, ${ name }$").unwrap();
        assert!(!t.is_literal());
        assert_eq!(t.variables().collect::<Vec<_>>(), ["order_id", "name"]);
        assert_eq!(
            t.render(&vars(&[("order_id", "12"), ("name", "Ann")])),
            "order 12, $5, Ann$"
        );
        assert_eq!(t.render(&vars(&[])), "order , $5, $");
    }

    #[test]
    fn literal_templates() {
        let t = Template::parse("hello").unwrap();
        assert_eq!(t.as_literal().as_deref(), Some("hello"));
        assert_eq!(
            Template::parse("").unwrap().as_literal().as_deref(),
            Some("")
        );
        assert_eq!(Template::literal("a$b").render(&vars(&[])), "a$b");
    }

    #[test]
    fn rejects_malformed_references() {
        assert_eq!(Template::parse("ab${x").unwrap_err().offset, 2);
        assert_eq!(Template::parse("${1x}").unwrap_err().offset, 0);
        assert_eq!(Template::parse("${}").unwrap_err().offset, 0);
        assert!(Template::parse("${a-b}").is_err());
    }
}
