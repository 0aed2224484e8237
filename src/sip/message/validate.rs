//! Request and response validation for a user agent (RFC 3261 §8.2, the RFC 4475 verdicts).

use super::*;
// ───────────────────────────── validation ─────────────────────────────

/// Why a request must be answered with an error instead of being processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// Reason phrase for the response; fixed text, never peer data.
    pub reason: String,
    /// Extra headers for the response.
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    fn new(status: u16, reason: &str) -> Self {
        Rejection {
            status,
            reason: reason.to_owned(),
            headers: Vec::new(),
        }
    }

    fn bad(reason: &str) -> Self {
        Rejection::new(400, reason)
    }

    /// [`response_skeleton`] for `req` with this status, reason and extra headers.
    pub fn to_response(&self, req: &Request) -> Response {
        let mut resp = response_skeleton(req, self.status, &self.reason);
        for (n, v) in &self.headers {
            resp.headers.push(n, v.clone());
        }
        resp
    }
}

/// Headers that may appear at most once (§7.3.1, §20; RFC 4475 §3.3.8/3.3.9).
const SINGLE_VALUE_HEADERS: &[&str] = &[
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

const MANDATORY_HEADERS: &[&str] = &["Via", "From", "To", "Call-ID", "CSeq"];

fn is_sip_2_0(version: &str) -> bool {
    version.eq_ignore_ascii_case("SIP/2.0")
}

/// The checks shared by requests and responses: mandatory and single-value headers,
/// Content-Length, Call-ID, Via, From, To. Returns a 400 reason phrase.
fn check_common(headers: &Headers, body: &[u8]) -> Result<Option<CSeq>, &'static str> {
    for name in MANDATORY_HEADERS {
        if headers.get(name).is_none() {
            return Err(match *name {
                "Via" => "Bad Request (missing Via)",
                "From" => "Bad Request (missing From)",
                "To" => "Bad Request (missing To)",
                "Call-ID" => "Bad Request (missing Call-ID)",
                _ => "Bad Request (missing CSeq)",
            });
        }
    }
    for name in SINGLE_VALUE_HEADERS {
        if headers.count(name) > 1 {
            return Err(match *name {
                "From" => "Bad Request (multiple From)",
                "To" => "Bad Request (multiple To)",
                "Call-ID" => "Bad Request (multiple Call-ID)",
                "CSeq" => "Bad Request (multiple CSeq)",
                "Max-Forwards" => "Bad Request (multiple Max-Forwards)",
                "Content-Length" => "Bad Request (multiple Content-Length)",
                _ => "Bad Request (multiple Content-Type)",
            });
        }
    }
    // §18.3, §20.14: RFC 4475 §3.1.2.2, §3.1.2.3.
    if let Some(cl) = headers.get("Content-Length") {
        match parse_content_length(cl) {
            None => return Err("Bad Request (malformed Content-Length)"),
            Some(n) if n > body.len() => {
                return Err("Bad Request (Content-Length larger than the message)");
            }
            Some(_) => {}
        }
    }
    let call_id = headers.get("Call-ID").unwrap_or("");
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err("Bad Request (malformed Call-ID)");
    }
    let cseq = headers
        .get("CSeq")
        .map(parse_cseq)
        .transpose()
        .map_err(|e| match e {
            ParseError::Invalid {
                reason: CSEQ_TOO_LARGE,
                ..
            } => "Bad Request (CSeq number larger than 2**32-1)",
            _ => "Bad Request (malformed CSeq)",
        })?;
    // RFC 4475 §3.1.2.1: empty elements are extraneous separators.
    for line in headers.lines("Via") {
        for v in ListSplit::new(line) {
            if v.is_empty() || parse_via(v).is_err() {
                return Err("Bad Request (malformed Via)");
            }
        }
    }
    if headers
        .get("From")
        .map(parse_name_addr)
        .is_some_and(|r| r.is_err())
    {
        return Err("Bad Request (malformed From)");
    }
    if headers
        .get("To")
        .map(parse_name_addr)
        .is_some_and(|r| r.is_err())
    {
        return Err("Bad Request (malformed To)");
    }
    Ok(cseq)
}

/// RFC 3261 §8.2 / RFC 4475 wire-level validation of a request for a UA (not a proxy).
///
/// In order: SIP version (505); mandatory Via/From/To/Call-ID/CSeq (400); single-value
/// headers present more than once (400); Content-Length malformed, negative or larger than
/// the datagram (400); Call-ID; CSeq number range (400) and method — a mismatch is 501 when
/// the start-line method is unknown (RFC 4475 §3.1.2.18), else 400; Via values, including
/// empty list elements (400); From/To/Contact syntax (400); Request-URI syntax (400: `<…>`,
/// whitespace, bad sip URI, escaped headers in a sip Request-URI).
///
/// A well-formed URI of an unsupported scheme passes; so do unknown methods, Require, bad
/// Content-Type, Accept, Max-Forwards values: those are UA policy decisions.
pub fn validate_request(req: &Request) -> Result<(), Rejection> {
    // §8.2 / RFC 4475 §3.1.2.16.
    if !is_sip_2_0(&req.version) {
        return Err(Rejection::new(505, "Version Not Supported"));
    }
    let cseq = check_common(&req.headers, &req.body).map_err(Rejection::bad)?;
    if let Some(cseq) = cseq
        && cseq.method != req.method
    {
        return Err(match req.method {
            Method::Other(_) => Rejection::new(501, "Not Implemented"),
            _ => Rejection::bad("Bad Request (CSeq method does not match the request)"),
        });
    }
    for line in req.headers.lines("Contact") {
        for v in ListSplit::new(line) {
            let ok = v == "*" || (!v.is_empty() && parse_name_addr(v).is_ok());
            if !ok {
                return Err(Rejection::bad("Bad Request (malformed Contact)"));
            }
        }
    }
    validate_request_uri(&req.uri).map_err(Rejection::bad)
}

pub(super) fn validate_request_uri(uri: &str) -> Result<(), &'static str> {
    if uri.starts_with('<') {
        return Err("Bad Request (Request-URI enclosed in <>)");
    }
    if uri.contains(char::is_whitespace) {
        return Err("Bad Request (whitespace in Request-URI)");
    }
    let parsed = parse_uri(uri).map_err(|_| "Bad Request (malformed Request-URI)")?;
    // §19.1.1 table: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
    if parsed.is_sip() && !parsed.headers.is_empty() {
        return Err("Bad Request (headers in Request-URI)");
    }
    Ok(())
}

/// Whether a received response may be processed; `Err(reason)` means discard it silently
/// (RFC 4475 §3.1.2.5, §3.1.2.19): wrong version, status outside 100..=699, missing or
/// repeated mandatory headers, CSeq out of range, bad Content-Length, unparseable Via,
/// From or To.
pub fn validate_response(resp: &Response) -> Result<(), String> {
    if !is_sip_2_0(&resp.version) {
        return Err("unsupported SIP version".to_owned());
    }
    if !(100..=699).contains(&resp.status) {
        return Err("status code outside 100..=699".to_owned());
    }
    check_common(&resp.headers, &resp.body)
        .map(|_| ())
        .map_err(|reason| {
            reason
                .trim_start_matches("Bad Request (")
                .trim_end_matches(')')
                .to_owned()
        })
}

/// A response to `req` carrying its Via values (all, in order), From, To, Call-ID and CSeq
/// copied raw (§8.2.6.2) — usable even for a request that failed validation, as far as those
/// headers exist. No To tag, Contact or body is added; `to_bytes` writes Content-Length.
pub fn response_skeleton(req: &Request, status: u16, reason: &str) -> Response {
    let mut headers = Headers::new();
    for via in req.headers.lines("Via") {
        headers.push("Via", via);
    }
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(v) = req.headers.lines(name).next() {
            headers.push(name, v);
        }
    }
    Response {
        status,
        reason: reason.to_owned(),
        version: "SIP/2.0".to_owned(),
        headers,
        body: Vec::new(),
    }
}

// ───────────────────────────── tests ─────────────────────────────
