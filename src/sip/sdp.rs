//! SDP offer/answer for a G.711 voice endpoint (RFC 4566 syntax, RFC 3264 negotiation).
//!
//! What it does: parses the parts of a remote offer a voice robot needs (connection
//! address, the audio m-line, rtpmap/ptime/direction attributes), picks one codec among
//! PCMU and PCMA in the offerer's order of preference plus RFC 4733 `telephone-event`,
//! and writes the answer (or an offer, for outbound calls).
//!
//! SRTP with SDES (RFC 4568): under an [`SrtpPolicy`] an `RTP/SAVP` stream (or an `RTP/AVP`
//! one carrying `a=crypto`, the "best effort" offers of many PBXs) is accepted with its
//! first usable `a=crypto` line; the answer mirrors the profile and carries our key
//! ([`Negotiated::local_crypto`], set by the engine). `a=rtcp-mux` (RFC 5761) and `a=rtcp`
//! (RFC 3605) are read so RTCP goes where the peer wants it.
//!
//! What it deliberately does not do: video, DTLS-SRTP, ICE, multiple audio streams (only
//! the first acceptable audio stream is used; every other m-line is declined with port 0
//! as RFC 3264 §6 requires), or codec renegotiation beyond answering re-offers the same way.
//! Parsing never panics: anything unusable is a [`SdpError`].

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::media::Codec;
use crate::media::srtp::CryptoAttr;

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
    #[error(
        "SRTP is required (RTP/SAVP with a=crypto AES_CM_128_HMAC_SHA1_80 or _32) and the offer has none"
    )]
    SrtpRequired,
    #[error("RTP/SAVP offered where SRTP is not allowed (SDES keys only over TLS)")]
    SrtpNotAllowed,
}

/// Whether a stream may, or must, be SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SrtpPolicy {
    /// Plain RTP only: `RTP/SAVP` streams are declined.
    #[default]
    Off,
    /// SRTP when the peer offers a usable key, plain RTP otherwise.
    Optional,
    /// SRTP or nothing (488).
    Required,
}

impl SrtpPolicy {
    pub fn parse(s: &str) -> Option<SrtpPolicy> {
        match s {
            "off" => Some(SrtpPolicy::Off),
            "optional" => Some(SrtpPolicy::Optional),
            "required" => Some(SrtpPolicy::Required),
            _ => None,
        }
    }
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
    /// The peer's key for what it sends (SRTP negotiated), from its chosen `a=crypto`.
    pub crypto: Option<CryptoAttr>,
    /// Our key for what we send, written into the answer (the engine sets it when
    /// [`Negotiated::crypto`] is some).
    pub local_crypto: Option<CryptoAttr>,
    /// The accepted line was `RTP/SAVP` (the answer says so too).
    pub savp: bool,
    /// The peer multiplexes RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Where the peer wants RTCP: `a=rtcp` (RFC 3605), else the RTP port + 1.
    pub remote_rtcp: SocketAddr,
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

/// Parse a remote offer and pick the media parameters (plain RTP only).
pub fn negotiate(offer: &[u8]) -> Result<Negotiated, SdpError> {
    negotiate_with(offer, SrtpPolicy::Off)
}

/// Parse a remote offer (or answer) and pick the media parameters under `srtp`.
pub fn negotiate_with(offer: &[u8], srtp: SrtpPolicy) -> Result<Negotiated, SdpError> {
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
        savp: bool,
        crypto: Option<CryptoAttr>,
        rtcp_mux: bool,
        rtcp: Option<(u16, Option<IpAddr>)>,
    }
    let mut audios: Vec<Audio> = Vec::new();
    let mut session_direction: Option<Direction> = None;
    let mut current_audio: Option<usize> = None; // index into audios
    let mut in_media = false;
    let mut skipped_savp = false;
    let mut skipped_plain = false;

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
                let savp = proto.eq_ignore_ascii_case("RTP/SAVP");
                if media == "audio" && savp && srtp == SrtpPolicy::Off && port != 0 {
                    skipped_savp = true;
                }
                let usable =
                    proto.eq_ignore_ascii_case("RTP/AVP") || (savp && srtp != SrtpPolicy::Off);
                if media == "audio" && usable && port != 0 {
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
                        savp,
                        crypto: None,
                        rtcp_mux: false,
                        rtcp: None,
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
                    // The first usable key wins (the offerer's preference); lines with
                    // suites or parameters we do not support are skipped.
                    ("crypto", Some(v)) if a.crypto.is_none() && srtp != SrtpPolicy::Off => {
                        a.crypto = CryptoAttr::parse(v.trim()).ok();
                    }
                    ("rtcp-mux", None) => a.rtcp_mux = true,
                    ("rtcp", Some(v)) => a.rtcp = parse_rtcp_attr(v),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    if audios.is_empty() {
        return Err(if skipped_savp {
            SdpError::SrtpNotAllowed
        } else {
            SdpError::NoAudio
        });
    }
    let mut offered_all = Vec::new();
    for a in &audios {
        // SAVP needs a key; a plain line is SRTP only when it carries one and SRTP is on.
        if a.savp && a.crypto.is_none() {
            skipped_savp = true;
            continue;
        }
        if srtp == SrtpPolicy::Required && a.crypto.is_none() {
            skipped_plain = true;
            continue;
        }
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
        let remote_rtcp = match a.rtcp {
            Some((port, addr)) => SocketAddr::new(addr.unwrap_or(ip), port),
            None => SocketAddr::new(ip, a.port.saturating_add(1)),
        };
        return Ok(Negotiated {
            remote_rtp: SocketAddr::new(ip, a.port),
            codec,
            codec_pt,
            telephone_event_pt,
            ptime_ms: 20,
            direction,
            crypto: a.crypto.clone(),
            local_crypto: None,
            savp: a.savp,
            rtcp_mux: a.rtcp_mux,
            remote_rtcp,
            accepted_index: a.index,
            lines,
        });
    }
    if offered_all.is_empty() {
        if skipped_plain {
            return Err(SdpError::SrtpRequired);
        }
        if skipped_savp {
            return Err(if srtp == SrtpPolicy::Off {
                SdpError::SrtpNotAllowed
            } else {
                SdpError::Unusable("RTP/SAVP without a usable a=crypto line".to_owned())
            });
        }
    }
    Err(SdpError::NoCommonCodec {
        offered: offered_all,
    })
}

/// `a=rtcp:PORT [IN IP4 ADDR]` (RFC 3605).
fn parse_rtcp_attr(v: &str) -> Option<(u16, Option<IpAddr>)> {
    let mut parts = v.split_ascii_whitespace();
    let port: u16 = parts.next()?.parse().ok().filter(|p| *p != 0)?;
    let rest: Vec<&str> = parts.collect();
    let addr = if rest.is_empty() {
        None
    } else {
        Some(parse_connection(&rest.join(" "))?)
    };
    Some((port, addr))
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
            let proto = if neg.savp && neg.local_crypto.is_some() {
                "RTP/SAVP"
            } else {
                "RTP/AVP"
            };
            let _ = write!(out, "m=audio {} {proto} {fmts}\r\n", local.addr.port());
            write_audio_attrs(
                &mut out,
                neg.codec,
                neg.codec_pt,
                neg.telephone_event_pt,
                neg.direction,
            );
            if neg.rtcp_mux {
                out.push_str("a=rtcp-mux\r\n");
            }
            if let Some(c) = &neg.local_crypto {
                let _ = write!(out, "a=crypto:{}\r\n", c.to_value());
            }
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
    offer_secure(local, codecs, &[], false)
}

/// An offer as [`offer_codecs`], with our SDES keys (one `a=crypto` line each, in order of
/// preference). `savp`: the stream is `RTP/SAVP` (SRTP required); else `RTP/AVP` carrying
/// the keys, which a peer without SRTP ignores (SRTP optional).
pub fn offer_secure(
    local: &LocalMedia,
    codecs: &[Codec],
    keys: &[CryptoAttr],
    savp: bool,
) -> String {
    let codecs = if codecs.is_empty() {
        &[Codec::Pcmu, Codec::Pcma][..]
    } else {
        codecs
    };
    let mut out = String::with_capacity(300);
    write_session_header(&mut out, local);
    let proto = if savp && !keys.is_empty() {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    let _ = write!(out, "m=audio {} {proto}", local.addr.port());
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
    for k in keys {
        let _ = write!(out, "a=crypto:{}\r\n", k.to_value());
    }
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

    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    #[test]
    fn savp_offer_needs_a_policy_and_a_key() {
        let savp = format!(
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=crypto:1 AES_CM_256_HMAC_SHA1_80 inline:xx\r\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}|2^31\r\na=rtcp-mux\r\n"
        );
        assert_eq!(negotiate(savp.as_bytes()), Err(SdpError::SrtpNotAllowed));
        let mut n = negotiate_with(savp.as_bytes(), SrtpPolicy::Optional).unwrap();
        let c = n.crypto.clone().unwrap();
        assert_eq!(
            (c.tag, c.suite),
            (2, crate::media::srtp::Suite::AesCm128HmacSha1_32)
        );
        assert!(n.savp && n.rtcp_mux);
        n.local_crypto = Some(crate::media::srtp::CryptoAttr {
            tag: 2,
            suite: c.suite,
            key: crate::media::srtp::MasterKey::from_bytes([3; 30]),
        });
        let a = answer(&n, &local());
        assert!(a.contains("m=audio 20000 RTP/SAVP 0 101\r\n"), "{a}");
        assert!(
            a.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
            "{a}"
        );
        assert!(a.contains("a=rtcp-mux\r\n"), "{a}");
        // Our answer is itself usable SDP with the key in it.
        let back = negotiate_with(a.as_bytes(), SrtpPolicy::Required).unwrap();
        assert_eq!(back.crypto, n.local_crypto);

        let no_key = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\n";
        assert!(negotiate_with(no_key.as_bytes(), SrtpPolicy::Optional).is_err());
        let plain = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert_eq!(
            negotiate_with(plain.as_bytes(), SrtpPolicy::Required),
            Err(SdpError::SrtpRequired)
        );
        let n = negotiate_with(plain.as_bytes(), SrtpPolicy::Optional).unwrap();
        assert_eq!((n.crypto, n.savp), (None, false));
        assert_eq!(n.remote_rtcp, "10.0.0.1:4001".parse().unwrap());
    }

    #[test]
    fn plain_and_secure_lines_are_chosen_by_policy() {
        // Two audio lines, the secure one first (a common "SRTP if you can" offer).
        let both = format!(
            "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}\r\nm=audio 4002 RTP/AVP 0\r\na=rtcp:4009 IN IP4 10.0.0.9\r\n"
        );
        let n = negotiate(both.as_bytes()).unwrap();
        assert_eq!(n.remote_rtp.port(), 4002);
        assert_eq!(n.remote_rtcp, "10.0.0.9:4009".parse().unwrap());
        let a = answer(&n, &local());
        let m: Vec<&str> = a.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m, vec!["m=audio 0 RTP/SAVP 0", "m=audio 20000 RTP/AVP 0"]);
        let n = negotiate_with(both.as_bytes(), SrtpPolicy::Required).unwrap();
        assert_eq!(n.remote_rtp.port(), 4000);
    }

    #[test]
    fn secure_offer_round_trips() {
        let keys = [crate::media::srtp::CryptoAttr {
            tag: 1,
            suite: crate::media::srtp::Suite::AesCm128HmacSha1_80,
            key: crate::media::srtp::MasterKey::from_bytes([5; 30]),
        }];
        let o = offer_secure(&local(), &[], &keys, true);
        assert!(o.contains("m=audio 20000 RTP/SAVP 0 8 101\r\n"), "{o}");
        let n = negotiate_with(o.as_bytes(), SrtpPolicy::Required).unwrap();
        assert_eq!(n.crypto.as_ref(), Some(&keys[0]));
        let best_effort = offer_secure(&local(), &[], &keys, false);
        assert!(best_effort.contains("RTP/AVP"));
        assert_eq!(negotiate(best_effort.as_bytes()).unwrap().crypto, None);
        assert!(
            negotiate_with(best_effort.as_bytes(), SrtpPolicy::Optional)
                .unwrap()
                .crypto
                .is_some()
        );
    }
}
