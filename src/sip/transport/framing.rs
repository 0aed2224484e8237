//! Message framing on a byte stream (RFC 3261 §18.3): a SIP message over TCP or TLS ends
//! where its `Content-Length` says, and every message on a stream must carry one.
//!
//! What it does: collects bytes as they arrive, yields whole messages, answers RFC 5626
//! keep-alive pings (a double CRLF gets a single CRLF back), and refuses a peer that sends
//! a header section or a body beyond the limits, or a message without a usable
//! `Content-Length` — the connection is then closed, never a panic, never unbounded memory.
//!
//! What it does not do: parse anything but the framing headers (the message goes whole to
//! `sip::message`), or reassemble UDP datagrams (each is a message of its own).

/// Limits on what one peer may make us hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Start line and headers, with the blank line.
    pub max_header: usize,
    /// The body (`Content-Length`).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header: 16 * 1024,
            max_body: 64 * 1024,
        }
    }
}

/// Why a stream was given up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    #[error("header section longer than {0} bytes")]
    HeaderTooLong(usize),
    #[error("Content-Length {len} over the limit of {max} bytes")]
    BodyTooLong { len: usize, max: usize },
    #[error("message without Content-Length on a stream (RFC 3261 §18.3)")]
    NoContentLength,
    #[error("unparseable Content-Length {0:?}")]
    BadContentLength(String),
}

/// What the framer found in the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One whole SIP message.
    Message(Vec<u8>),
    /// A keep-alive ping (CRLFCRLF): answer with [`PONG`].
    Ping,
}

/// The answer to a keep-alive ping (RFC 5626 §3.5.1).
pub const PONG: &[u8] = b"\r\n";

/// Reassembles messages from one stream.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    limits: Limits,
    /// Once failed, the stream is dead: every later call returns the same error.
    failed: Option<FramingError>,
}

impl Framer {
    pub fn new(limits: Limits) -> Framer {
        Framer {
            buf: Vec::new(),
            limits,
            failed: None,
        }
    }

    /// Bytes held waiting for the rest of a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Adds received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The next whole message or ping, `Ok(None)` when more bytes are needed, or why the
    /// stream must be closed.
    pub fn poll(&mut self) -> Result<Option<Frame>, FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.poll_inner();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
        }
        r
    }

    fn poll_inner(&mut self) -> Result<Option<Frame>, FramingError> {
        // CRLFs between messages: a double CRLF is a ping; a lone CRLF a pong (ignored).
        let lead = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if lead > 0 {
            if lead == self.buf.len() && self.buf.len() < 4 {
                // "\r\n" may be the start of a ping ("\r\n\r\n"): wait. A lone pong
                // (we send no pings, so none is expected) is dropped with the next message.
                return Ok(None);
            }
            let ping = self.buf[..lead].windows(4).any(|w| w == b"\r\n\r\n");
            self.buf.drain(..lead);
            if ping {
                return Ok(Some(Frame::Ping));
            }
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let Some(end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > self.limits.max_header {
                return Err(FramingError::HeaderTooLong(self.limits.max_header));
            }
            return Ok(None);
        };
        let header_len = end + 4;
        if header_len > self.limits.max_header {
            return Err(FramingError::HeaderTooLong(self.limits.max_header));
        }
        let body = content_length(&self.buf[..end])?;
        if body > self.limits.max_body {
            return Err(FramingError::BodyTooLong {
                len: body,
                max: self.limits.max_body,
            });
        }
        let total = header_len + body;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
        Ok(Some(Frame::Message(msg)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of `Content-Length` (or its compact form `l`) in a header section, folded
/// lines included. Exactly one value; several differing ones are refused.
fn content_length(headers: &[u8]) -> Result<usize, FramingError> {
    let text = String::from_utf8_lossy(headers);
    let mut found: Option<usize> = None;
    // Skip the start line; header lines may be folded (a continuation starts with SP/HT).
    for line in text.split("\r\n").skip(1) {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim_end();
        if !(name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")) {
            continue;
        }
        let v = value.trim();
        let n: usize = if !v.is_empty() && v.len() <= 9 && v.bytes().all(|b| b.is_ascii_digit()) {
            v.parse()
                .map_err(|_| FramingError::BadContentLength(v.to_owned()))?
        } else {
            return Err(FramingError::BadContentLength(v.chars().take(20).collect()));
        };
        if found.is_some_and(|f| f != n) {
            return Err(FramingError::BadContentLength(
                "two different values".to_owned(),
            ));
        }
        found = Some(n);
    }
    found.ok_or(FramingError::NoContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
    const INVITE: &[u8] = b"INVITE sip:a@b SIP/2.0\r\nl: 5\r\nVia: SIP/2.0/TCP h\r\n\r\nhello";

    fn all(f: &mut Framer) -> Result<Vec<Frame>, FramingError> {
        let mut v = Vec::new();
        while let Some(fr) = f.poll()? {
            v.push(fr);
        }
        Ok(v)
    }

    #[test]
    fn messages_split_and_joined_anyhow() {
        let mut stream = Vec::new();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(INVITE);
        stream.extend_from_slice(OPTIONS);
        for chunk in [1, 2, 7, 50, stream.len()] {
            let mut f = Framer::new(Limits::default());
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                f.push(c);
                got.extend(all(&mut f).unwrap());
            }
            assert_eq!(
                got,
                vec![
                    Frame::Message(OPTIONS.to_vec()),
                    Frame::Ping,
                    Frame::Message(INVITE.to_vec()),
                    Frame::Message(OPTIONS.to_vec())
                ],
                "chunk {chunk}"
            );
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn a_lone_crlf_before_a_message_is_skipped() {
        let mut f = Framer::new(Limits::default());
        f.push(b"\r\n");
        assert_eq!(f.poll(), Ok(None));
        f.push(OPTIONS);
        assert_eq!(all(&mut f), Ok(vec![Frame::Message(OPTIONS.to_vec())]));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn limits_and_bad_lengths_close_the_stream() {
        let limits = Limits {
            max_header: 100,
            max_body: 10,
        };
        let mut f = Framer::new(limits);
        f.push(&[b'A'; 101]);
        assert_eq!(f.poll(), Err(FramingError::HeaderTooLong(100)));
        f.push(OPTIONS);
        assert!(f.poll().is_err(), "a failed stream stays failed");
        assert_eq!(f.buffered(), 0);

        let mut f = Framer::new(limits);
        f.push(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 11\r\n\r\n");
        assert_eq!(
            f.poll(),
            Err(FramingError::BodyTooLong { len: 11, max: 10 })
        );
        for bad in [
            &b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n"[..],
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999999999\r\n\r\n",
            b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n",
        ] {
            let mut f = Framer::new(Limits::default());
            f.push(bad);
            assert!(f.poll().is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    proptest! {
        /// Whatever a peer sends, the framer answers without panicking and holds no more
        /// than the limits allow.
        #[test]
        fn garbage_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let limits = Limits { max_header: 512, max_body: 512 };
            let mut f = Framer::new(limits);
            for c in &chunks {
                f.push(c);
                while let Ok(Some(_)) = f.poll() {}
                prop_assert!(f.buffered() <= 512 + 512 + 300);
            }
        }
    }
}
