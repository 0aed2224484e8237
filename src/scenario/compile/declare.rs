//! Declarations: the prompt languages, the scenario's variables (typed, with defaults, some
//! settable from SIP headers), and the parameters of each sub-dialogue.
//!
//! Implicit declarations: `language` (its default is the first of `languages`), the
//! call's parties `caller`, `dialled`, `customer`, `direction` (`builtins.rs`; set by the
//! runtime, so only a `string` without `from:` may redeclare them), and `answered_by` when
//! the scenario has `amd:`.
//!
//! Deliberately not here: where variables are used (templates, expressions and `store`
//! check visibility and that built-ins are not assigned through `core.rs`), or the
//! implicit `answered_by` semantics (that is `amd:`; this file only declares the variable
//! it sets).

use std::collections::BTreeMap;

use serde_saphyr::Spanned;

use super::Compiler;
use super::core::pos;
use crate::scenario::builtins::BUILTINS;
use crate::scenario::error::ErrorKind;
use crate::scenario::raw::{Named, RawScenario, RawVarType, RawVariable};
use crate::scenario::{
    ANSWERED_BY, DEFAULT_SIP_VALUE_MAX, FALLBACK_LANGUAGE, MAX_SIP_VALUE_MAX, SourcePos, VarType,
    Variable, is_variable_name,
};

/// Headers that belong to SIP itself: no variable may be set from them.
const RESERVED_HEADERS: &[&str] = &[
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Route",
    "Record-Route",
    "Content-Length",
    "Content-Type",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Expires",
    "Allow",
    "Supported",
    "Require",
];

fn is_language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 16
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn var_type(raw: Option<RawVarType>) -> VarType {
    match raw {
        None | Some(RawVarType::String) => VarType::String,
        Some(RawVarType::Digits) => VarType::Digits,
        Some(RawVarType::Integer) => VarType::Integer,
        Some(RawVarType::Number) => VarType::Number,
        Some(RawVarType::Money) => VarType::Money,
        Some(RawVarType::Date) => VarType::Date,
        Some(RawVarType::Time) => VarType::Time,
        Some(RawVarType::Boolean) => VarType::Boolean,
    }
}

impl<'a> Compiler<'a> {
    pub(super) fn languages(&mut self, raw: &RawScenario) -> Vec<String> {
        let Some(list) = &raw.languages else {
            return vec![FALLBACK_LANGUAGE.to_string()];
        };
        if list.value.is_empty() {
            self.error(
                ErrorKind::InvalidValue,
                pos(list),
                "`languages` is empty",
            )
            .hint("list the prompt languages, e.g. `[en, ru, uk]`, or leave the key out for `[en]`");
        }
        let mut out: Vec<String> = Vec::new();
        for lang in &list.value {
            if !is_language_tag(&lang.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(lang),
                    format!("`{}` is not a language tag", lang.value),
                )
                .hint("use the name of the folder under audio/, e.g. `en`, `ru`, `uk`");
            } else if out.contains(&lang.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(lang),
                    format!("language `{}` is listed twice", lang.value),
                );
            } else {
                out.push(lang.value.clone());
            }
        }
        if out.is_empty() {
            out.push(FALLBACK_LANGUAGE.to_string());
        }
        out
    }

    /// A declared variable or parameter, its default checked against its type.
    fn variable(&mut self, name: &Spanned<String>, decl: &RawVariable) -> Option<Variable> {
        if !is_variable_name(&name.value) {
            self.error(
                ErrorKind::InvalidName,
                pos(name),
                format!("variable name `{}` is not a valid name", name.value),
            )
            .hint("use letters, digits and `_`, not starting with a digit");
            return None;
        }
        let ty = var_type(decl.ty);
        let default = decl.default.as_ref();
        if let Some(d) = default
            && let Err(e) = ty.check(&d.value.0)
        {
            let kind = if ty == VarType::Digits {
                ErrorKind::InvalidDigits
            } else {
                ErrorKind::InvalidValue
            };
            self.error(
                kind,
                pos(d),
                format!("default of {} variable `{}`: {e}", ty.name(), name.value),
            )
            .hint(format!("the default must be a valid `{}` value", ty.name()));
        }
        let sip_header = decl
            .from
            .as_ref()
            .and_then(|f| self.variable_origin(name, f));
        let max_length = match &decl.max_length {
            Some(m) if m.value == 0 || m.value > MAX_SIP_VALUE_MAX => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(m),
                    format!(
                        "max_length of `{}` must be between 1 and {}",
                        name.value, MAX_SIP_VALUE_MAX
                    ),
                );
                DEFAULT_SIP_VALUE_MAX
            }
            Some(m) => m.value,
            None => DEFAULT_SIP_VALUE_MAX,
        };
        Some(Variable {
            name: name.value.clone(),
            ty,
            default: default.map(|d| d.value.0.clone()).unwrap_or_default(),
            description: decl.description.clone(),
            pos: Some(pos(name)),
            sip_header,
            max_length,
        })
    }

    /// `from: sip_header NAME` → the header name.
    fn variable_origin(
        &mut self,
        name: &Spanned<String>,
        from: &Spanned<String>,
    ) -> Option<String> {
        let text = from.value.trim();
        let header = text.strip_prefix("sip_header").map(str::trim);
        match header {
            Some(h)
                if !h.is_empty()
                    && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(h)) =>
            {
                Some(h.to_owned())
            }
            Some(h) if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(h)) => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(from),
                    format!(
                        "`{h}` is a header of the SIP protocol itself; it cannot set `{}`",
                        name.value
                    ),
                )
                .hint("use a header of your own, e.g. `from: sip_header X-Order-Id`");
                None
            }
            _ => {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(from),
                    format!("`from: {text}` of `{}` is not understood", name.value),
                )
                .hint("write `from: sip_header X-Order-Id` (the header of an inbound INVITE that sets it)");
                None
            }
        }
    }

    pub(super) fn declare_variables(&mut self, raw: &RawScenario) {
        if let Some(vars) = &raw.variables {
            for (name, decl) in &vars.0 {
                let Some(mut var) = self.variable(name, &decl.value) else {
                    continue;
                };
                if crate::scenario::builtins::is_builtin(&name.value) {
                    if var.ty != VarType::String {
                        self.error(
                            ErrorKind::InvalidValue,
                            pos(name),
                            format!(
                                "`{}` is a built-in variable, set by the runtime to a number; it cannot be declared `{}`",
                                name.value,
                                var.ty.name()
                            ),
                        )
                        .hint("leave it out (every scenario has it), or declare it as `type: string`");
                    }
                    if let Some(f) = &decl.value.from {
                        self.error(
                            ErrorKind::InvalidValue,
                            pos(f),
                            format!(
                                "`{}` is set by the runtime; nothing in the INVITE may set it",
                                name.value
                            ),
                        )
                        .hint("remove `from:`; a caller-supplied header must never choose who gets texts or opt-outs");
                    }
                }
                if name.value == "language" {
                    match &decl.value.default {
                        Some(d) if !self.languages.contains(&d.value.0) => {
                            let langs = self.languages.join(", ");
                            self.error(
                                ErrorKind::InvalidValue,
                                pos(d),
                                format!("default language `{}` is not in `languages`", d.value.0),
                            )
                            .hint(format!("languages: [{}]", langs));
                        }
                        Some(_) => {}
                        None => var.default = self.languages[0].clone(),
                    }
                }
                self.variables.insert(name.value.clone(), var);
            }
        }
        if let Some(amd) = &raw.amd {
            match self.variables.get(ANSWERED_BY) {
                Some(v) if v.ty != VarType::String => {
                    let at = v.pos.unwrap_or(pos(amd));
                    self.error(
                        ErrorKind::InvalidValue,
                        at,
                        format!(
                            "`{}` is set by `amd:` to human, machine or unknown; it cannot be a {} variable",
                            ANSWERED_BY,
                            v.ty.name()
                        ),
                    )
                    .hint("declare it as `type: string`, or leave it out (`amd:` declares it)");
                }
                Some(_) => {}
                None => {
                    self.variables.insert(
                        ANSWERED_BY.to_string(),
                        Variable {
                            name: ANSWERED_BY.to_string(),
                            ty: VarType::String,
                            default: String::new(),
                            description: Some(
                                "who answered: human, machine or unknown (implicit, `amd:`)"
                                    .to_string(),
                            ),
                            pos: None,
                            sip_header: None,
                            max_length: DEFAULT_SIP_VALUE_MAX,
                        },
                    );
                }
            }
        }
        for (name, description) in BUILTINS {
            self.variables
                .entry(name.to_string())
                .or_insert_with(|| Variable {
                    name: name.to_string(),
                    ty: VarType::String,
                    default: String::new(),
                    description: Some(description.to_string()),
                    pos: None,
                    sip_header: None,
                    max_length: DEFAULT_SIP_VALUE_MAX,
                });
        }
        let default_lang = self.languages[0].clone();
        self.variables
            .entry("language".to_string())
            .or_insert_with(|| Variable {
                name: "language".to_string(),
                ty: VarType::String,
                default: default_lang,
                description: Some("prompt language (implicit)".to_string()),
                pos: None,
                sip_header: None,
                max_length: DEFAULT_SIP_VALUE_MAX,
            });
    }

    /// `acknowledge.synthetic_prompts:` — `lang/name` patterns; the language part must be
    /// one of the scenario's languages or `*`.
    pub(super) fn acknowledged(&mut self, raw: &RawScenario) -> Vec<(String, SourcePos)> {
        let mut out = Vec::new();
        let list = raw
            .acknowledge
            .iter()
            .flat_map(|a| a.value.synthetic_prompts.iter())
            .flat_map(|l| l.value.iter());
        for p in list {
            let lang = p.value.split_once('/').map(|(l, _)| l);
            match lang {
                Some(l) if l == "*" || self.languages.iter().any(|x| x == l) => {
                    out.push((p.value.clone(), pos(p)));
                }
                Some(l) => {
                    let langs = self.languages.join(", ");
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(p),
                        format!(
                            "`{}` names language `{l}`, which is not in `languages`",
                            p.value
                        ),
                    )
                    .hint(format!(
                        "start with one of {langs}, or `*` for every language"
                    ));
                }
                None => {
                    let first = self.languages[0].clone();
                    self.error(
                        ErrorKind::InvalidValue,
                        pos(p),
                        format!("`{}` does not say which language it acknowledges", p.value),
                    )
                    .hint(format!(
                        "write `<language>/<prompt>`, e.g. `*/{0}` or `{first}/{0}` (`*` matches any run)",
                        p.value
                    ));
                }
            }
        }
        out
    }

    pub(super) fn declare_params(
        &mut self,
        sub: &Spanned<String>,
        params: Option<&Named<RawVariable>>,
    ) -> (BTreeMap<String, Variable>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut required = Vec::new();
        for (name, decl) in params.map(|p| p.0.as_slice()).unwrap_or_default() {
            if self.variables.contains_key(&name.value) {
                self.error(
                    ErrorKind::InvalidName,
                    pos(name),
                    format!(
                        "parameter `{}` of `{}` has the name of a scenario variable",
                        name.value, sub.value
                    ),
                )
                .hint("give the parameter another name; a sub-dialogue sees the scenario's variables anyway");
                continue;
            }
            if let Some(f) = &decl.value.from {
                self.error(
                    ErrorKind::InvalidValue,
                    pos(f),
                    format!(
                        "parameter `{}` of `{}` cannot come from SIP",
                        name.value, sub.value
                    ),
                )
                .hint("only scenario variables can say `from:`; pass the value as an argument");
            }
            if let Some(var) = self.variable(name, &decl.value) {
                if decl.value.default.is_none() {
                    required.push(var.name.clone());
                }
                out.insert(var.name.clone(), var);
            }
        }
        (out, required)
    }
}
