//! SDP offer/answer for a G.711 voice endpoint (RFC 4566 syntax, RFC 3264 negotiation).
//!
//! What it does: parses the parts of a remote offer a voice robot needs (connection
//! address, the audio m-line, rtpmap/ptime/direction attributes), picks one codec among
//! PCMU and PCMA in the offerer's order of preference plus RFC 4733 `telephone-event`,
//! and writes the answer (or an offer, for outbound calls).
//!
//! What it deliberately does not do: video, SRTP/DTLS, ICE, multiple audio streams (only
//! the first acceptable audio stream is used; every other m-line is declined with port 0
//! as RFC 3264 §6 requires), or codec renegotiation beyond answering re-offers the same way.
//! Parsing never panics: anything unusable is a [`SdpError`].

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::media::Codec;

/// Why an offer could not be used. Each maps to a SIP response (`488` for all of them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    #[error("SDP is not UTF-8 text")]
    NotText,
    #[error("SDP line {line}: {why}")]
    Syntax { line: usize, why: String },
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error(
        "no common codec: offer has payload types {offered:?}; we accept PCMU (0) and PCMA (8)"
    )]
    NoCommonCodec { offered: Vec<u8> },
    #[error("SDP has no usable connection address (c=)")]
    NoConnection,
    #[error("SDP refused: {0}")]
    Unusable(String),
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    /// The direction we answer with (the mirror image).
    fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
}

/// One m-line as offered, kept so the answer can decline it with the same shape.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MediaLine {
    media: String,
    proto: String,
    formats: Vec<String>,
}

/// The result of negotiating a remote offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP (the offer's connection address and audio port).
    pub remote_rtp: SocketAddr,
    pub codec: Codec,
    /// Payload type number the offerer uses for the codec (static 0/8 in practice).
    pub codec_pt: u8,
    /// Payload type of `telephone-event/8000`, if offered.
    pub telephone_event_pt: Option<u8>,
    pub ptime_ms: u32,
    /// Direction we answer with.
    pub direction: Direction,
    /// Index of the accepted audio m-line among all m-lines.
    accepted_index: usize,
    lines: Vec<MediaLine>,
}

fn syntax(line: usize, why: impl Into<String>) -> SdpError {
    SdpError::Syntax {
        line,
        why: why.into(),
    }
}

/// Parse a remote offer and pick the media parameters.
pub fn negotiate(offer: &[u8]) -> Result<Negotiated, SdpError> {
    let text = std::str::from_utf8(offer).map_err(|_| SdpError::NotText)?;
    let mut session_conn: Option<IpAddr> = None;
    let mut lines: Vec<MediaLine> = Vec::new();
    // Per-m-line facts.
    struct Audio {
        index: usize,
        port: u16,
        conn: Option<IpAddr>,
        pts: Vec<u8>,
        rtpmap: Vec<(u8, String)>,
        ptime: Option<u32>,
        direction: Option<Direction>,
    }
    let mut audios: Vec<Audio> = Vec::new();
    let mut session_direction: Option<Direction> = None;
    let mut current_audio: Option<usize> = None; // index into audios
    let mut in_media = false;

    for (n, raw) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = raw.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (kind, value) = line
            .split_once('=')
            .ok_or_else(|| syntax(lineno, "expected <type>=<value>"))?;
        if kind.len() != 1 {
            return Err(syntax(lineno, format!("bad line type {kind:?}")));
        }
        match kind {
            "c" => {
                let addr = parse_connection(value)
                    .ok_or_else(|| syntax(lineno, format!("bad connection line c={value}")))?;
                if in_media {
                    if let Some(i) = current_audio {
                        audios[i].conn = Some(addr);
                    }
                } else {
                    session_conn = Some(addr);
                }
            }
            "m" => {
                in_media = true;
                let mut parts = value.split_ascii_whitespace();
                let media = parts
                    .next()
                    .ok_or_else(|| syntax(lineno, "empty m= line"))?;
                let port_s = parts
                    .next()
                    .ok_or_else(|| syntax(lineno, "m= without port"))?;
                let proto = parts
                    .next()
                    .ok_or_else(|| syntax(lineno, "m= without proto"))?;
                let formats: Vec<String> = parts.map(str::to_owned).collect();
                // "port/count" is legal; we use the first port.
                let port: u16 = port_s
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| syntax(lineno, format!("bad port {port_s:?}")))?;
                let index = lines.len();
                lines.push(MediaLine {
                    media: media.to_owned(),
                    proto: proto.to_owned(),
                    formats: formats.clone(),
                });
                current_audio = None;
                if media == "audio" && proto.eq_ignore_ascii_case("RTP/AVP") && port != 0 {
                    let pts = formats
                        .iter()
                        .filter_map(|f| f.parse::<u8>().ok())
                        .collect();
                    audios.push(Audio {
                        index,
                        port,
                        conn: None,
                        pts,
                        rtpmap: Vec::new(),
                        ptime: None,
                        direction: None,
                    });
                    current_audio = Some(audios.len() - 1);
                }
            }
            "a" => {
                let (name, val) = match value.split_once(':') {
                    Some((n, v)) => (n, Some(v)),
                    None => (value, None),
                };
                let dir = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if !in_media {
                    if dir.is_some() {
                        session_direction = dir;
                    }
                    continue;
                }
                let Some(i) = current_audio else { continue };
                let a = &mut audios[i];
                if let Some(d) = dir {
                    a.direction = Some(d);
                }
                match (name, val) {
                    ("rtpmap", Some(v)) => {
                        let mut it = v.splitn(2, ' ');
                        let pt = it.next().and_then(|p| p.trim().parse::<u8>().ok());
                        let enc = it.next().map(|e| e.trim().to_ascii_lowercase());
                        if let (Some(pt), Some(enc)) = (pt, enc) {
                            a.rtpmap.push((pt, enc));
                        }
                    }
                    ("ptime", Some(v)) => a.ptime = v.trim().parse().ok(),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    if audios.is_empty() {
        return Err(SdpError::NoAudio);
    }
    let mut offered_all = Vec::new();
    for a in &audios {
        let enc_of = |pt: u8| -> Option<String> {
            a.rtpmap
                .iter()
                .find(|(p, _)| *p == pt)
                .map(|(_, e)| e.clone())
        };
        let mut chosen: Option<(Codec, u8)> = None;
        for &pt in &a.pts {
            offered_all.push(pt);
            let codec = match enc_of(pt).as_deref() {
                Some(e) if e.starts_with("pcmu/8000") => Some(Codec::Pcmu),
                Some(e) if e.starts_with("pcma/8000") => Some(Codec::Pcma),
                Some(_) => None,
                // Static payload types need no rtpmap (RFC 3551 table 4).
                None => Codec::from_payload_type(pt),
            };
            if let Some(c) = codec {
                chosen = Some((c, pt));
                break;
            }
        }
        let Some((codec, codec_pt)) = chosen else {
            continue;
        };
        let ip = a.conn.or(session_conn).ok_or(SdpError::NoConnection)?;
        let telephone_event_pt = a
            .rtpmap
            .iter()
            .find(|(pt, e)| e.starts_with("telephone-event/8000") && a.pts.contains(pt))
            .map(|(pt, _)| *pt);
        let offered_dir = a
            .direction
            .or(session_direction)
            .unwrap_or(Direction::SendRecv);
        // An offer with c=0.0.0.0 is the old RFC 2543 hold: nothing to send to.
        let direction = if ip.is_unspecified() {
            Direction::Inactive
        } else {
            offered_dir.answer()
        };
        return Ok(Negotiated {
            remote_rtp: SocketAddr::new(ip, a.port),
            codec,
            codec_pt,
            telephone_event_pt,
            ptime_ms: 20,
            direction,
            accepted_index: a.index,
            lines,
        });
    }
    Err(SdpError::NoCommonCodec {
        offered: offered_all,
    })
}

/// Whether ivrflow may send a call's RTP to `ip` (the connection address of an offer or
/// answer that starts a call). Refused: the unspecified address (`0.0.0.0`, `::`: the old
/// RFC 2543 hold, meaningless for a new call), the limited broadcast address and the
/// "this network" block, and multicast — sending there would make ivrflow a reflector
/// for whoever wrote the SDP (issue 12.3).
pub fn check_rtp_destination(ip: IpAddr) -> Result<(), &'static str> {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.octets()[0] == 0 => {
            Err("the connection address is unspecified (0.0.0.0)")
        }
        IpAddr::V4(v4) if v4.is_broadcast() => Err("the connection address is a broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Err("the connection address is multicast"),
        IpAddr::V6(v6) if v6.is_unspecified() => Err("the connection address is unspecified (::)"),
        IpAddr::V6(v6) if v6.is_multicast() => Err("the connection address is multicast"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => check_rtp_destination(IpAddr::V4(v4)),
            None => Ok(()),
        },
        IpAddr::V4(_) => Ok(()),
    }
}

fn parse_connection(value: &str) -> Option<IpAddr> {
    // c=IN IP4 192.0.2.1[/ttl[/n]]
    let mut parts = value.split_ascii_whitespace();
    if parts.next()? != "IN" {
        return None;
    }
    let family = parts.next()?;
    let addr = parts.next()?.split('/').next()?;
    let ip: IpAddr = addr.parse().ok()?;
    match (family, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Some(ip),
        _ => None,
    }
}

/// Session identity for the `o=` line; the version increments with each new description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub session_id: u64,
    pub version: u64,
}

/// Our local media description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub addr: SocketAddr,
    pub origin: Origin,
}

fn ip_family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

fn write_session_header(out: &mut String, local: &LocalMedia) {
    let ip = local.addr.ip();
    let fam = ip_family(ip);
    let _ = write!(
        out,
        "v=0\r\no=ivrflow {} {} IN {fam} {ip}\r\ns=ivrflow\r\nc=IN {fam} {ip}\r\nt=0 0\r\n",
        local.origin.session_id, local.origin.version
    );
}

/// Write the answer to a negotiated offer (RFC 3264 §6): same m-lines in the same order,
/// every stream but the chosen audio one declined with port 0.
pub fn answer(neg: &Negotiated, local: &LocalMedia) -> String {
    let mut out = String::with_capacity(300);
    write_session_header(&mut out, local);
    for (i, line) in neg.lines.iter().enumerate() {
        if i == neg.accepted_index {
            let mut fmts = neg.codec_pt.to_string();
            if let Some(te) = neg.telephone_event_pt {
                let _ = write!(fmts, " {te}");
            }
            let _ = write!(out, "m=audio {} RTP/AVP {fmts}\r\n", local.addr.port());
            write_audio_attrs(
                &mut out,
                neg.codec,
                neg.codec_pt,
                neg.telephone_event_pt,
                neg.direction,
            );
        } else {
            let fmts = if line.formats.is_empty() {
                "0".to_owned()
            } else {
                line.formats.join(" ")
            };
            let _ = write!(out, "m={} 0 {} {fmts}\r\n", line.media, line.proto);
        }
    }
    out
}

fn write_audio_attrs(
    out: &mut String,
    codec: Codec,
    codec_pt: u8,
    te: Option<u8>,
    direction: Direction,
) {
    let _ = write!(
        out,
        "a=rtpmap:{codec_pt} {}/8000\r\n",
        codec.encoding_name()
    );
    if let Some(te) = te {
        let _ = write!(
            out,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    let _ = write!(out, "a=ptime:20\r\na={}\r\n", direction.attr());
}

/// An offer for outbound calls: PCMU, PCMA and telephone-event 101.
pub fn offer(local: &LocalMedia) -> String {
    offer_codecs(local, &[Codec::Pcmu, Codec::Pcma])
}

/// An offer with `codecs` in this order of preference (PCMU and PCMA if empty), plus
/// telephone-event 101.
pub fn offer_codecs(local: &LocalMedia, codecs: &[Codec]) -> String {
    let codecs = if codecs.is_empty() {
        &[Codec::Pcmu, Codec::Pcma][..]
    } else {
        codecs
    };
    let mut out = String::with_capacity(300);
    write_session_header(&mut out, local);
    let _ = write!(out, "m=audio {} RTP/AVP", local.addr.port());
    let mut seen = Vec::new();
    for c in codecs {
        if !seen.contains(c) {
            seen.push(*c);
            let _ = write!(out, " {}", codec_pt(*c));
        }
    }
    out.push_str(" 101\r\n");
    for c in &seen {
        let _ = write!(out, "a=rtpmap:{} {}/8000\r\n", codec_pt(*c), codec_name(*c));
    }
    out.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
    out.push_str("a=ptime:20\r\na=sendrecv\r\n");
    out
}

fn codec_pt(c: Codec) -> u8 {
    match c {
        Codec::Pcmu => 0,
        Codec::Pcma => 8,
    }
}

fn codec_name(c: Codec) -> &'static str {
    match c {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

    fn local() -> LocalMedia {
        LocalMedia {
            addr: "127.0.0.1:20000".parse().unwrap(),
            origin: Origin {
                session_id: 42,
                version: 1,
            },
        }
    }

    #[test]
    fn sipp_offer_negotiates_pcmu_and_events() {
        let n = negotiate(SIPP_OFFER.as_bytes()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.codec_pt, 0);
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, "127.0.0.1:6000".parse().unwrap());
        let a = answer(&n, &local());
        assert!(a.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert!(a.contains("a=ptime:20\r\n"));
        assert!(a.contains("a=sendrecv\r\n"));
    }

    #[test]
    fn offerer_preference_decides_between_pcma_and_pcmu() {
        let sdp =
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 8 0\r\na=rtpmap:18 G729/8000\r\n";
        let n = negotiate(sdp.as_bytes()).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.telephone_event_pt, None);
        let a = answer(&n, &local());
        assert!(a.contains("m=audio 20000 RTP/AVP 8\r\n"), "{a}");
    }

    #[test]
    fn media_level_connection_overrides_session_level() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\n";
        let n = negotiate(sdp.as_bytes()).unwrap();
        assert_eq!(n.remote_rtp, "10.0.0.2:4000".parse().unwrap());
    }

    #[test]
    fn no_common_codec_is_an_error_naming_the_offer() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 18 9\r\n";
        let e = negotiate(sdp.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            SdpError::NoCommonCodec {
                offered: vec![18, 9]
            }
        );
        assert!(e.to_string().contains("PCMU"));
    }

    #[test]
    fn video_stream_is_declined_with_port_zero() {
        let sdp =
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 0\r\n";
        let n = negotiate(sdp.as_bytes()).unwrap();
        let a = answer(&n, &local());
        let m: Vec<&str> = a.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m, vec!["m=video 0 RTP/AVP 96", "m=audio 20000 RTP/AVP 0"]);
    }

    #[test]
    fn sendonly_offer_gets_recvonly_answer_and_hold_is_inactive() {
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n";
        assert_eq!(
            negotiate(sdp.as_bytes()).unwrap().direction,
            Direction::RecvOnly
        );
        let hold = "v=0\r\nc=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            negotiate(hold.as_bytes()).unwrap().direction,
            Direction::Inactive
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"\xff\xfe"[..],
            b"hello",
            b"v=0\r\nm=audio\r\n",
            b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
            b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n",
            b"v=0\r\nc=IN IP4 nope\r\nm=audio 4000 RTP/AVP 0\r\n",
            b"",
        ] {
            assert!(negotiate(bad).is_err(), "{bad:?}");
        }
    }

    /// Deterministic mutation fuzz: bytes flipped, inserted and cut in real offers never
    /// panic, and whatever negotiates yields an answer that negotiates again.
    #[test]
    fn mutated_offers_never_panic() {
        let seeds = [SIPP_OFFER.as_bytes().to_vec(), offer(&local()).into_bytes()];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut negotiated = 0;
        for round in 0..20_000 {
            let mut m = seeds[round % seeds.len()].clone();
            for _ in 0..=(next() % 4) {
                let pos = (next() as usize) % m.len().max(1);
                match next() % 4 {
                    0 if !m.is_empty() => m[pos] = next() as u8,
                    1 => m.insert(
                        pos.min(m.len()),
                        b"\r\n =:/ 0123456789"[(next() % 17) as usize],
                    ),
                    2 if !m.is_empty() => {
                        m.remove(pos);
                    }
                    _ => m.truncate(pos),
                }
            }
            if let Ok(n) = negotiate(&m) {
                negotiated += 1;
                let a = answer(&n, &local());
                assert!(
                    negotiate(a.as_bytes()).is_ok(),
                    "our answer must parse: {a}"
                );
            }
        }
        assert!(
            negotiated > 1000,
            "the fuzz should also exercise the success path"
        );
    }

    #[test]
    fn our_offer_round_trips_through_negotiate() {
        let o = offer(&local());
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, local().addr);
    }

    #[test]
    fn trunk_codec_preference_orders_the_offer() {
        let o = offer_codecs(&local(), &[Codec::Pcma]);
        assert!(o.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{o}");
        assert!(!o.contains("PCMU"));
        let n = negotiate(o.as_bytes()).unwrap();
        assert_eq!(
            (n.codec, n.codec_pt, n.telephone_event_pt),
            (Codec::Pcma, 8, Some(101))
        );
        let o = offer_codecs(&local(), &[Codec::Pcma, Codec::Pcmu, Codec::Pcma]);
        assert!(o.contains("RTP/AVP 8 0 101\r\n"), "{o}");
        assert_eq!(offer_codecs(&local(), &[]), offer(&local()));
    }
}
