//! SIP wire layer (RFC 3261 §7, §20, §25): framing of one UDP datagram into a [`Message`],
//! header storage with compact-form expansion, lazy typed views of single header values,
//! serialisation, and the wire-level validity checks a user agent makes before any
//! transaction or dialog logic sees a request (RFC 3261 §8.2, RFC 4475).
//!
//! Sans-IO and panic-free: every function takes bytes or strings and returns values; nothing
//! here touches a socket or the clock, and no input — however hostile — makes it panic (a
//! deterministic mutation fuzz over the RFC 4475 torture messages checks that).
//!
//! # Layers
//! 1. [`parse`] frames a datagram: start line, header lines (unfolding LWS continuation lines,
//!    tolerating LWS around `:`, expanding compact names to canonical ones), and a body framed
//!    by `Content-Length` (trailing octets ignored, RFC 3261 §18.3; a missing Content-Length
//!    means "rest of the datagram", §18.3/§20.14). It fails only when the bytes cannot be
//!    framed as SIP at all.
//! 2. [`Headers`] keeps every header as `(canonical name, raw value)` in wire order. Typed views
//!    ([`parse_uri`], [`parse_name_addr`], [`parse_via`], [`parse_cseq`]) are parsed on demand
//!    from one raw value, so one odd header never fails a whole message.
//! 3. [`validate_request`] / [`validate_response`] decide whether a framed message is valid
//!    enough for a UA to act on, with the response status RFC 4475 expects (400, 505, 501).
//!
//! # Deliberately not here
//! - UA policy: 501 for unknown methods, 405, 416 for unsupported URI schemes, 420 (Require),
//!   415 (Content-Type), 488 — the UA decides those (`parse_uri` exposes the scheme).
//! - Proxy behaviour (Max-Forwards, Route processing), transactions, dialogs, SDP, auth.
//! - Stream framing (TCP/TLS): only one-datagram-one-message UDP framing is implemented.
//! - URI comparison (§19.1.4) and %-unescaping: URI parts are kept exactly as received
//!   (`%00` stays `%00`; RFC 4475 §3.1.1.4).
//!
//! # rsip
//! This module does not use `rsip`. Its typed accessors do not see compact header forms
//! (`v:`, `i:` …, which §7.3.3 requires), its `Method` has no extension methods (needed for
//! RFC 4475 `intmeth`/`esc02`/`mismatch02`), and framing and validation must follow the
//! RFC 4475 verdicts exactly. A small hand-written parser covering the grammar a UA needs was
//! simpler to make total (no panics) than wrapping rsip's. `rsip` stays available to other
//! modules (e.g. digest auth, which works with MD5/`qop=auth`).
//!
//! # Tolerances chosen (RFC 4475 "REJECT-or-TOLERATE" cases)
//! - Extra SP between request-line elements and trailing SP (lwsstart, trws): tolerated; the
//!   stored `uri` is trimmed, so nothing extra is ever re-sent.
//! - Escaped headers in the Request-URI (escruri): rejected with 400 (§19.1.1 table).
//! - Invalid Date (baddate): tolerated, a UA does not need Date.
//! - Via without an RFC 3261 branch / bare magic cookie (badbranch, inv2543): tolerated; the
//!   transaction layer falls back to RFC 2543 matching.
//! - A header section ending at the end of the datagram without the empty line (the archive
//!   copy of baddn.dat): framed as "no body" so the request can still be answered (400 there).
//! - Bare-LF line ends are accepted; a CR that is not part of a line end is not.

use std::borrow::Cow;
use std::fmt;

// ───────────────────────────── Method ─────────────────────────────

/// A SIP request method (RFC 3261 §7.1, §27.4 and extensions). Case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Refer,
    Notify,
    Update,
    Prack,
    Subscribe,
    Message,
    Publish,
    /// Any other method token, exactly as received (e.g. `RE%47IST%45R`, `invite`).
    Other(String),
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }

    /// Map a method token; matching is case-sensitive (RFC 3261 §7.1), so `"invite"` is
    /// `Other("invite")`. No %-unescaping: `RE%47IST%45R` is not REGISTER.
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ───────────────────────────── errors ─────────────────────────────

/// Why bytes could not be framed as SIP, or why one header value has no typed view.
///
/// Messages never echo peer data (caller numbers are personal data, see `crate::pii`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("datagram holds no SIP message (empty or only CRLF)")]
    Empty,
    #[error("line {line}: malformed start line: {reason}")]
    StartLine { line: usize, reason: &'static str },
    #[error("line {line}: line not terminated by CRLF before the end of the datagram")]
    Unterminated { line: usize },
    #[error("line {line}: CR not followed by LF")]
    BareCr { line: usize },
    #[error("line {line}: header without ':'")]
    MissingColon { line: usize },
    #[error("line {line}: header name is empty or has non-token characters")]
    BadHeaderName { line: usize },
    #[error("line {line}: continuation line (leading whitespace) before the first header")]
    OrphanContinuation { line: usize },
    /// A typed view ([`parse_uri`], [`parse_via`] …) could not parse one header value.
    #[error("invalid {what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
}

fn invalid(what: &'static str, reason: &'static str) -> ParseError {
    ParseError::Invalid { what, reason }
}

// ───────────────────────────── header names ─────────────────────────────

/// Canonical spellings of the header names we know, with their compact forms
/// (RFC 3261 §7.3.3 and §20; RFC 3265/6665, 3515, 3841, 3892, 4028, 4474).
const KNOWN_HEADERS: &[(&str, Option<u8>)] = &[
    ("Accept", None),
    ("Accept-Contact", Some(b'a')),
    ("Accept-Encoding", None),
    ("Accept-Language", None),
    ("Alert-Info", None),
    ("Allow", None),
    ("Allow-Events", Some(b'u')),
    ("Authentication-Info", None),
    ("Authorization", None),
    ("Call-ID", Some(b'i')),
    ("Call-Info", None),
    ("Contact", Some(b'm')),
    ("Content-Disposition", None),
    ("Content-Encoding", Some(b'e')),
    ("Content-Language", None),
    ("Content-Length", Some(b'l')),
    ("Content-Type", Some(b'c')),
    ("CSeq", None),
    ("Date", None),
    ("Error-Info", None),
    ("Event", Some(b'o')),
    ("Expires", None),
    ("From", Some(b'f')),
    ("History-Info", None),
    ("Identity", Some(b'y')),
    ("Identity-Info", Some(b'n')),
    ("In-Reply-To", None),
    ("Max-Forwards", None),
    ("MIME-Version", None),
    ("Min-Expires", None),
    ("Min-SE", None),
    ("Organization", None),
    ("P-Asserted-Identity", None),
    ("P-Preferred-Identity", None),
    ("Path", None),
    ("Priority", None),
    ("Privacy", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("RAck", None),
    ("Reason", None),
    ("Record-Route", None),
    ("Refer-To", Some(b'r')),
    ("Referred-By", Some(b'b')),
    ("Reject-Contact", Some(b'j')),
    ("Replaces", None),
    ("Reply-To", None),
    ("Request-Disposition", Some(b'd')),
    ("Require", None),
    ("Retry-After", None),
    ("Route", None),
    ("RSeq", None),
    ("Server", None),
    ("Service-Route", None),
    ("Session-Expires", Some(b'x')),
    ("SIP-ETag", None),
    ("SIP-If-Match", None),
    ("Subject", Some(b's')),
    ("Subscription-State", None),
    ("Supported", Some(b'k')),
    ("Timestamp", None),
    ("To", Some(b't')),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Via", Some(b'v')),
    ("Warning", None),
    ("WWW-Authenticate", None),
];

/// Headers whose values are comma-separated lists (RFC 3261 §7.3.1: "field-name: field-value
/// *(,field-value)"). Authorization-style headers, Date, Retry-After … are not lists: their
/// values contain commas.
const LIST_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Call-Info",
    "Contact",
    "Content-Encoding",
    "Content-Language",
    "Error-Info",
    "History-Info",
    "In-Reply-To",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Path",
    "Proxy-Require",
    "Record-Route",
    "Reject-Contact",
    "Request-Disposition",
    "Require",
    "Route",
    "Service-Route",
    "Supported",
    "Unsupported",
    "Via",
    "Warning",
];

/// The canonical name for `name`: compact forms expand ("v" → "Via"), known names get their
/// canonical spelling ("cseq" → "CSeq"), unknown names are returned unchanged.
pub fn canonical_name(name: &str) -> Cow<'_, str> {
    if let [c] = name.as_bytes() {
        let c = c.to_ascii_lowercase();
        if let Some((full, _)) = KNOWN_HEADERS
            .iter()
            .find(|(_, compact)| *compact == Some(c))
        {
            return Cow::Borrowed(full);
        }
    }
    match KNOWN_HEADERS
        .iter()
        .find(|(full, _)| full.eq_ignore_ascii_case(name))
    {
        Some((full, _)) => Cow::Borrowed(full),
        None => Cow::Borrowed(name),
    }
}

fn is_list_header(canonical: &str) -> bool {
    LIST_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(canonical))
}

// ───────────────────────────── Headers ─────────────────────────────

/// Header fields as `(canonical name, raw value)` in wire order. Values are unfolded and
/// trimmed but otherwise exactly as received; typed views parse them on demand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Number of header field lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether at least one field line named `name` exists (even with an empty value).
    pub fn contains(&self, name: &str) -> bool {
        let canon = canonical_name(name);
        self.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(&canon))
    }

    /// The first value of `name`. Names match case-insensitively and compact forms are
    /// equivalent. For list headers (Via, Contact, Route …) this is the first non-empty
    /// comma-separated element, e.g. the topmost Via.
    pub fn get(&self, name: &str) -> Option<&str> {
        let canon = canonical_name(name);
        let list = is_list_header(&canon);
        let mut lines = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(&canon))
            .map(|(_, v)| v.as_str());
        if list {
            lines.find_map(|v| ListSplit::new(v).find(|p| !p.is_empty()))
        } else {
            lines.next()
        }
    }

    /// Every value of `name` in wire order. List headers are split at commas that are not
    /// inside a quoted string or `<…>`; empty elements are skipped.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let canon = canonical_name(name);
        let list = is_list_header(&canon);
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(&canon))
            .flat_map(move |(_, v)| ValueIter::new(v, list))
    }

    /// The raw value of every field line named `name`, unsplit, in wire order.
    pub fn lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let canon = canonical_name(name);
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(&canon))
            .map(|(_, v)| v.as_str())
    }

    /// Number of values: field lines, or split elements for list headers.
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// Append a field line; the name is stored in canonical form.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0
            .push((canonical_name(name).into_owned(), value.into()));
    }

    /// Replace every `name` line with one line holding `value`, at the position of the first
    /// one (appended when there was none).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let canon = canonical_name(name).into_owned();
        let value = value.into();
        match self
            .0
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(&canon))
        {
            Some(first) => {
                let mut index = 0;
                self.0.retain(|(k, _)| {
                    let keep = index == first || !k.eq_ignore_ascii_case(&canon);
                    index += 1;
                    keep
                });
                if let Some(slot) = self.0.get_mut(first) {
                    *slot = (canon, value);
                }
            }
            None => self.0.push((canon, value)),
        }
    }

    /// Remove every `name` line.
    pub fn remove(&mut self, name: &str) {
        let canon = canonical_name(name).into_owned();
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(&canon));
    }

    /// All field lines as `(name, raw value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Yields a whole value once, or the non-empty elements of a list value.
struct ValueIter<'a> {
    whole: Option<&'a str>,
    split: Option<ListSplit<'a>>,
}

impl<'a> ValueIter<'a> {
    fn new(v: &'a str, list: bool) -> Self {
        if list {
            ValueIter {
                whole: None,
                split: Some(ListSplit::new(v)),
            }
        } else {
            ValueIter {
                whole: Some(v),
                split: None,
            }
        }
    }
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        if let Some(w) = self.whole.take() {
            return Some(w);
        }
        self.split.as_mut()?.find(|p| !p.is_empty())
    }
}

/// Splits a list value at top-level commas (not in a quoted string, not in `<…>`), yielding
/// trimmed elements including empty ones (callers decide what an empty element means).
struct ListSplit<'a> {
    rest: Option<&'a str>,
}

impl<'a> ListSplit<'a> {
    fn new(v: &'a str) -> Self {
        ListSplit { rest: Some(v) }
    }
}

impl<'a> Iterator for ListSplit<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        match top_level_comma(s) {
            Some(i) => {
                let (piece, tail) = cut(s, i);
                self.rest = Some(tail.get(1..).unwrap_or(""));
                Some(trim_lws(piece))
            }
            None => {
                self.rest = None;
                Some(trim_lws(s))
            }
        }
    }
}

fn top_level_comma(s: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    for (i, b) in s.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => return Some(i),
            _ => {}
        }
    }
    None
}

// ───────────────────────────── messages ─────────────────────────────

/// A SIP request as framed from the wire (or built by us).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The Request-URI text, trimmed, exactly as received.
    pub uri: String,
    pub version: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response as framed from the wire (or built by us).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code; a received code too large for `u16` (or with more than 3 digits) is
    /// stored as `u16::MAX`, which [`validate_response`] rejects.
    pub status: u16,
    pub reason: String,
    pub version: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Either kind of SIP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Request {
    /// Serialise (RFC 3261 §7): CRLF line ends, one line per header, `Content-Length` set to
    /// `body.len()` (at the place of the first existing one, else last). CR and LF inside
    /// names and values are written as SP, so a value can never inject a header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("{} {} {}", self.method, self.uri, self.version);
        write_message(&start, &self.headers, &self.body)
    }
}

impl Response {
    /// Serialise; see [`Request::to_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("{} {} {}", self.version, self.status, self.reason);
        write_message(&start, &self.headers, &self.body)
    }
}

impl Message {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }
}

impl From<Request> for Message {
    fn from(r: Request) -> Self {
        Message::Request(r)
    }
}

impl From<Response> for Message {
    fn from(r: Response) -> Self {
        Message::Response(r)
    }
}

fn push_sanitized(out: &mut Vec<u8>, s: &str) {
    out.extend(
        s.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
}

fn write_message(start: &str, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len() + headers.0.len() * 48);
    push_sanitized(&mut out, start);
    out.extend_from_slice(b"\r\n");
    let content_length = format!("Content-Length: {}\r\n", body.len());
    let mut wrote_length = false;
    for (name, value) in &headers.0 {
        if name.eq_ignore_ascii_case("Content-Length") {
            if !wrote_length {
                out.extend_from_slice(content_length.as_bytes());
                wrote_length = true;
            }
            continue;
        }
        push_sanitized(&mut out, name);
        out.extend_from_slice(b": ");
        push_sanitized(&mut out, value);
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_length {
        out.extend_from_slice(content_length.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

// ───────────────────────────── framing ─────────────────────────────

/// One line of the datagram: its content (without CR LF), where the next line starts, and
/// whether it ended with LF.
fn next_line(d: &[u8], pos: usize) -> (&[u8], usize, bool) {
    let rest = d.get(pos..).unwrap_or(&[]);
    match rest.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let line = rest.get(..nl).unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, pos + nl + 1, true)
        }
        None => {
            let line = rest.strip_suffix(b"\r").unwrap_or(rest);
            (line, d.len(), false)
        }
    }
}

fn is_lws_byte(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// `split_at` that never panics: out-of-range or mid-character indices keep everything left.
fn cut(s: &str, i: usize) -> (&str, &str) {
    s.split_at_checked(i).unwrap_or((s, ""))
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Parse one UDP datagram.
///
/// `Err` only when the bytes cannot be framed as SIP at all (no start line, binary garbage,
/// a header line without ':', a line cut off mid-way …): the caller drops the datagram with a
/// debug log. Everything that can be framed is returned, even if semantically invalid; see
/// [`validate_request`] / [`validate_response`].
///
/// - Leading CRLFs are skipped (§7.5); header continuation lines are unfolded into one SP
///   (§7.3.1); LWS around ':' is tolerated; names are stored in canonical form (§7.3.3).
/// - Body (§18.3): exactly `Content-Length` octets, trailing octets ignored; no
///   Content-Length → the rest of the datagram; a Content-Length larger than what arrived →
///   everything that arrived (validation answers 400); an unparseable, negative or repeated
///   Content-Length → empty body (never used as a count; validation answers 400).
pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
    let mut pos = 0;
    let mut line_no = 1;
    while let Some(&b) = datagram.get(pos) {
        match b {
            b'\n' => line_no += 1,
            b'\r' => {}
            _ => break,
        }
        pos += 1;
    }
    if pos >= datagram.len() {
        return Err(ParseError::Empty);
    }

    let (start, mut pos, terminated) = next_line(datagram, pos);
    if !terminated {
        return Err(ParseError::Unterminated { line: line_no });
    }
    let start_line_no = line_no;
    let start = String::from_utf8_lossy(start);
    if start.contains(|c: char| c.is_control() && c != '\t') {
        return Err(ParseError::StartLine {
            line: start_line_no,
            reason: "control character",
        });
    }

    let kind = if start
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
    {
        let (status, reason, version) = parse_status_line(&start, start_line_no)?;
        StartLine::Response(status, reason, version)
    } else {
        let (method, uri, version) = parse_request_line(&start, start_line_no)?;
        StartLine::Request(method, uri, version)
    };

    // Header section (§7.3).
    let mut headers = Headers::new();
    let body_start;
    loop {
        if pos >= datagram.len() {
            // Headers end with the datagram and no empty line (archive copy of baddn.dat).
            body_start = datagram.len();
            break;
        }
        let (line, next, terminated) = next_line(datagram, pos);
        line_no += 1;
        if line.is_empty() {
            body_start = next;
            break;
        }
        if !terminated {
            return Err(ParseError::Unterminated { line: line_no });
        }
        if line.contains(&b'\r') {
            return Err(ParseError::BareCr { line: line_no });
        }
        pos = next;
        let text = String::from_utf8_lossy(line);
        if line.first().copied().is_some_and(is_lws_byte) {
            // Continuation line: LWS folding, equivalent to one SP (§7.3.1).
            let Some((_, value)) = headers.0.last_mut() else {
                return Err(ParseError::OrphanContinuation { line: line_no });
            };
            let more = trim_lws(&text);
            if !more.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        let Some(colon) = text.find(':') else {
            return Err(ParseError::MissingColon { line: line_no });
        };
        let (name, value) = cut(&text, colon);
        let name = trim_lws(name);
        if !is_token(name) {
            return Err(ParseError::BadHeaderName { line: line_no });
        }
        let value = trim_lws(value.get(1..).unwrap_or(""));
        headers.push(name, value);
    }

    // Body (§18.3, §20.14).
    let rest = datagram.get(body_start..).unwrap_or(&[]);
    let body = {
        let mut lengths = headers.lines("Content-Length");
        match (lengths.next(), lengths.next()) {
            (None, _) => rest.to_vec(),
            (Some(v), None) => match parse_content_length(v) {
                Some(n) => rest.get(..n).unwrap_or(rest).to_vec(),
                None => Vec::new(),
            },
            (Some(_), Some(_)) => Vec::new(),
        }
    };

    Ok(match kind {
        StartLine::Request(method, uri, version) => Message::Request(Request {
            method,
            uri,
            version,
            headers,
            body,
        }),
        StartLine::Response(status, reason, version) => Message::Response(Response {
            status,
            reason,
            version,
            headers,
            body,
        }),
    })
}

enum StartLine {
    Request(Method, String, String),
    Response(u16, String, String),
}

/// `Content-Length` as a count, or `None` when it is not a plain non-negative number.
fn parse_content_length(v: &str) -> Option<usize> {
    let v = trim_lws(v);
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u64>().ok().and_then(|n| usize::try_from(n).ok())
}

/// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2).
fn parse_status_line(line: &str, line_no: usize) -> Result<(u16, String, String), ParseError> {
    let bad = |reason| ParseError::StartLine {
        line: line_no,
        reason,
    };
    let (version, rest) = match line.find([' ', '\t']) {
        Some(i) => cut(line, i),
        None => return Err(bad("status line without status code")),
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let (code, reason) = match rest.find([' ', '\t']) {
        Some(i) => cut(rest, i),
        None => (rest, ""),
    };
    if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("status code is not a number"));
    }
    // Status-Code = 3DIGIT: anything longer is out of range (bigcode.dat).
    let status = if code.len() > 3 {
        u16::MAX
    } else {
        code.parse::<u16>().unwrap_or(u16::MAX)
    };
    Ok((status, trim_lws(reason).to_owned(), version.to_owned()))
}

/// Request-Line = Method SP Request-URI SP SIP-Version (§7.1). Extra SP between the elements
/// and trailing SP are tolerated (RFC 4475 §3.1.2.9/10); whitespace inside the URI is kept so
/// validation can reject it (§3.1.2.8).
fn parse_request_line(line: &str, line_no: usize) -> Result<(Method, String, String), ParseError> {
    let bad = |reason| ParseError::StartLine {
        line: line_no,
        reason,
    };
    let line = trim_lws(line);
    let (method, rest) = match line.find([' ', '\t']) {
        Some(i) => cut(line, i),
        None => {
            return Err(bad(
                "request line needs Method, Request-URI and SIP-Version",
            ));
        }
    };
    if !is_token(method) {
        return Err(bad("method is not a token"));
    }
    let rest = trim_lws(rest);
    let (uri, version) = match rest.rfind([' ', '\t']) {
        Some(i) => {
            let (u, v) = cut(rest, i);
            (trim_lws(u), trim_lws(v))
        }
        None => ("", rest),
    };
    let is_sip_version = version.len() > 4
        && version
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"));
    if !is_sip_version {
        return Err(bad("missing SIP-Version at the end of the request line"));
    }
    if uri.is_empty() {
        return Err(bad("missing Request-URI"));
    }
    Ok((Method::parse(method), uri.to_owned(), version.to_owned()))
}

mod typed;
mod validate;

pub use typed::*;
pub use validate::*;

#[cfg(test)]
mod tests;
