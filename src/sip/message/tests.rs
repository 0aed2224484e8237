//! Unit tests of the SIP wire layer.
use super::*;

fn req(bytes: &[u8]) -> Request {
    match parse(bytes) {
        Ok(Message::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

const BASIC: &[u8] = b"OPTIONS sip:ivr@example.com SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
f: <sip:a@example.com>;tag=1\r\n\
t: sip:ivr@example.com\r\n\
i: abc@192.0.2.1\r\n\
CSeq: 1 OPTIONS\r\n\
m: <sip:a@192.0.2.1>\r\n\
l: 0\r\n\
\r\n";

#[test]
fn compact_forms_expand() {
    let r = req(BASIC);
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Via",
            "From",
            "To",
            "Call-ID",
            "CSeq",
            "Contact",
            "Content-Length"
        ]
    );
    for (short, long) in [
        ("v", "Via"),
        ("i", "Call-ID"),
        ("f", "From"),
        ("t", "To"),
        ("m", "Contact"),
        ("l", "Content-Length"),
    ] {
        assert_eq!(r.headers.get(short), r.headers.get(long), "{short}");
        assert!(r.headers.get(short).is_some(), "{short}");
    }
    assert_eq!(r.headers.get("I"), Some("abc@192.0.2.1"));
    assert_eq!(canonical_name("k"), "Supported");
    assert_eq!(canonical_name("c"), "Content-Type");
    assert_eq!(canonical_name("X-Custom"), "X-Custom");
    assert!(validate_request(&r).is_ok());
}

#[test]
fn names_are_case_insensitive() {
    let r = req(b"OPTIONS sip:a@b SIP/2.0\r\nvIA: SIP/2.0/UDP h\r\nCALL-id: x\r\ncseq: 1 OPTIONS\r\nx-FOO: 1\r\n\r\n");
    assert_eq!(r.headers.get("Via"), Some("SIP/2.0/UDP h"));
    assert_eq!(r.headers.get("call-id"), Some("x"));
    assert_eq!(r.headers.get("CSEQ"), Some("1 OPTIONS"));
    assert_eq!(r.headers.get("X-Foo"), Some("1"));
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["Via", "Call-ID", "CSeq", "x-FOO"]);
}

#[test]
fn folding_and_lws_around_colon() {
    let r = req(b"INVITE sip:a@b SIP/2.0\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=z9hG4bKx\r\n\
cseq: 0009\r\n\tINVITE\r\n\
Subject:\r\n   hello\r\n  \r\n world\r\n\
\r\n");
    assert_eq!(
        r.headers.get("Via"),
        Some("SIP  /   2.0 /UDP 192.0.2.2;branch=z9hG4bKx")
    );
    let via = parse_via(r.headers.get("v").unwrap_or("")).expect("via");
    assert_eq!(via.transport, "UDP");
    assert_eq!(via.host, "192.0.2.2");
    assert_eq!(via.branch(), Some("z9hG4bKx"));
    let cseq = parse_cseq(r.headers.get("CSeq").unwrap_or("")).expect("cseq");
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(r.headers.get("Subject"), Some("hello world"));
}

#[test]
fn get_all_respects_quotes_and_angles() {
    let mut h = Headers::new();
    h.push(
        "Contact",
        r#""Doe, John \"x,y\"" <sip:a@b;p=1,2>;q=0.5, <sip:c@d>"#,
    );
    h.push("m", "sip:e@f");
    h.push("Route", "<sip:p1;lr>,<sip:p2;lr>");
    h.push("Date", "Sat, 15 Oct 2005 04:44:56 GMT");
    let contacts: Vec<&str> = h.get_all("Contact").collect();
    assert_eq!(
        contacts,
        [
            r#""Doe, John \"x,y\"" <sip:a@b;p=1,2>;q=0.5"#,
            "<sip:c@d>",
            "sip:e@f"
        ]
    );
    assert_eq!(h.count("m"), 3);
    assert_eq!(h.count("Route"), 2);
    assert_eq!(h.get("Route"), Some("<sip:p1;lr>"));
    // Not a list header: the comma in a date does not split it.
    assert_eq!(h.count("Date"), 1);
    let na = parse_name_addr(contacts[0]).expect("name-addr");
    assert_eq!(na.display.as_deref(), Some(r#"Doe, John "x,y""#));
    assert_eq!(na.uri, "sip:a@b;p=1,2");
    assert_eq!(na.param("Q"), Some("0.5"));
}

#[test]
fn set_remove_push() {
    let mut h = Headers::new();
    h.push("Via", "a");
    h.push("l", "5");
    h.push("To", "t");
    h.push("Content-Length", "6");
    h.set("content-length", "0");
    assert_eq!(
        h.iter().collect::<Vec<_>>(),
        [("Via", "a"), ("Content-Length", "0"), ("To", "t")]
    );
    h.remove("v");
    assert!(!h.contains("Via"));
    h.set("X-New", "1");
    assert_eq!(h.get("x-new"), Some("1"));
    assert_eq!(h.len(), 3);
}

#[test]
fn body_framing() {
    // Trailing octets after Content-Length are ignored (§18.3).
    let r = req(b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcdef");
    assert_eq!(r.body, b"abc");
    // No Content-Length: rest of the datagram.
    let r = req(b"MESSAGE sip:a@b SIP/2.0\r\n\r\nabcdef");
    assert_eq!(r.body, b"abcdef");
    // Too large: what arrived, validation says 400.
    let r = req(b"MESSAGE sip:a@b SIP/2.0\r\nl: 30\r\n\r\nabc");
    assert_eq!(r.body, b"abc");
    // Negative: no body.
    let r = req(b"MESSAGE sip:a@b SIP/2.0\r\nl: -3\r\n\r\nabc");
    assert!(r.body.is_empty());
    // Bare LF line ends.
    let r = req(b"MESSAGE sip:a@b SIP/2.0\nl: 2\n\nxyz");
    assert_eq!(r.body, b"xy");
}

#[test]
fn framing_errors() {
    assert_eq!(parse(b""), Err(ParseError::Empty));
    assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty));
    assert_eq!(
        parse(b"INVITE sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n"),
        Err(ParseError::MissingColon { line: 2 })
    );
    assert_eq!(
        parse(b"\r\nINVITE sip:a@b SIP/2.0\r\nTo: a\r\nFoo bar\r\n\r\n").map_err(|e| e.to_string()),
        Err("line 4: header without ':'".to_owned())
    );
    assert!(matches!(
        parse(b"INVITE sip:a@b\r\n\r\n"),
        Err(ParseError::StartLine { line: 1, .. })
    ));
    assert!(matches!(
        parse(b"INVITE sip:a@b SIP/2.0\r\n cont\r\n\r\n"),
        Err(ParseError::OrphanContinuation { line: 2 })
    ));
    assert!(matches!(
        parse(b"INVITE sip:a@b SIP/2.0\r\nTo: a"),
        Err(ParseError::Unterminated { line: 2 })
    ));
    assert!(parse(b"\x00\x01\x02\xff\r\n\r\n").is_err());
    assert!(parse(b"SIP/2.0 abc OK\r\n\r\n").is_err());
}

#[test]
fn status_line() {
    let m = parse(b"SIP/2.0 100 \r\nCall-ID: x\r\n\r\n");
    let Ok(Message::Response(r)) = m else {
        panic!("{m:?}")
    };
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
    let Ok(Message::Response(r)) = parse(b"SIP/2.0 4294967301 big\r\n\r\n") else {
        panic!()
    };
    assert_eq!(r.status, u16::MAX);
    assert!(validate_response(&r).is_err());
}

#[test]
fn request_line_tolerance() {
    let r = req(b"INVITE  sip:a@b  SIP/2.0  \r\n\r\n");
    assert_eq!(r.uri, "sip:a@b");
    assert_eq!(r.version, "SIP/2.0");
    let r = req(b"INVITE sip:a@b; lr SIP/2.0\r\n\r\n");
    assert_eq!(r.uri, "sip:a@b; lr");
    assert_eq!(
        validate_request_uri(&r.uri),
        Err("Bad Request (whitespace in Request-URI)")
    );
}

#[test]
fn methods() {
    assert_eq!(Method::parse("INVITE"), Method::Invite);
    assert_eq!(Method::parse("invite"), Method::Other("invite".into()));
    assert_eq!(Method::parse("PRACK").to_string(), "PRACK");
    assert_eq!(
        Method::parse("RE%47IST%45R"),
        Method::Other("RE%47IST%45R".into())
    );
}

#[test]
fn uris() {
    let u = parse_uri("sip:user;par=u%40example.net@example.com").expect("semiuri");
    assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(u.host, "example.com");
    let u =
        parse_uri("SIPS:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi&X=").expect("full");
    assert_eq!(u.scheme, "sips");
    assert_eq!(u.password.as_deref(), Some("pw"));
    assert_eq!(u.host, "[2001:db8::1]");
    assert_eq!(u.port, Some(5061));
    assert_eq!(u.param("TRANSPORT"), Some("tcp"));
    assert!(u.has_param("lr"));
    assert_eq!(u.headers.len(), 2);
    assert_eq!(
        u.to_string(),
        "sips:alice:pw@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi&X="
    );
    let u = parse_uri("sip:%00@host5.example.com").expect("escnull");
    assert_eq!(u.user.as_deref(), Some("%00"));
    let u = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent").expect("unkscm");
    assert_eq!(u.scheme, "nobodyknowsthisscheme");
    assert_eq!(u.host, "totallyopaquecontent");
    assert_eq!(
        parse_uri("tel:+1-201-555-0123").map(|u| u.scheme),
        Ok("tel".into())
    );
    for bad in [
        "sip:",
        "sip:a b@c",
        "<sip:a@b>",
        "sip:a@b:99999",
        "sip:a@b;",
        "sip:%zz@b",
        "1sip:a",
        "nocolon",
        "sip:a@",
    ] {
        assert!(parse_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn name_addrs() {
    let n = parse_name_addr("caller<sip:caller@example.com>;tag=323").expect("lwsdisp");
    assert_eq!(n.display.as_deref(), Some("caller"));
    assert_eq!(n.tag(), Some("323"));
    let n = parse_name_addr("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
        .expect("addr-spec");
    assert_eq!(n.uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(n.tag(), Some("1918181833n"));
    let n = parse_name_addr("sip:+1@gw.example.net;user=phone;unknownparam").expect("params");
    assert_eq!(n.uri, "sip:+1@gw.example.net");
    assert_eq!(n.param("user"), Some("phone"));
    assert!(n.has_param("unknownparam"));
    for bad in [
        "\"Mr. J. User <sip:j.user@example.com>",
        "\"Watson, Thomas\" < sip:t.watson@example.org >",
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        "\"Joe\" <sip:joe@example.org>;;;;",
        "<sip:a@b",
        "",
        "<>",
        "noscheme",
    ] {
        assert!(parse_name_addr(bad).is_err(), "{bad}");
    }
    let shown = NameAddr {
        display: Some("A \"B\"".into()),
        uri: "sip:a@b".into(),
        params: vec![("tag".into(), Some("x".into()))],
    };
    assert_eq!(shown.to_string(), r#""A \"B\"" <sip:a@b>;tag=x"#);
    assert_eq!(parse_name_addr(&shown.to_string()), Ok(shown));
}

#[test]
fn vias() {
    let v = parse_via("SIP/2.0/udp [2001:db8::1]:5060;branch=z9hG4bKa;rport;received=1.2.3.4")
        .expect("via");
    assert_eq!(v.transport, "UDP");
    assert_eq!(v.sent_by(), "[2001:db8::1]:5060");
    assert!(v.has_param("rport"));
    assert_eq!(v.param("rport"), None);
    assert_eq!(v.param("received"), Some("1.2.3.4"));
    assert_eq!(
        v.to_string(),
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa;rport;received=1.2.3.4"
    );
    for bad in [
        "SIP/2.0/UDP 192.0.2.15;;",
        ";",
        "SIP/2.0 host",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP h:",
        "SIP/2.0/UDP h x",
    ] {
        assert!(parse_via(bad).is_err(), "{bad}");
    }
}

#[test]
fn cseqs() {
    assert_eq!(
        parse_cseq("4294967295 INVITE"),
        Ok(CSeq {
            seq: u32::MAX,
            method: Method::Invite
        })
    );
    assert!(parse_cseq("4294967296 INVITE").is_err());
    assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
    assert!(parse_cseq("1").is_err());
    assert!(parse_cseq("1 INVITE x").is_err());
    assert!(parse_cseq("-1 INVITE").is_err());
}

#[test]
fn to_bytes_writes_content_length_and_sanitizes() {
    let mut r = req(BASIC);
    r.body = b"hello".to_vec();
    r.headers.push("Subject", "evil\r\nInjected: yes");
    let bytes = r.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("\r\nContent-Length: 5\r\n"));
    assert!(!text.contains("\r\nInjected"));
    assert!(text.ends_with("\r\n\r\nhello"));
    let again = req(&bytes);
    assert_eq!(again.body, b"hello");
    assert_eq!(again.headers.count("Content-Length"), 1);
}

#[test]
fn skeleton_copies_dialog_headers() {
    let r = req(b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP p1;branch=z9hG4bK1, SIP/2.0/UDP p2\r\nv: SIP/2.0/UDP p3\r\nMax-Forwards: 70\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContact: <sip:x@y>\r\n\r\n");
    let s = response_skeleton(&r, 486, "Busy Here");
    assert_eq!(
        s.headers.get_all("Via").collect::<Vec<_>>(),
        [
            "SIP/2.0/UDP p1;branch=z9hG4bK1",
            "SIP/2.0/UDP p2",
            "SIP/2.0/UDP p3"
        ]
    );
    assert_eq!(s.headers.get("Contact"), None);
    assert_eq!(s.headers.get("Max-Forwards"), None);
    assert!(validate_response(&s).is_ok());
    let text = String::from_utf8_lossy(&s.to_bytes()).into_owned();
    assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"));
    assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
}
