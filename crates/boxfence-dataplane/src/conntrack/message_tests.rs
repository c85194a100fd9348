use boxfence_policy::Protocol;

use super::*;
use crate::netlink::{Start, messages};

/// `NLM_F_MULTI`, as dump replies carry it.
const NLM_F_MULTI: u16 = 0x2;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `CTA_TUPLE_REPLY`.
const CTA_TUPLE_REPLY: u16 = 2;
/// `CTA_PROTO_ICMP_ID`.
const CTA_PROTO_ICMP_ID: u16 = 4;

/// Writes a nested tuple of `proto` from `src` to `dst`, as the kernel does.
fn put_tuple(writer: &mut Writer, kind: u16, (src, dst): (IpAddr, IpAddr), proto: &[(u16, &[u8])]) {
    let tuple = writer.begin_nested(kind);
    let ip = writer.begin_nested(CTA_TUPLE_IP);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            writer.put(CTA_IP_V4_SRC, &s.octets());
            writer.put(CTA_IP_V4_DST, &d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            writer.put(CTA_IP_V6_SRC, &s.octets());
            writer.put(CTA_IP_V6_DST, &d.octets());
        }
        _ => unreachable!("one family"),
    }
    writer.end_nested(ip);
    let nested: Start = writer.begin_nested(CTA_TUPLE_PROTO);
    for (kind, value) in proto {
        writer.put(*kind, value);
    }
    writer.end_nested(nested);
    if kind == CTA_TUPLE_ORIG {
        writer.put(CTA_TUPLE_ZONE, &7u16.to_be_bytes());
    }
    writer.end_nested(tuple);
}

/// One dump reply: an entry of `proto` from `src` to `dst`, id 0xdeadbeef,
/// in zone 7 in the original direction.
fn dumped(family: u8, addresses: (IpAddr, IpAddr), proto: &[(u16, &[u8])]) -> Vec<u8> {
    let mut writer = Writer::with_capacity(256);
    let start = writer.begin_message(IPCTNL_MSG_CT_NEW, NLM_F_MULTI, 9, family, 0);
    put_tuple(&mut writer, CTA_TUPLE_ORIG, addresses, proto);
    put_tuple(
        &mut writer,
        CTA_TUPLE_REPLY,
        (addresses.1, addresses.0),
        proto,
    );
    writer.put(CTA_ID, &0xdead_beef_u32.to_be_bytes());
    writer.end_message(start);
    writer.into_bytes()
}

fn decode(bytes: &[u8]) -> Entry {
    let message = messages(bytes).next().expect("a message").expect("framed");
    Entry::decode(message.payload).expect("an entry")
}

fn tcp(sport: u16, dport: u16) -> Vec<(u16, Vec<u8>)> {
    vec![
        (CTA_PROTO_NUM, vec![6]),
        (CTA_PROTO_SRC_PORT, sport.to_be_bytes().to_vec()),
        (CTA_PROTO_DST_PORT, dport.to_be_bytes().to_vec()),
    ]
}

fn borrowed(proto: &[(u16, Vec<u8>)]) -> Vec<(u16, &[u8])> {
    proto.iter().map(|(k, v)| (*k, v.as_slice())).collect()
}

fn v4() -> (IpAddr, IpAddr) {
    (
        "10.200.0.2".parse().expect("ip"),
        "198.51.100.10".parse().expect("ip"),
    )
}

#[test]
fn the_dump_request_is_a_bare_get_of_both_families() {
    let bytes = dump_request(42);
    let mut expected = Vec::new();
    expected.extend_from_slice(&20u32.to_ne_bytes());
    expected.extend_from_slice(&0x0101u16.to_ne_bytes()); // CTNETLINK << 8 | GET
    expected.extend_from_slice(&0x0301u16.to_ne_bytes()); // REQUEST | DUMP
    expected.extend_from_slice(&42u32.to_ne_bytes());
    expected.extend_from_slice(&0u32.to_ne_bytes());
    expected.extend_from_slice(&[0, 0, 0, 0]); // AF_UNSPEC, version 0, res_id 0
    assert_eq!(bytes, expected);
}

#[test]
fn an_entry_decodes_with_its_original_tuple_zone_and_id() {
    let proto = tcp(40000, 80);
    let entry = decode(&dumped(AF_INET, v4(), &borrowed(&proto)));
    assert_eq!((entry.src, entry.dst), v4());
    assert_eq!(entry.zone, 7);
    assert_eq!(entry.id, Some(0xdead_beef_u32.to_be_bytes()));
    let flow = entry.flow;
    assert_eq!(flow.protocol, Protocol::Tcp);
    assert_eq!((flow.sport, flow.dport), (Some(40000), Some(80)));
}

#[test]
fn icmp_has_no_ports_and_other_protocols_no_flow() {
    let v6 = (
        "fd00:b0f::2".parse().expect("ip"),
        "2001:db8::1".parse().expect("ip"),
    );
    let icmp: [(u16, &[u8]); 2] = [(CTA_PROTO_NUM, &[58]), (CTA_PROTO_ICMP_ID, &[0, 7])];
    let entry = decode(&dumped(AF_INET6, v6, &icmp));
    assert_eq!(entry.src, v6.0);
    let flow = entry.flow;
    assert_eq!(
        (flow.protocol, flow.sport, flow.dport),
        (Protocol::Icmp, None, None)
    );
    let sctp: [(u16, &[u8]); 1] = [(CTA_PROTO_NUM, &[132])];
    let entry = decode(&dumped(AF_INET, v4(), &sctp));
    assert_eq!(
        (entry.flow.protocol, entry.flow.sport, entry.flow.dport),
        (Protocol::Other(132), None, None),
        "SCTP is policed as a protocol without ports"
    );
    assert_eq!(
        entry.dst,
        v4().1,
        "but its addresses are known, for a flush"
    );
}

#[test]
fn a_delete_sends_back_the_original_tuple_and_the_id() {
    let proto = tcp(40000, 80);
    let dump = dumped(AF_INET, v4(), &borrowed(&proto));
    let entry = decode(&dump);
    let mut writer = Writer::with_capacity(128);
    put_delete(&mut writer, &entry, 77);
    let bytes = writer.into_bytes();
    assert_eq!(bytes.len(), delete_len(&entry));
    let message = messages(&bytes).next().expect("a message").expect("framed");
    assert_eq!(message.kind, IPCTNL_MSG_CT_DELETE);
    assert_eq!(message.seq, 77);
    assert_eq!(
        u16::from_ne_bytes([bytes[6], bytes[7]]),
        NLM_F_REQUEST | NLM_F_ACK
    );
    assert_eq!(message.payload[..NFGENMSG_LEN], [AF_INET, 0, 0, 0]);
    let sent: Vec<(u16, &[u8])> = netlink::attributes(&message.payload[NFGENMSG_LEN..]).collect();
    let dumped_message = messages(&dump).next().expect("a message").expect("framed");
    let dumped_tuple = netlink::attributes(&dumped_message.payload[NFGENMSG_LEN..])
        .find(|(kind, _)| *kind == CTA_TUPLE_ORIG)
        .map(|(_, value)| value)
        .expect("tuple");
    assert_eq!(
        sent,
        vec![
            (CTA_TUPLE_ORIG, dumped_tuple),
            (CTA_ID, &0xdead_beef_u32.to_be_bytes()[..]),
        ],
        "the tuple (with its zone) exactly as dumped, then the id"
    );
    assert_eq!(
        u16::from_ne_bytes([bytes[22], bytes[23]]) & NLA_F_NESTED,
        NLA_F_NESTED,
        "the tuple is marked nested"
    );
}

#[test]
fn truncated_entries_are_skipped() {
    let proto = tcp(1, 2);
    let bytes = dumped(AF_INET, v4(), &borrowed(&proto));
    let message = messages(&bytes).next().expect("a message").expect("framed");
    for cut in [0, 3, 12, 40] {
        let payload = &message.payload[..cut.min(message.payload.len())];
        assert_eq!(Entry::decode(payload).map(|e| e.src), None, "cut at {cut}");
    }
}
