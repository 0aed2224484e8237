//! Typed views of header values, parsed on demand: URIs (RFC 3261 §19.1, §25), name-addr
//! (From/To/Contact/Route), Via and CSeq. One odd header never fails the whole message.

use std::fmt;

use super::*;
// ───────────────────────────── small cursor ─────────────────────────────

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    /// Skip SP/HT; whether anything was skipped.
    fn skip_ws(&mut self) -> bool {
        let before = self.pos;
        while let Some(c) = self.peek() {
            if c == ' ' || c == '\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.pos > before
    }
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.find(|c: char| !f(c)).unwrap_or(rest.len());
        self.pos += n;
        rest.get(..n).unwrap_or("")
    }
    /// A quoted-string (§25.1) starting at the cursor: (raw text with quotes, unescaped
    /// content). `None` when unterminated.
    fn quoted(&mut self) -> Option<(&'a str, String)> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        if chars.next().map(|(_, c)| c) != Some('"') {
            return None;
        }
        let mut content = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => content.push(chars.next()?.1),
                '"' => {
                    let end = i + 1;
                    self.pos += end;
                    return Some((rest.get(..end)?, content));
                }
                _ => content.push(c),
            }
        }
        None
    }
}

/// Generic parameters `*( SEMI name [ EQUAL value ] )` with LWS allowed around ';' and '='
/// (§25.1 SEMI/EQUAL); values are tokens, hosts or quoted strings, kept raw (quotes included).
fn parse_params(
    c: &mut Cursor<'_>,
    what: &'static str,
) -> Result<Vec<(String, Option<String>)>, ParseError> {
    let mut params = Vec::new();
    loop {
        c.skip_ws();
        if c.at_end() {
            return Ok(params);
        }
        if !c.eat(';') {
            return Err(invalid(
                what,
                "unexpected text where ';' or the end was expected",
            ));
        }
        c.skip_ws();
        let name = c.take_while(|ch| ch.is_ascii() && is_token_byte(ch as u8));
        if name.is_empty() {
            return Err(invalid(what, "empty parameter"));
        }
        c.skip_ws();
        let value = if c.eat('=') {
            c.skip_ws();
            if c.peek() == Some('"') {
                match c.quoted() {
                    Some((raw, _)) => Some(raw.to_owned()),
                    None => return Err(invalid(what, "unterminated quoted parameter value")),
                }
            } else {
                let v = c.take_while(|ch| {
                    !ch.is_control() && !matches!(ch, ' ' | '\t' | ';' | ',' | '"' | '<' | '>')
                });
                if v.is_empty() {
                    return Err(invalid(what, "parameter without value after '='"));
                }
                Some(v.to_owned())
            }
        } else {
            None
        };
        params.push((name.to_owned(), value));
    }
}

fn find_param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_deref())
}

fn has_param_in(params: &[(String, Option<String>)], name: &str) -> bool {
    params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[(String, Option<String>)]) -> fmt::Result {
    for (n, v) in params {
        match v {
            Some(v) => write!(f, ";{n}={v}")?,
            None => write!(f, ";{n}")?,
        }
    }
    Ok(())
}

// ───────────────────────────── URIs ─────────────────────────────

/// A URI (RFC 3261 §19.1). For `sip`/`sips` every part is filled in, %-escapes kept as
/// received; for other schemes (`tel`, unknown ones) `host` holds the opaque rest after ':'.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    /// Lowercase scheme: "sip", "sips", "tel", …
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// uri-parameters (`;name[=value]`).
    pub params: Vec<(String, Option<String>)>,
    /// Escaped headers (`?name=value&…`).
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// Value of a uri-parameter (case-insensitive name); `None` if absent or valueless.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    pub fn has_param(&self, name: &str) -> bool {
        has_param_in(&self.params, name)
    }

    /// Whether this is a `sip:` or `sips:` URI (fully parsed).
    pub fn is_sip(&self) -> bool {
        self.scheme == "sip" || self.scheme == "sips"
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if !self.is_sip() {
            return f.write_str(&self.host);
        }
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)?;
        for (i, (n, v)) in self.headers.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{n}={v}")?;
        }
        Ok(())
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// user = 1*( unreserved / escaped / user-unreserved ); '#' tolerated (seen in the wild).
fn is_user_byte(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' | b'#'
        )
}

fn is_password_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

fn is_paramchar_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

fn is_hchar_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

fn is_hostname_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

/// Every byte is allowed by `ok` or part of a well-formed `%HH` escape.
fn chars_ok(s: &str, ok: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(|h| h.is_ascii_hexdigit());
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else if ok(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Host (hostname, IPv4 or `[IPv6]`) and optional port; `None` on bad syntax.
fn parse_hostport(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (host, rest) = cut(s, end + 1);
        let inner = host.get(1..host.len().saturating_sub(1))?;
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.find(':') {
            Some(i) => {
                let (h, p) = cut(s, i);
                (h, Some(p.get(1..)?))
            }
            None => (s, None),
        }
    };
    if host.is_empty() || (!host.starts_with('[') && !host.bytes().all(is_hostname_byte)) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Some((host.to_owned(), port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok()
}

/// Parse a URI (§19.1.1, §25.1). `sip`/`sips` fully (userinfo, hostport, parameters,
/// headers; the user part may contain ';' and '?', RFC 4475 §3.1.1.9); other schemes as
/// scheme + opaque rest (in `host`), which is enough for the UA to answer 416.
pub fn parse_uri(s: &str) -> Result<SipUri, ParseError> {
    const W: &str = "URI";
    let Some(colon) = s.find(':') else {
        return Err(invalid(W, "missing scheme"));
    };
    let (scheme, rest) = cut(s, colon);
    let rest = rest.get(1..).unwrap_or("");
    if !is_scheme(scheme) {
        return Err(invalid(W, "malformed scheme"));
    }
    if rest.is_empty() {
        return Err(invalid(W, "nothing after the scheme"));
    }
    if !rest.bytes().all(|b| {
        b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'{' | b'}' | b'|' | b'\\' | b'^')
    }) {
        return Err(invalid(
            W,
            "whitespace, control, non-ASCII or delimiter character",
        ));
    }
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "sip" && scheme != "sips" {
        return Ok(SipUri {
            scheme,
            user: None,
            password: None,
            host: rest.to_owned(),
            port: None,
            params: Vec::new(),
            headers: Vec::new(),
        });
    }

    // '@' cannot appear unescaped in user, password, parameters or headers, so the first one
    // ends the userinfo (whose user part may contain ';' and '?').
    let (userinfo, hostpart) = match rest.find('@') {
        Some(at) => {
            let (u, h) = cut(rest, at);
            (Some(u), h.get(1..).unwrap_or(""))
        }
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (user, password) = match ui.find(':') {
                Some(i) => {
                    let (u, p) = cut(ui, i);
                    (u, Some(p.get(1..).unwrap_or("")))
                }
                None => (ui, None),
            };
            if user.is_empty() || !chars_ok(user, is_user_byte) {
                return Err(invalid(W, "malformed user part"));
            }
            if let Some(p) = password
                && !chars_ok(p, is_password_byte)
            {
                return Err(invalid(W, "malformed password"));
            }
            (Some(user.to_owned()), password.map(str::to_owned))
        }
    };
    let (before_headers, header_text) = match hostpart.find('?') {
        Some(i) => {
            let (a, b) = cut(hostpart, i);
            (a, Some(b.get(1..).unwrap_or("")))
        }
        None => (hostpart, None),
    };
    let (hostport, param_text) = match before_headers.find(';') {
        Some(i) => {
            let (a, b) = cut(before_headers, i);
            (a, Some(b.get(1..).unwrap_or("")))
        }
        None => (before_headers, None),
    };
    let Some((host, port)) = parse_hostport(hostport) else {
        return Err(invalid(W, "malformed host or port"));
    };
    let mut params = Vec::new();
    if let Some(pt) = param_text {
        for p in pt.split(';') {
            let (name, value) = match p.find('=') {
                Some(i) => {
                    let (n, v) = cut(p, i);
                    (n, Some(v.get(1..).unwrap_or("")))
                }
                None => (p, None),
            };
            if name.is_empty() || !chars_ok(name, is_paramchar_byte) {
                return Err(invalid(W, "empty or malformed uri-parameter"));
            }
            if let Some(v) = value
                && !chars_ok(v, is_paramchar_byte)
            {
                return Err(invalid(W, "malformed uri-parameter value"));
            }
            params.push((name.to_owned(), value.map(str::to_owned)));
        }
    }
    let mut headers = Vec::new();
    if let Some(ht) = header_text {
        for h in ht.split('&') {
            let (name, value) = match h.find('=') {
                Some(i) => {
                    let (n, v) = cut(h, i);
                    (n, v.get(1..).unwrap_or(""))
                }
                None => (h, ""),
            };
            if name.is_empty() || !chars_ok(name, is_hchar_byte) || !chars_ok(value, is_hchar_byte)
            {
                return Err(invalid(W, "malformed escaped header"));
            }
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(SipUri {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

// ───────────────────────────── name-addr ─────────────────────────────

/// One From/To/Contact/Route/Record-Route value (§20.10, §25.1 name-addr / addr-spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name: a quoted string's content unescaped, or the token words as received.
    pub display: Option<String>,
    /// The URI text without `<>`, as received (parse it with [`parse_uri`]).
    pub uri: String,
    /// Header parameters (`tag`, `expires`, `q` …); values raw, quotes included.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    pub fn tag(&self) -> Option<&str> {
        self.param("tag")
    }

    /// Value of a header parameter (case-insensitive name); `None` if absent or valueless.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    pub fn has_param(&self, name: &str) -> bool {
        has_param_in(&self.params, name)
    }
}

impl fmt::Display for NameAddr {
    /// Always the name-addr form (`"display" <uri>;params`), which is valid for any URI.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            f.write_str("\"")?;
            for c in d.chars() {
                match c {
                    '"' | '\\' => write!(f, "\\{c}")?,
                    '\r' | '\n' => f.write_str(" ")?,
                    _ => write!(f, "{c}")?,
                }
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// Parse one name-addr or addr-spec value with its parameters.
///
/// - name-addr: `[display-name] <URI> *(;param)`, display name quoted or token words (a token
///   display name directly followed by '<' is accepted, RFC 4475 §3.1.1.6); no whitespace
///   inside `<…>` (§3.1.2.14).
/// - addr-spec: `URI *(;param)` where every ';' parameter belongs to the header, not the URI
///   (§20.10); such a URI must not contain ',', '?' or whitespace (§3.1.2.13).
///
/// The URI itself is only checked for a scheme; parse it with [`parse_uri`] when needed.
pub fn parse_name_addr(value: &str) -> Result<NameAddr, ParseError> {
    const W: &str = "name-addr";
    let s = trim_lws(value);
    if s.is_empty() {
        return Err(invalid(W, "empty value"));
    }
    let mut c = Cursor::new(s);
    let display;
    let uri;
    if c.peek() == Some('"') {
        let Some((_, content)) = c.quoted() else {
            return Err(invalid(W, "unterminated quoted display name"));
        };
        display = Some(content);
        c.skip_ws();
        if !c.eat('<') {
            return Err(invalid(W, "quoted display name not followed by <URI>"));
        }
        uri = angle_uri(&mut c)?;
    } else if let Some(lt) = s.find('<') {
        let words = trim_lws(s.get(..lt).unwrap_or(""));
        if !words.bytes().all(|b| is_token_byte(b) || is_lws_byte(b)) {
            return Err(invalid(
                W,
                "display name with non-token characters must be quoted",
            ));
        }
        display = (!words.is_empty()).then(|| words.to_owned());
        c.pos = lt + 1;
        uri = angle_uri(&mut c)?;
    } else {
        display = None;
        let text = c.take_while(|ch| ch != ';');
        let text = trim_lws(text);
        if text.is_empty() {
            return Err(invalid(W, "empty URI"));
        }
        if text.contains([' ', '\t']) {
            return Err(invalid(W, "whitespace inside addr-spec"));
        }
        if text.contains([',', '?', '>', '"']) {
            return Err(invalid(
                W,
                "URI with ',', '?' or headers must be enclosed in <...>",
            ));
        }
        uri = text.to_owned();
    }
    let has_scheme = uri.find(':').is_some_and(|i| is_scheme(cut(&uri, i).0));
    if !has_scheme && uri != "*" {
        return Err(invalid(W, "URI without scheme"));
    }
    let params = parse_params(&mut c, W)?;
    Ok(NameAddr {
        display,
        uri,
        params,
    })
}

/// The URI between '<' (already consumed) and '>'.
fn angle_uri(c: &mut Cursor<'_>) -> Result<String, ParseError> {
    const W: &str = "name-addr";
    let inner = c.take_while(|ch| ch != '>');
    if !c.eat('>') {
        return Err(invalid(W, "missing '>'"));
    }
    if inner.is_empty() {
        return Err(invalid(W, "empty <>"));
    }
    if inner.contains(|ch: char| ch.is_whitespace() || ch == '<') {
        return Err(invalid(W, "whitespace inside <...>"));
    }
    Ok(inner.to_owned())
}

// ───────────────────────────── Via ─────────────────────────────

/// One Via value (§20.42): `SIP/2.0/transport sent-by *(;param)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// Uppercase transport: "UDP", "TCP", "TLS", "SCTP", or any other token.
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport` …); values raw.
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }

    /// Value of a parameter (case-insensitive name); `None` if absent or valueless.
    pub fn param(&self, n: &str) -> Option<&str> {
        find_param(&self.params, n)
    }

    pub fn has_param(&self, n: &str) -> bool {
        has_param_in(&self.params, n)
    }

    /// `host[:port]` as received.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

/// A token followed by optional LWS.
fn via_token<'a>(c: &mut Cursor<'a>) -> &'a str {
    let t = c.take_while(|ch| ch.is_ascii() && is_token_byte(ch as u8));
    c.skip_ws();
    t
}

/// Parse one Via value (split a multi-value line with [`Headers::get_all`] first). LWS is
/// allowed around '/' (SLASH), ':' (COLON), ';' and '=' (§25.1), as in RFC 4475 §3.1.1.1.
/// The protocol name and version are not checked here (validation answers 505 for the
/// start line).
pub fn parse_via(value: &str) -> Result<Via, ParseError> {
    const W: &str = "Via";
    let mut c = Cursor::new(trim_lws(value));
    let protocol = via_token(&mut c);
    if protocol.is_empty() || !c.eat('/') {
        return Err(invalid(W, "malformed sent-protocol"));
    }
    c.skip_ws();
    let version = via_token(&mut c);
    if version.is_empty() || !c.eat('/') {
        return Err(invalid(W, "malformed sent-protocol"));
    }
    c.skip_ws();
    let transport = c.take_while(|ch| ch.is_ascii() && is_token_byte(ch as u8));
    if transport.is_empty() {
        return Err(invalid(W, "missing transport"));
    }
    if !c.skip_ws() {
        return Err(invalid(W, "missing whitespace before sent-by"));
    }
    let host = if c.peek() == Some('[') {
        let h = c.take_while(|ch| ch != ']');
        if !c.eat(']') {
            return Err(invalid(W, "unterminated IPv6 reference"));
        }
        let inner = h.get(1..).unwrap_or("");
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(invalid(W, "malformed IPv6 reference"));
        }
        format!("{h}]")
    } else {
        let h = c.take_while(|ch| ch.is_ascii() && is_hostname_byte(ch as u8));
        if h.is_empty() {
            return Err(invalid(W, "missing or malformed sent-by host"));
        }
        h.to_owned()
    };
    c.skip_ws();
    let port = if c.eat(':') {
        c.skip_ws();
        let p = c.take_while(|ch| ch.is_ascii_digit());
        match parse_port(p) {
            Some(p) => Some(p),
            None => return Err(invalid(W, "malformed port")),
        }
    } else {
        None
    };
    let params = parse_params(&mut c, W)?;
    Ok(Via {
        transport: transport.to_ascii_uppercase(),
        host,
        port,
        params,
    })
}

// ───────────────────────────── CSeq ─────────────────────────────

/// A CSeq value (§20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

pub(super) const CSEQ_TOO_LARGE: &str = "sequence number larger than 2**32-1";

/// Parse `1*DIGIT LWS Method`; the number must fit in 32 bits (RFC 4475 §3.1.2.4/5).
pub fn parse_cseq(value: &str) -> Result<CSeq, ParseError> {
    const W: &str = "CSeq";
    let mut c = Cursor::new(trim_lws(value));
    let digits = c.take_while(|ch| ch.is_ascii_digit());
    if digits.is_empty() {
        return Err(invalid(W, "missing sequence number"));
    }
    let significant = digits.trim_start_matches('0');
    let seq = if significant.len() > 10 {
        None
    } else if significant.is_empty() {
        Some(0)
    } else {
        significant
            .parse::<u64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
    };
    let Some(seq) = seq else {
        return Err(invalid(W, CSEQ_TOO_LARGE));
    };
    if !c.skip_ws() {
        return Err(invalid(W, "missing whitespace before the method"));
    }
    let method = c.take_while(|ch| ch.is_ascii() && is_token_byte(ch as u8));
    if method.is_empty() || !c.rest().trim().is_empty() {
        return Err(invalid(W, "malformed method"));
    }
    Ok(CSeq {
        seq,
        method: Method::parse(method),
    })
}
