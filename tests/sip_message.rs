//! RFC 4475 torture messages through the SIP wire layer (`ivrflow::sip::message`):
//! the verdict of every file, parse → to_bytes → parse round-trips, per-file details, and a
//! deterministic mutation fuzz asserting that no input panics.
//!
//! Fixtures: tests/fixtures/torture/ (IETF Trust material, BCP 78 / Trust Legal Provisions;
//! see the NOTICE there).

use std::path::PathBuf;

use ivrflow::sip::message::{
    self, Message, Method, Request, Response, parse, parse_cseq, parse_name_addr, parse_uri,
    parse_via, response_skeleton, validate_request, validate_response,
};

/// What this layer must do with a torture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Request: parses and `validate_request` is Ok (the UA may still answer per the note).
    Accept,
    /// Request: parses, `validate_request` fails with this status.
    Reject(u16),
    /// Response: parses and `validate_response` is Ok.
    AcceptResponse,
    /// Response: parses, `validate_response` fails (discard silently).
    Drop,
    /// Cannot be framed: `parse` fails (dropped with a debug log).
    ParseErr,
}

use Expect::*;

/// (file, INDEX verdict, expectation at this layer, what the UA/transaction layer then does).
const TABLE: &[(&str, &str, Expect, &str)] = &[
    ("wsinv.dat", "ACCEPT", Accept, "INVITE processed normally"),
    (
        "intmeth.dat",
        "ACCEPT",
        Accept,
        "UA: 501 Not Implemented + Allow",
    ),
    ("esc01.dat", "ACCEPT", Accept, "INVITE processed normally"),
    (
        "escnull.dat",
        "ACCEPT",
        Accept,
        "UA (not a registrar): 405 or 501 for REGISTER",
    ),
    (
        "esc02.dat",
        "ACCEPT",
        Accept,
        "UA: 501 (RE%47IST%45R is an unknown method)",
    ),
    ("lwsdisp.dat", "ACCEPT", Accept, "OPTIONS → 200"),
    (
        "longreq.dat",
        "ACCEPT",
        Accept,
        "INVITE processed normally (34 Via values)",
    ),
    (
        "dblreq.dat",
        "ACCEPT",
        Accept,
        "only the REGISTER is seen; UA: 405/501",
    ),
    (
        "semiuri.dat",
        "ACCEPT",
        Accept,
        "OPTIONS processed normally",
    ),
    ("transports.dat", "ACCEPT", Accept, "OPTIONS → 200"),
    (
        "mpart01.dat",
        "ACCEPT",
        Accept,
        "MESSAGE: UA policy (405/415/200)",
    ),
    (
        "unreason.dat",
        "ACCEPT",
        AcceptResponse,
        "matched to a transaction, else discarded",
    ),
    (
        "noreason.dat",
        "ACCEPT",
        AcceptResponse,
        "matched to a transaction, else discarded",
    ),
    ("badinv01.dat", "REJECT 400", Reject(400), ""),
    ("clerr.dat", "REJECT 400", Reject(400), ""),
    ("ncl.dat", "REJECT", Reject(400), ""),
    ("scalar02.dat", "REJECT 400", Reject(400), ""),
    ("scalarlg.dat", "DROP", Drop, ""),
    ("quotbal.dat", "REJECT 400", Reject(400), ""),
    ("ltgtruri.dat", "REJECT 400", Reject(400), ""),
    ("lwsruri.dat", "REJECT 400", Reject(400), ""),
    (
        "lwsstart.dat",
        "REJECT-or-TOLERATE",
        Accept,
        "tolerated: extra SP dropped from uri",
    ),
    (
        "trws.dat",
        "REJECT-or-TOLERATE",
        Accept,
        "tolerated: trailing SP dropped",
    ),
    (
        "escruri.dat",
        "REJECT-or-TOLERATE",
        Reject(400),
        "rejected: headers in Request-URI",
    ),
    (
        "baddate.dat",
        "REJECT-or-TOLERATE",
        Accept,
        "tolerated: Date is ignored",
    ),
    ("regbadct.dat", "REJECT 400", Reject(400), ""),
    ("badaspec.dat", "REJECT 400", Reject(400), ""),
    (
        "baddn.dat",
        "REJECT 400",
        Reject(400),
        "framed although the empty line is missing",
    ),
    ("badvers.dat", "REJECT 505", Reject(505), ""),
    ("mismatch01.dat", "REJECT 400", Reject(400), ""),
    (
        "mismatch02.dat",
        "REJECT 501",
        Reject(501),
        "UA should add Allow to the 501",
    ),
    ("bigcode.dat", "DROP", Drop, ""),
    (
        "badbranch.dat",
        "TOLERATE-or-REJECT",
        Accept,
        "tolerated: RFC 2543 transaction matching",
    ),
    (
        "insuf.dat",
        "REJECT 400",
        Reject(400),
        "Via/CSeq present: a 400 can be sent",
    ),
    (
        "unkscm.dat",
        "ACCEPT-PARSE 416",
        Accept,
        "UA: 416 Unsupported URI Scheme",
    ),
    (
        "novelsc.dat",
        "ACCEPT-PARSE 416",
        Accept,
        "UA: 416 Unsupported URI Scheme",
    ),
    (
        "unksm2.dat",
        "ACCEPT-PARSE",
        Accept,
        "UA (not a registrar): 405/501 for REGISTER",
    ),
    (
        "bext01.dat",
        "ACCEPT-PARSE 420",
        Accept,
        "UA: 420 Bad Extension + Unsupported",
    ),
    (
        "invut.dat",
        "ACCEPT-PARSE 415",
        Accept,
        "UA: 415 Unsupported Media Type",
    ),
    (
        "regaut01.dat",
        "ACCEPT-PARSE 405",
        Accept,
        "UA: 405 Method Not Allowed",
    ),
    ("multi01.dat", "REJECT 400", Reject(400), ""),
    ("mcl01.dat", "REJECT", Reject(400), ""),
    (
        "bcast.dat",
        "ACCEPT-PARSE",
        AcceptResponse,
        "no matching transaction: discarded",
    ),
    (
        "zeromf.dat",
        "ACCEPT-PARSE",
        Accept,
        "endpoint: OPTIONS → 200",
    ),
    (
        "cparam01.dat",
        "ACCEPT-PARSE",
        Accept,
        "UA (not a registrar): 405/501",
    ),
    (
        "cparam02.dat",
        "ACCEPT-PARSE",
        Accept,
        "UA (not a registrar): 405/501",
    ),
    (
        "regescrt.dat",
        "ACCEPT-PARSE",
        Accept,
        "UA (not a registrar): 405/501",
    ),
    (
        "sdp01.dat",
        "ACCEPT-PARSE 406",
        Accept,
        "UA: 406 (or 400/process)",
    ),
    ("inv2543.dat", "ACCEPT", Accept, "INVITE processed normally"),
    (
        "extras/test.dat",
        "stray, reject",
        ParseErr,
        "no SIP-Version: cannot be framed",
    ),
    (
        "extras/baddn.crlf-terminated.dat",
        "REJECT 400",
        Reject(400),
        "",
    ),
];

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torture")
}

fn load(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(name: &str) -> Request {
    match parse(&load(name)) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: expected a request, got {other:?}"),
    }
}

fn response(name: &str) -> Response {
    match parse(&load(name)) {
        Ok(Message::Response(r)) => r,
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

#[test]
fn table_covers_every_fixture() {
    let mut on_disk = Vec::new();
    for dir in ["", "extras/"] {
        let entries = std::fs::read_dir(fixture_dir().join(dir)).expect("fixture dir");
        for e in entries {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            if name.ends_with(".dat") {
                on_disk.push(format!("{dir}{name}"));
            }
        }
    }
    on_disk.sort();
    let mut in_table: Vec<String> = TABLE.iter().map(|(f, ..)| f.to_string()).collect();
    in_table.sort();
    assert_eq!(on_disk, in_table);
    assert_eq!(in_table.len(), 51);
}

#[test]
fn torture_verdicts() {
    let mut failures = Vec::new();
    for &(file, _verdict, expect, _ua) in TABLE {
        let parsed = parse(&load(file));
        let got = match &parsed {
            Err(_) => ParseErr,
            Ok(Message::Request(r)) => match validate_request(r) {
                Ok(()) => Accept,
                Err(rej) => Reject(rej.status),
            },
            Ok(Message::Response(r)) => match validate_response(r) {
                Ok(()) => AcceptResponse,
                Err(_) => Drop,
            },
        };
        if got != expect {
            let detail = match &parsed {
                Err(e) => e.to_string(),
                Ok(Message::Request(r)) => format!("{:?}", validate_request(r).err()),
                Ok(Message::Response(r)) => format!("{:?}", validate_response(r).err()),
            };
            failures.push(format!(
                "{file}: expected {expect:?}, got {got:?} ({detail})"
            ));
        }
        // Whatever was rejected with a status can be answered: the skeleton carries the
        // Via/Call-ID/CSeq the peer needs to match the response.
        if let (Reject(status), Ok(Message::Request(r))) = (expect, &parsed) {
            let resp = response_skeleton(r, status, "x");
            assert!(
                resp.headers.get("Via").is_some(),
                "{file}: no Via to answer"
            );
            assert!(
                resp.headers.get("CSeq").is_some(),
                "{file}: no CSeq to answer"
            );
            assert!(
                parse(&resp.to_bytes()).is_ok(),
                "{file}: skeleton re-parses"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// parse → to_bytes → parse gives the same message, except that Content-Length now equals
/// the body length (and stands where the first one stood, or last).
fn assert_round_trip(file: &str, m: &Message) {
    let bytes = m.to_bytes();
    let again = parse(&bytes).unwrap_or_else(|e| panic!("{file}: re-parse failed: {e}"));
    let mut expected = m.clone();
    let len = expected.body().len().to_string();
    expected.headers_mut().set("Content-Length", len);
    assert_eq!(again, expected, "{file}: round trip");
    assert_eq!(again.to_bytes(), bytes, "{file}: serialisation is stable");
}

#[test]
fn accepted_messages_round_trip() {
    let mut n = 0;
    for &(file, _, expect, _) in TABLE {
        if matches!(expect, Accept | AcceptResponse) {
            let m = parse(&load(file)).expect("accepted file parses");
            assert_round_trip(file, &m);
            n += 1;
        }
    }
    assert_eq!(n, 30);
}

#[test]
fn wsinv_details() {
    let r = request("wsinv.dat");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.uri, "sip:vivekg@chair-dnrc.example.com;unknownparam");
    let vias: Vec<_> = r
        .headers
        .get_all("Via")
        .map(|v| parse_via(v).expect("via"))
        .collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[0].transport, "UDP");
    assert_eq!(vias[0].host, "192.0.2.2");
    assert_eq!(vias[0].branch(), Some("390skdjuw"));
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].host, "spindle.example.com");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].host, "192.168.255.111");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    let to = parse_name_addr(r.headers.get("t").expect("To")).expect("To");
    assert_eq!(to.uri, "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));
    let from = parse_name_addr(r.headers.get("From").expect("From")).expect("From");
    assert_eq!(from.display.as_deref(), Some("J Rosenberg \\\""));
    assert_eq!(from.tag(), Some("98asjd8"));
    let contact = parse_name_addr(r.headers.get("Contact").expect("m")).expect("Contact");
    assert_eq!(contact.display.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.param("newparam"), Some("newvalue"));
    assert!(contact.has_param("secondparam"));
    assert_eq!(contact.param("q"), Some("0.33"));
    assert_eq!(r.headers.get("Max-Forwards"), Some("0068"));
    assert_eq!(r.headers.get("Subject"), Some(""));
    assert_eq!(
        r.headers.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers.get("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    let cseq = parse_cseq(r.headers.get("cseq").expect("CSeq")).expect("CSeq");
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn method_and_escape_details() {
    let r = request("intmeth.dat");
    assert_eq!(
        r.method,
        Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    let uri = parse_uri(&r.uri).expect("intmeth uri");
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(uri.host, "example.com");

    let r = request("esc02.dat");
    assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
    assert_eq!(r.headers.count("Contact"), 2);
    assert_eq!(
        r.headers.get("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );

    let r = request("escnull.dat");
    let to = parse_name_addr(r.headers.get("To").expect("To")).expect("To");
    assert_eq!(
        parse_uri(&to.uri).expect("uri").user.as_deref(),
        Some("null-%00-null")
    );
    let contacts: Vec<String> = r
        .headers
        .get_all("Contact")
        .map(|c| parse_name_addr(c).expect("contact").uri)
        .collect();
    assert_eq!(
        contacts,
        ["sip:%00@host5.example.com", "sip:%00%00@host5.example.com"]
    );

    let r = request("esc01.dat");
    assert_eq!(
        parse_uri(&r.uri).expect("uri").user.as_deref(),
        Some("sips%3Auser%40example.com")
    );
    assert_eq!(r.headers.get("Content-Type"), Some("application/sdp"));

    let r = request("semiuri.dat");
    let uri = parse_uri(&r.uri).expect("uri");
    assert_eq!(uri.user.as_deref(), Some("user;par=u%40example.net"));
    assert_eq!(uri.host, "example.com");
    assert_eq!(r.headers.count("Accept"), 6);
}

#[test]
fn framing_details() {
    let r = request("dblreq.dat");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(
        r.headers.get("Call-ID"),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    );

    let r = request("mpart01.dat");
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0));
    assert!(r.body.ends_with(b"--7a9cbec02ceef655--\r\n"));

    let r = request("longreq.dat");
    assert_eq!(r.headers.count("Via"), 34);
    assert_eq!(r.body.len(), 150);
    let to = parse_name_addr(r.headers.get("To").expect("To")).expect("To");
    assert!(to.display.expect("display").ends_with("proportion"));
    let uri = parse_uri(&to.uri).expect("uri");
    assert_eq!(uri.port, Some(6000));
    assert_eq!(uri.params.len(), 3);

    let r = request("inv2543.dat");
    let via = parse_via(r.headers.get("Via").expect("Via")).expect("Via");
    assert_eq!(via.branch(), None);
    assert!(r.headers.get("Content-Length").is_none());
    assert!(r.body.starts_with(b"v=0\r\n"));

    let r = request("transports.dat");
    let transports: Vec<String> = r
        .headers
        .get_all("Via")
        .map(|v| parse_via(v).expect("via").transport)
        .collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);

    let r = request("lwsstart.dat");
    assert_eq!(r.uri, "sip:user@example.com");
    let r = request("trws.dat");
    assert_eq!(r.uri, "sip:remote-target@example.com");
    assert_eq!(r.version, "SIP/2.0");
}

#[test]
fn contact_parameter_placement() {
    let r = request("cparam01.dat");
    let c = parse_name_addr(r.headers.get("Contact").expect("Contact")).expect("Contact");
    assert_eq!(c.uri, "sip:+19725552222@gw1.example.net");
    assert!(c.has_param("unknownparam"));

    let r = request("cparam02.dat");
    let c = parse_name_addr(r.headers.get("Contact").expect("Contact")).expect("Contact");
    assert!(c.params.is_empty());
    assert!(parse_uri(&c.uri).expect("uri").has_param("unknownparam"));

    let r = request("regescrt.dat");
    let c = parse_name_addr(r.headers.get("m").expect("Contact")).expect("Contact");
    let uri = parse_uri(&c.uri).expect("uri");
    assert_eq!(
        uri.headers,
        [("Route".to_owned(), "%3Csip:sip.example.com%3E".to_owned())]
    );
}

#[test]
fn uri_schemes_for_the_ua() {
    let schemes: Vec<String> = ["unkscm.dat", "novelsc.dat", "zeromf.dat"]
        .iter()
        .map(|f| parse_uri(&request(f).uri).expect("uri").scheme)
        .collect();
    assert_eq!(schemes, ["nobodyknowsthisscheme", "soap.beep", "sip"]);
    let r = request("unksm2.dat");
    let to = parse_name_addr(r.headers.get("To").expect("To")).expect("To");
    assert_eq!(parse_uri(&to.uri).expect("uri").scheme, "isbn");
}

#[test]
fn response_details() {
    let r = response("unreason.dat");
    assert_eq!(r.status, 200);
    assert!(r.reason.starts_with("= 2**3 * 5**2 "));
    assert!(!r.reason.is_ascii());
    let r = response("noreason.dat");
    assert_eq!((r.status, r.reason.as_str()), (100, ""));
    let r = response("bigcode.dat");
    assert_eq!(r.status, u16::MAX);
    let r = response("bcast.dat");
    assert_eq!(r.headers.count("Via"), 2);
    let r = response("scalarlg.dat");
    assert!(parse_cseq(r.headers.get("CSeq").expect("CSeq")).is_err());
}

#[test]
fn rejection_reasons_are_specific() {
    let reason = |f: &str| validate_request(&request(f)).expect_err(f).reason;
    assert!(reason("insuf.dat").contains("missing"));
    assert!(reason("multi01.dat").contains("multiple"));
    assert!(reason("mcl01.dat").contains("Content-Length"));
    assert!(reason("clerr.dat").contains("larger"));
    assert!(reason("scalar02.dat").contains("2**32-1"));
    assert!(reason("badinv01.dat").contains("Via"));
    assert!(reason("quotbal.dat").contains("To"));
    assert!(reason("baddn.dat").contains("From"));
    assert!(reason("regbadct.dat").contains("Contact"));
    assert!(reason("ltgtruri.dat").contains("Request-URI"));
    assert!(reason("escruri.dat").contains("Request-URI"));
    assert_eq!(reason("badvers.dat"), "Version Not Supported");
    // Reason phrases are fixed text: no peer data, no CR/LF.
    for &(file, _, expect, _) in TABLE {
        if let (Reject(_), Ok(Message::Request(r))) = (expect, parse(&load(file))) {
            let rej = validate_request(&r).expect_err(file);
            assert!(
                rej.reason.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{file}"
            );
            let resp = rej.to_response(&r);
            assert_eq!(resp.status, rej.status);
        }
    }
}

// ───────────────────────────── mutation fuzz ─────────────────────────────

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[&[u8]] = &[
    b":",
    b";",
    b",",
    b"<",
    b">",
    b"\"",
    b"\\",
    b"%",
    b" ",
    b"\t",
    b"\r\n",
    b"\r\n ",
    b"\r",
    b"\n",
    b"=",
    b"@",
    b"?",
    b"[",
    b"]",
    b"\0",
    b"\xff",
    b"\xc3",
    b"SIP/2.0",
    b"sip:",
    b"99999999999999999999",
    b"-1",
    b";;",
    b",,",
    b"\r\n\r\n",
    b"l: 5\r\n",
    b"Via: ",
    b"\"\\",
    b"[::",
    b":65536",
    b"%4",
    b"\xe2\x82\xac",
];

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut d = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(len + 1);
                let tok = INTERESTING[rng.below(INTERESTING.len())];
                d.splice(i..i, tok.iter().copied());
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16);
                d.drain(i..(i + n).min(len));
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(64);
                let chunk: Vec<u8> = d[i..(i + n).min(len)].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, chunk);
            }
            4 => {
                let i = rng.below(len + 1);
                d.truncate(i);
            }
            5 if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                d.swap(a, b);
            }
            _ if len > 0 => {
                // Replace a byte with a printable ASCII one.
                let i = rng.below(len);
                d[i] = 0x20 + (rng.next() % 95) as u8;
            }
            _ => {}
        }
    }
    d
}

/// Every public function on one input; returns whether it parsed.
fn exercise(input: &[u8]) -> bool {
    let Ok(m) = parse(input) else {
        return false;
    };
    let headers = m.headers().clone();
    for (name, value) in headers.iter() {
        let _ = headers.get(name);
        let _ = headers.count(name);
        for v in headers.get_all(name) {
            if let Ok(na) = parse_name_addr(v) {
                let _ = na.tag();
                assert_eq!(
                    parse_name_addr(&na.to_string()).as_ref(),
                    Ok(&na),
                    "name-addr display round trip"
                );
                if let Ok(u) = parse_uri(&na.uri) {
                    assert_eq!(parse_uri(&u.to_string()).as_ref(), Ok(&u), "uri round trip");
                }
            }
            if let Ok(via) = parse_via(v) {
                let _ = (via.branch(), via.sent_by(), via.has_param("rport"));
                assert_eq!(
                    parse_via(&via.to_string()).as_ref(),
                    Ok(&via),
                    "via round trip"
                );
            }
            let _ = parse_cseq(v);
        }
        let _ = parse_uri(value);
    }
    match &m {
        Message::Request(r) => {
            let _ = validate_request(r);
            if let Ok(u) = parse_uri(&r.uri) {
                assert_eq!(parse_uri(&u.to_string()).as_ref(), Ok(&u), "uri round trip");
            }
            let skeleton = response_skeleton(r, 400, "Bad Request");
            let _ = validate_response(&skeleton);
            assert!(parse(&skeleton.to_bytes()).is_ok(), "skeleton re-parses");
        }
        Message::Response(r) => {
            let _ = validate_response(r);
        }
    }
    assert_round_trip("mutant", &m);
    true
}

#[test]
fn mutation_fuzz_never_panics() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let files: Vec<Vec<u8>> = TABLE.iter().map(|(f, ..)| load(f)).collect();
    let mut parsed = 0;
    let mut total = 0;
    for round in 0..120 {
        for (i, original) in files.iter().enumerate() {
            let input = mutate(&mut rng, original);
            let ok = std::panic::catch_unwind(|| exercise(&input)).unwrap_or_else(|_| {
                panic!(
                    "panic on mutant of {} (round {round}): {:?}",
                    TABLE[i].0,
                    String::from_utf8_lossy(&input)
                )
            });
            parsed += usize::from(ok);
            total += 1;
        }
    }
    // Pure noise, and noise behind a valid start line.
    for _ in 0..500 {
        let n = rng.below(300);
        let mut noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if rng.below(2) == 0 {
            let mut v = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
            v.append(&mut noise);
            noise = v;
        }
        exercise(&noise);
        total += 1;
    }
    assert!(total >= 6000, "{total}");
    // The mutations must not be so destructive that nothing parses.
    assert!(
        parsed > total / 4,
        "only {parsed} of {total} mutants parsed"
    );
    eprintln!("{parsed} of {total} mutants parsed and round-tripped");
    assert_eq!(parse(b"\r\n\r\n"), Err(message::ParseError::Empty));
}
