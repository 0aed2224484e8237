//! RFC 3263 lookups against hand-made DNS answers.

use std::collections::HashMap;

use hickory_proto::rr::rdata::{A, AAAA, NAPTR, SRV};

use super::*;

/// A tiny DNS server in memory: records by (name, type).
#[derive(Default)]
struct Zone(HashMap<(String, RecordType), Vec<(u32, RData)>>);

impl Zone {
    fn add(&mut self, name: &str, ttl: u32, data: RData) {
        let rtype = data.record_type();
        self.0
            .entry((name.to_owned(), rtype))
            .or_default()
            .push((ttl, data));
    }

    /// Answers every query the lookup sends until it has a result.
    fn serve(&self, l: &mut Lookup) -> Vec<(String, RecordType)> {
        let mut asked = Vec::new();
        for _ in 0..100 {
            let Some((id, q)) = l.poll_query() else { break };
            let m = Message::from_vec(&q).unwrap();
            assert!(m.metadata.recursion_desired);
            let query = &m.queries[0];
            let key = (query.name().to_ascii(), query.query_type());
            asked.push(key.clone());
            let mut r = Message::response(id, OpCode::Query);
            r.add_query(query.clone());
            match self.0.get(&key) {
                Some(rs) => {
                    for (ttl, d) in rs {
                        r.add_answer(Record::from_rdata(query.name().clone(), *ttl, d.clone()));
                    }
                }
                None => r.metadata.response_code = ResponseCode::NXDomain,
            }
            l.handle_response(&r.to_vec().unwrap());
        }
        asked
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A::new(ip[0], ip[1], ip[2], ip[3]))
}

fn srv(prio: u16, weight: u16, port: u16, target: &str) -> RData {
    RData::SRV(SRV::new(prio, weight, port, name(target)))
}

fn t(transport: Transport, addr: &str) -> Target {
    Target {
        transport,
        addr: addr.parse().unwrap(),
    }
}

#[test]
fn naptr_then_srv_then_addresses_in_order_with_the_smallest_ttl() {
    let mut z = Zone::default();
    z.add(
        "trunk.test.",
        3600,
        RData::NAPTR(NAPTR::new(
            10,
            20,
            b"s".to_vec().into(),
            b"SIP+D2U".to_vec().into(),
            Box::default(),
            name("_sip._udp.trunk.test."),
        )),
    );
    z.add(
        "trunk.test.",
        3600,
        RData::NAPTR(NAPTR::new(
            5,
            10,
            b"S".to_vec().into(),
            b"SIPS+D2T".to_vec().into(),
            Box::default(),
            name("_sips._tcp.trunk.test."),
        )),
    );
    z.add(
        "trunk.test.",
        3600,
        RData::NAPTR(NAPTR::new(
            1,
            10,
            b"s".to_vec().into(),
            b"E2U+sip".to_vec().into(),
            Box::default(),
            name("x.trunk.test."),
        )),
    );
    z.add(
        "_sips._tcp.trunk.test.",
        600,
        srv(10, 0, 5061, "tls.trunk.test."),
    );
    z.add(
        "_sip._udp.trunk.test.",
        120,
        srv(20, 5, 5080, "b.trunk.test."),
    );
    z.add(
        "_sip._udp.trunk.test.",
        120,
        srv(10, 5, 5070, "a.trunk.test."),
    );
    z.add(
        "_sip._udp.trunk.test.",
        120,
        srv(20, 50, 5090, "c.trunk.test."),
    );
    z.add("tls.trunk.test.", 900, a([192, 0, 2, 1]));
    z.add("a.trunk.test.", 900, a([192, 0, 2, 2]));
    z.add("b.trunk.test.", 900, a([192, 0, 2, 3]));
    z.add("c.trunk.test.", 60, a([192, 0, 2, 4]));
    z.add(
        "c.trunk.test.",
        60,
        RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 4)),
    );
    let mut l = Lookup::new("trunk.test", None, None, 1000);
    let asked = z.serve(&mut l);
    assert_eq!(asked[0], ("trunk.test.".to_owned(), RecordType::NAPTR));
    let r = l.result().unwrap().clone().unwrap();
    assert_eq!(
        r.targets,
        vec![
            t(Transport::Tls, "192.0.2.1:5061"),
            t(Transport::Udp, "192.0.2.2:5070"),
            t(Transport::Udp, "192.0.2.4:5090"),
            t(Transport::Udp, "[2001:db8::4]:5090"),
            t(Transport::Udp, "192.0.2.3:5080"),
        ]
    );
    assert_eq!(r.ttl, Some(Duration::from_secs(60)));
}

#[test]
fn without_naptr_srv_per_transport_and_without_srv_the_name_itself() {
    let mut z = Zone::default();
    z.add("_sip._tcp.pbx.test.", 300, srv(1, 1, 5060, "pbx.test."));
    z.add("pbx.test.", 300, a([127, 0, 0, 1]));
    let mut l = Lookup::new("pbx.test", None, None, 1);
    let asked = z.serve(&mut l);
    assert!(asked.contains(&("_sip._udp.pbx.test.".to_owned(), RecordType::SRV)));
    assert!(asked.contains(&("_sips._tcp.pbx.test.".to_owned(), RecordType::SRV)));
    assert_eq!(
        l.result().unwrap().clone().unwrap().targets,
        vec![t(Transport::Tcp, "127.0.0.1:5060")]
    );

    let mut z = Zone::default();
    z.add("plain.test.", 30, a([127, 0, 0, 2]));
    let mut l = Lookup::new("plain.test", None, Some(Transport::Tls), 1);
    let asked = z.serve(&mut l);
    assert_eq!(
        asked[0],
        ("_sips._tcp.plain.test.".to_owned(), RecordType::SRV)
    );
    let r = l.result().unwrap().clone().unwrap();
    assert_eq!(r.targets, vec![t(Transport::Tls, "127.0.0.2:5061")]);
    assert_eq!(r.ttl, Some(Duration::from_secs(30)));

    // An explicit port: addresses only.
    let mut l = Lookup::new("plain.test", Some(5099), None, 1);
    let asked = z.serve(&mut l);
    assert!(
        asked
            .iter()
            .all(|(_, t)| matches!(t, RecordType::A | RecordType::AAAA))
    );
    assert_eq!(
        l.result().unwrap().clone().unwrap().targets,
        vec![t(Transport::Udp, "127.0.0.2:5099")]
    );
}

#[test]
fn addresses_need_no_dns_and_nothing_is_an_error() {
    let mut l = Lookup::new("[::1]", Some(5070), Some(Transport::Tcp), 1);
    assert!(l.poll_query().is_none());
    assert_eq!(
        l.result().unwrap().clone().unwrap(),
        Resolved {
            targets: vec![t(Transport::Tcp, "[::1]:5070")],
            ttl: None
        }
    );
    let mut l = Lookup::new("nothing.test", None, None, 1);
    Zone::default().serve(&mut l);
    assert!(matches!(l.result(), Some(Err(DnsError::NoTarget(_)))));
    assert!(matches!(
        Lookup::new("bad name!", None, None, 1).result(),
        Some(Err(DnsError::BadName(_)))
    ));
}

#[test]
fn unanswered_and_garbage_answers_are_empty_ones() {
    let mut l = Lookup::new("slow.test", Some(5060), None, 7);
    let ids: Vec<u16> = std::iter::from_fn(|| l.poll_query())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 2);
    for junk in [&[][..], &[0u8; 12][..], &[0xFF; 600][..]] {
        l.handle_response(junk);
    }
    assert!(l.result().is_none());
    for id in ids {
        l.handle_failed(id);
    }
    assert!(matches!(l.result(), Some(Err(DnsError::NoTarget(_)))));
}

#[test]
fn host_port_splitting() {
    assert_eq!(
        split_host_port("sip.example.net"),
        ("sip.example.net".into(), None)
    );
    assert_eq!(
        split_host_port("sip.example.net:5061"),
        ("sip.example.net".into(), Some(5061))
    );
    assert_eq!(split_host_port("[::1]:5060"), ("::1".into(), Some(5060)));
    assert_eq!(split_host_port("::1"), ("::1".into(), None));
    assert_eq!(split_host_port("h:x"), ("h:x".into(), None));
}
