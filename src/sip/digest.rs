//! HTTP Digest authentication for SIP clients (RFC 3261 §22.4, RFC 2617, RFC 7616, and
//! RFC 8760 for SHA-256 / SHA-512-256 in SIP).
//!
//! What it does: parses a `WWW-Authenticate` / `Proxy-Authenticate` challenge, computes the
//! response for MD5, SHA-256 and SHA-512-256 (plain and `-sess`) with `qop=auth`,
//! `qop=auth-int` or no qop, and writes the `Authorization` / `Proxy-Authorization` value.
//! Pure functions: the caller supplies the client nonce.
//!
//! What it deliberately does not do: act as a server (ivrflow never challenges), keep
//! nonce counts across challenges (each challenge is answered once, `nc=00000001`), or
//! support schemes other than Digest (a challenge in another scheme is an error).

use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};

/// Hash algorithm of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }

    fn hash(self, data: &[u8]) -> String {
        fn hex(bytes: &[u8]) -> String {
            let mut s = String::with_capacity(bytes.len() * 2);
            for b in bytes {
                let _ = write!(s, "{b:02x}");
            }
            s
        }
        match self {
            Algorithm::Md5 => hex(&Md5::digest(data)),
            Algorithm::Sha256 => hex(&Sha256::digest(data)),
            Algorithm::Sha512_256 => hex(&Sha512_256::digest(data)),
        }
    }
}

/// Quality of protection chosen for the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    Auth,
    AuthInt,
}

/// A parsed Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// `-sess` variant of the algorithm.
    pub session: bool,
    /// The qop values offered (empty: RFC 2069 compatibility, no qop).
    pub qop: Vec<Qop>,
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    #[error("challenge is not in the Digest scheme")]
    NotDigest,
    #[error("challenge lacks {0}")]
    Missing(&'static str),
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("challenge offers only qop values we do not support: {0:?}")]
    UnsupportedQop(String),
    #[error("malformed challenge: {0}")]
    Malformed(String),
}

/// Split `k=v, k="v, with comma", …` into pairs; quoted values are unescaped.
fn params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(DigestError::Malformed(format!(
                "parameter {key:?} has no value"
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(DigestError::Malformed(format!(
                    "unterminated quote in {key:?}"
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.push((key.to_ascii_lowercase(), value));
    }
}

impl Challenge {
    /// Parse a `WWW-Authenticate` / `Proxy-Authenticate` header value.
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(DigestError::NotDigest);
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = (Algorithm::Md5, false);
        let mut qop = Vec::new();
        let mut qop_seen = None;
        let mut stale = false;
        for (k, v) in params(rest)? {
            match k.as_str() {
                "realm" => realm = Some(v),
                "nonce" => nonce = Some(v),
                "opaque" => opaque = Some(v),
                "stale" => stale = v.eq_ignore_ascii_case("true"),
                "algorithm" => {
                    let upper = v.to_ascii_uppercase();
                    let (base, sess) = match upper.strip_suffix("-SESS") {
                        Some(b) => (b.to_owned(), true),
                        None => (upper.clone(), false),
                    };
                    let alg = match base.as_str() {
                        "MD5" => Algorithm::Md5,
                        "SHA-256" => Algorithm::Sha256,
                        "SHA-512-256" => Algorithm::Sha512_256,
                        _ => return Err(DigestError::UnsupportedAlgorithm(v)),
                    };
                    algorithm = (alg, sess);
                }
                "qop" => {
                    for q in v.split(',').map(str::trim) {
                        match q.to_ascii_lowercase().as_str() {
                            "auth" => qop.push(Qop::Auth),
                            "auth-int" => qop.push(Qop::AuthInt),
                            _ => {}
                        }
                    }
                    qop_seen = Some(v);
                }
                _ => {}
            }
        }
        if let Some(q) = qop_seen
            && qop.is_empty()
        {
            return Err(DigestError::UnsupportedQop(q));
        }
        Ok(Challenge {
            realm: realm.ok_or(DigestError::Missing("realm"))?,
            nonce: nonce.ok_or(DigestError::Missing("nonce"))?,
            opaque,
            algorithm: algorithm.0,
            session: algorithm.1,
            qop,
            stale,
        })
    }
}

/// What a response is computed over.
#[derive(Debug, Clone)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    /// The Request-URI, exactly as in the request line.
    pub uri: &'a str,
    /// The message body (for `auth-int`).
    pub body: &'a [u8],
}

/// Compute the header value answering `challenge`. `cnonce` must be fresh and random per
/// challenge (the caller's RNG). Prefers `auth` over `auth-int` when both are offered.
pub fn authorization(challenge: &Challenge, creds: &Credentials<'_>, cnonce: &str) -> String {
    let alg = challenge.algorithm;
    let qop = if challenge.qop.contains(&Qop::Auth) {
        Some(Qop::Auth)
    } else {
        challenge.qop.first().copied()
    };
    let nc = "00000001";
    let mut ha1 =
        alg.hash(format!("{}:{}:{}", creds.username, challenge.realm, creds.password).as_bytes());
    if challenge.session {
        ha1 = alg.hash(format!("{ha1}:{}:{cnonce}", challenge.nonce).as_bytes());
    }
    let ha2 = match qop {
        Some(Qop::AuthInt) => {
            alg.hash(format!("{}:{}:{}", creds.method, creds.uri, alg.hash(creds.body)).as_bytes())
        }
        _ => alg.hash(format!("{}:{}", creds.method, creds.uri).as_bytes()),
    };
    let response = match qop {
        Some(q) => {
            let q = if q == Qop::Auth { "auth" } else { "auth-int" };
            alg.hash(format!("{ha1}:{}:{nc}:{cnonce}:{q}:{ha2}", challenge.nonce).as_bytes())
        }
        None => alg.hash(format!("{ha1}:{}:{ha2}", challenge.nonce).as_bytes()),
    };
    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}{}",
        quote(creds.username),
        quote(&challenge.realm),
        quote(&challenge.nonce),
        quote(creds.uri),
        alg.name(),
        if challenge.session { "-sess" } else { "" },
    );
    if let Some(q) = qop {
        let q = if q == Qop::Auth { "auth" } else { "auth-int" };
        let _ = write!(out, ", qop={q}, nc={nc}, cnonce=\"{}\"", quote(cnonce));
    }
    if let Some(o) = &challenge.opaque {
        let _ = write!(out, ", opaque=\"{}\"", quote(o));
    }
    out
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_of(header: &str) -> String {
        let start = header.find("response=\"").unwrap() + "response=\"".len();
        header[start..start + header[start..].find('"').unwrap()].to_owned()
    }

    /// RFC 2617 §3.5.
    #[test]
    fn rfc2617_example() {
        let c = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
        let creds = Credentials {
            username: "Mufasa",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        };
        let h = authorization(&c, &creds, "0a4f113b");
        assert_eq!(response_of(&h), "6629fae49393a05397450978507c4ef1");
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
        assert!(h.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""));
    }

    /// RFC 7616 §3.9.1, both algorithms.
    #[test]
    fn rfc7616_examples_md5_and_sha256() {
        let creds = Credentials {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            body: b"",
        };
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let base = "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let md5 = Challenge::parse(&format!("Digest {base}, algorithm=MD5")).unwrap();
        assert_eq!(
            response_of(&authorization(&md5, &creds, cnonce)),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = Challenge::parse(&format!("Digest {base}, algorithm=SHA-256")).unwrap();
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        assert_eq!(
            response_of(&authorization(&sha, &creds, cnonce)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn session_and_auth_int_follow_the_rfc_formulas() {
        // Computed independently: HA1 = MD5(MD5(u:r:p):nonce:cnonce); HA2 = MD5(m:uri:MD5(body)).
        let c = Challenge::parse(
            "Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess, qop=\"auth-int\"",
        )
        .unwrap();
        assert!(c.session);
        let creds = Credentials {
            username: "u",
            password: "p",
            method: "INVITE",
            uri: "sip:100@example.com",
            body: b"v=0\r\n",
        };
        let h = authorization(&c, &creds, "c");
        let a = Algorithm::Md5;
        let ha1 = a.hash(format!("{}:n:c", a.hash(b"u:r:p")).as_bytes());
        let ha2 = a.hash(format!("INVITE:sip:100@example.com:{}", a.hash(b"v=0\r\n")).as_bytes());
        let want = a.hash(format!("{ha1}:n:00000001:c:auth-int:{ha2}").as_bytes());
        assert_eq!(response_of(&h), want);
        assert!(h.contains("algorithm=MD5-sess"));
    }

    #[test]
    fn no_qop_is_rfc2069_style() {
        let c = Challenge::parse("Digest realm=\"r\", nonce=\"n\"").unwrap();
        let creds = Credentials {
            username: "u",
            password: "p",
            method: "REGISTER",
            uri: "sip:example.com",
            body: b"",
        };
        let h = authorization(&c, &creds, "c");
        let a = Algorithm::Md5;
        let want = a.hash(
            format!(
                "{}:n:{}",
                a.hash(b"u:r:p"),
                a.hash(b"REGISTER:sip:example.com")
            )
            .as_bytes(),
        );
        assert_eq!(response_of(&h), want);
        assert!(!h.contains("qop="));
    }

    #[test]
    fn bad_challenges_are_errors() {
        assert_eq!(
            Challenge::parse("Basic realm=\"x\""),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(DigestError::Missing("realm"))
        );
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1"),
            Err(DigestError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"weird\""),
            Err(DigestError::UnsupportedQop(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"r"),
            Err(DigestError::Malformed(_))
        ));
        let sha512 =
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256").unwrap();
        assert_eq!(sha512.algorithm, Algorithm::Sha512_256);
    }
}
