//! Encoding and reply parsing, without a kernel.
//!
//! The expected bytes are whole batches nft 1.0.6 sent (captured with
//! `strace -e trace=sendmsg -e write=3 nft add element ...` against
//! `table inet t { set s4 { type ipv4_addr; flags timeout; } ... }`, on a
//! little-endian host), kept verbatim. Ours differ from nft's in exactly
//! two ways, applied by [`as_we_send`]: every set-element message asks for
//! an acknowledgement (`NLM_F_ACK`), and nft's `NFTA_SET_ELEM_LIST_SET_ID`
//! (type 4, for sets created in the same batch) is left out.

#![cfg(target_endian = "little")]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use nix::errno::Errno;

use super::message::{Operation, SetGroup, encode_batch, group};
use super::reply::{Acks, Outcome};
use super::{ElementKey, NetlinkError, SetElement};
use crate::netlink::{NLA_F_NESTED, messages};

/// `nft add element inet t s4 { 10.1.2.3 timeout 30s }`.
const NFT_ADD_S4: &str = "14 00 00 00 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 0a 4c 00 00 00 0c 0a 01 04 01 00 00 00 00 00 00 00 01 00 00 00 06 00 01 00 74 00 00 00 07 00 02 00 73 34 00 00 08 00 04 00 00 00 00 01 20 00 03 80 1c 00 01 80 0c 00 04 00 00 00 00 00 00 00 75 30 0c 00 01 80 08 00 01 00 0a 01 02 03 14 00 00 00 11 00 01 00 02 00 00 00 00 00 00 00 00 00 00 0a";
/// `nft add element inet t s6 { 2001:db8::1 timeout 1h }`.
const NFT_ADD_S6: &str = "14 00 00 00 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 0a 58 00 00 00 0c 0a 01 04 01 00 00 00 00 00 00 00 01 00 00 00 06 00 01 00 74 00 00 00 07 00 02 00 73 36 00 00 08 00 04 00 00 00 00 02 2c 00 03 80 28 00 01 80 0c 00 04 00 00 00 00 00 00 36 ee 80 18 00 01 80 14 00 01 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 14 00 00 00 11 00 01 00 02 00 00 00 00 00 00 00 00 00 00 0a";
/// `nft add element inet t c4 { "eth0" . 10.1.2.3 timeout 30s }`.
const NFT_ADD_C4: &str = "14 00 00 00 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 0a 5c 00 00 00 0c 0a 01 04 01 00 00 00 00 00 00 00 01 00 00 00 06 00 01 00 74 00 00 00 07 00 02 00 63 34 00 00 08 00 04 00 00 00 00 03 30 00 03 80 2c 00 01 80 0c 00 04 00 00 00 00 00 00 00 75 30 1c 00 01 80 18 00 01 00 65 74 68 30 00 00 00 00 00 00 00 00 00 00 00 00 0a 01 02 03 14 00 00 00 11 00 01 00 02 00 00 00 00 00 00 00 00 00 00 0a";
/// `nft add element inet t c6 { "veth-box1" . 2001:db8::2 timeout 5m }`.
const NFT_ADD_C6: &str = "14 00 00 00 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 0a 68 00 00 00 0c 0a 01 04 01 00 00 00 00 00 00 00 01 00 00 00 06 00 01 00 74 00 00 00 07 00 02 00 63 36 00 00 08 00 04 00 00 00 00 04 3c 00 03 80 38 00 01 80 0c 00 04 00 00 00 00 00 00 04 93 e0 28 00 01 80 24 00 01 00 76 65 74 68 2d 62 6f 78 31 00 00 00 00 00 00 00 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02 14 00 00 00 11 00 01 00 02 00 00 00 00 00 00 00 00 00 00 0a";
/// `nft add element inet t s4 { 10.1.2.4 }` (no timeout).
const NFT_ADD_S4_NO_TIMEOUT: &str = "14 00 00 00 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 0a 40 00 00 00 0c 0a 01 04 01 00 00 00 00 00 00 00 01 00 00 00 06 00 01 00 74 00 00 00 07 00 02 00 73 34 00 00 08 00 04 00 00 00 00 01 14 00 03 80 10 00 01 80 0c 00 01 80 08 00 01 00 0a 01 02 04 14 00 00 00 11 00 01 00 02 00 00 00 00 00 00 00 00 00 00 0a";
/// `nft delete element inet t s4 { 10.1.2.3 }`.
const NFT_DELETE_S4: &str = "14 00 00 00 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 0a 38 00 00 00 0e 0a 01 00 01 00 00 00 00 00 00 00 01 00 00 00 06 00 01 00 74 00 00 00 07 00 02 00 73 34 00 00 14 00 03 80 10 00 01 80 0c 00 01 80 08 00 01 00 0a 01 02 03 14 00 00 00 11 00 01 00 02 00 00 00 00 00 00 00 00 00 00 0a";
/// `nft delete element inet t c4 { "eth0" . 10.1.2.3 }`.
const NFT_DELETE_C4: &str = "14 00 00 00 10 00 01 00 00 00 00 00 00 00 00 00 00 00 00 0a 48 00 00 00 0e 0a 01 00 01 00 00 00 00 00 00 00 01 00 00 00 06 00 01 00 74 00 00 00 07 00 02 00 63 34 00 00 24 00 03 80 20 00 01 80 1c 00 01 80 18 00 01 00 65 74 68 30 00 00 00 00 00 00 00 00 00 00 00 00 0a 01 02 03 14 00 00 00 11 00 01 00 02 00 00 00 00 00 00 00 00 00 00 0a";

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// nft's batch as we send it: `NLM_F_ACK` on the set-element message
/// (the one between `BATCH_BEGIN` and `BATCH_END`), without its
/// `NFTA_SET_ELEM_LIST_SET_ID`.
fn as_we_send(nft: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = nft;
    while !rest.is_empty() {
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let (message, tail) = rest.split_at(len);
        rest = tail;
        let kind = u16::from_le_bytes([message[4], message[5]]);
        if kind != (10 << 8) | 12 && kind != (10 << 8) | 14 {
            out.extend_from_slice(message);
            continue;
        }
        let at = out.len();
        out.extend_from_slice(&message[..20]); // nlmsghdr, nfgenmsg
        out[at + 6] |= 0x04; // NLM_F_ACK
        let mut attrs = &message[20..];
        while !attrs.is_empty() {
            let len = usize::from(u16::from_le_bytes([attrs[0], attrs[1]]));
            let kind = u16::from_le_bytes([attrs[2], attrs[3]]) & !NLA_F_NESTED;
            let padded = (len + 3) & !3;
            if kind != 4 {
                out.extend_from_slice(&attrs[..padded]);
            }
            attrs = &attrs[padded..];
        }
        let len = u32::try_from(out.len() - at).expect("small");
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
    out
}

fn ours(table: &str, operation: Operation, elements: &[SetElement]) -> Vec<u8> {
    let groups = group(table, elements).expect("valid elements");
    let steps: Vec<(Operation, &SetGroup<'_>)> = groups.iter().map(|g| (operation, g)).collect();
    encode_batch(table, 0, &steps).bytes
}

fn element(set: &str, key: ElementKey, timeout: Option<Duration>) -> SetElement {
    SetElement::new(set, key, timeout)
}

const V4: Ipv4Addr = Ipv4Addr::new(10, 1, 2, 3);

#[test]
fn the_nft_captures_differ_from_ours_only_by_ack_and_set_id() {
    let nft = hex(NFT_ADD_S4);
    let ours = as_we_send(&nft);
    assert_eq!(ours.len(), nft.len() - 8, "SET_ID is 8 bytes");
    assert_eq!(&ours[..20], &nft[..20], "BATCH_BEGIN unchanged");
    assert_eq!(ours[20 + 6], 0x05, "NLM_F_REQUEST | NLM_F_ACK");
    assert_eq!(
        &ours[ours.len() - 20..],
        &nft[nft.len() - 20..],
        "BATCH_END unchanged"
    );
}

#[test]
fn add_ipv4_with_timeout_is_byte_exact() {
    let e = element("s4", ElementKey::Ipv4(V4), Some(Duration::from_secs(30)));
    assert_eq!(
        ours("t", Operation::New, &[e]),
        as_we_send(&hex(NFT_ADD_S4))
    );
}

#[test]
fn add_ipv6_with_timeout_is_byte_exact() {
    let key = ElementKey::Ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let e = element("s6", key, Some(Duration::from_secs(3600)));
    assert_eq!(
        ours("t", Operation::New, &[e]),
        as_we_send(&hex(NFT_ADD_S6))
    );
}

#[test]
fn add_ifname_ipv4_concatenation_is_byte_exact() {
    let key = ElementKey::IfnameIpv4("eth0".into(), V4);
    let e = element("c4", key, Some(Duration::from_secs(30)));
    assert_eq!(
        ours("t", Operation::New, &[e]),
        as_we_send(&hex(NFT_ADD_C4))
    );
}

#[test]
fn add_ifname_ipv6_concatenation_is_byte_exact() {
    let key = ElementKey::IfnameIpv6(
        "veth-box1".into(),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
    );
    let e = element("c6", key, Some(Duration::from_secs(300)));
    assert_eq!(
        ours("t", Operation::New, &[e]),
        as_we_send(&hex(NFT_ADD_C6))
    );
}

#[test]
fn add_without_timeout_is_byte_exact() {
    let e = element("s4", ElementKey::Ipv4(Ipv4Addr::new(10, 1, 2, 4)), None);
    assert_eq!(
        ours("t", Operation::New, &[e]),
        as_we_send(&hex(NFT_ADD_S4_NO_TIMEOUT))
    );
}

#[test]
fn delete_is_byte_exact_and_drops_timeouts() {
    let e = element("s4", ElementKey::Ipv4(V4), Some(Duration::from_secs(30)));
    assert_eq!(
        ours("t", Operation::Delete, &[e]),
        as_we_send(&hex(NFT_DELETE_S4))
    );
    let e = element("c4", ElementKey::IfnameIpv4("eth0".into(), V4), None);
    assert_eq!(
        ours("t", Operation::Delete, &[e]),
        as_we_send(&hex(NFT_DELETE_C4))
    );
}

#[test]
fn destroy_differs_from_delete_only_in_message_type() {
    let e = [element("s4", ElementKey::Ipv4(V4), None)];
    let delete = ours("t", Operation::Delete, &e);
    let mut destroy = ours("t", Operation::Destroy, &e);
    assert_eq!(destroy[24], 30, "NFT_MSG_DESTROYSETELEM");
    destroy[24] = 14;
    assert_eq!(destroy, delete);
}

#[test]
fn one_message_per_set_in_order_of_first_appearance() {
    let elements = [
        element("s4", ElementKey::Ipv4(V4), Some(Duration::from_secs(1))),
        element("s6", ElementKey::Ipv6(Ipv6Addr::LOCALHOST), None),
        element("s4", ElementKey::Ipv4(Ipv4Addr::new(10, 0, 0, 2)), None),
    ];
    let groups = group("t", &elements).expect("valid");
    let steps: Vec<_> = groups.iter().map(|g| (Operation::New, g)).collect();
    let batch = encode_batch("t", 41, &steps);
    let sets: Vec<_> = batch
        .parts
        .iter()
        .map(|p| (p.set.as_str(), p.elements))
        .collect();
    assert_eq!(sets, [("s4", 2), ("s6", 1)]);
    let seqs: Vec<_> = messages(&batch.bytes)
        .map(|m| m.expect("parses").seq)
        .collect();
    assert_eq!(seqs, [41, 42, 43, 44], "BEGIN, one per set, END");
}

#[test]
fn a_key_given_twice_is_sent_once_with_its_last_timeout() {
    for copies in [2, 40] {
        // 40 elements take the hashing path.
        let mut elements: Vec<_> = (0..copies)
            .map(|i| element("s4", ElementKey::Ipv4(V4), Some(Duration::from_secs(i + 1))))
            .collect();
        elements.push(element("other", ElementKey::Ipv4(V4), None));
        let groups = group("t", &elements).expect("valid");
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].items.len(), 1);
        assert_eq!(groups[0].items[0].timeout, Some(copies * 1000));
        assert_eq!(groups[1].items.len(), 1, "another set keeps its own copy");
    }
}

#[test]
fn long_element_lists_are_split_into_messages_of_the_same_batch() {
    let elements: Vec<_> = (0..1500u32)
        .map(|i| {
            let addr = Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i));
            element(
                "c6",
                ElementKey::IfnameIpv6("veth-box1".into(), addr),
                Some(Duration::from_secs(60)),
            )
        })
        .collect();
    let groups = group("t", &elements).expect("valid");
    let batch = encode_batch("t", 7, &[(Operation::New, &groups[0])]);
    assert_eq!(batch.parts.len(), 2, "56 bytes an element, 64 KiB a list");
    assert_eq!(batch.parts.iter().map(|p| p.elements).sum::<usize>(), 1500);
    let parsed: Vec<_> = messages(&batch.bytes).map(|m| m.expect("parses")).collect();
    assert_eq!(parsed.len(), 4);
    assert_eq!(
        parsed.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [7, 8, 9, 10]
    );
    for message in &parsed[1..3] {
        // nfgenmsg, table "t", set "c6", then the list: its 16-bit length holds.
        let list = &message.payload[4 + 8 + 8..];
        let len = usize::from(u16::from_le_bytes([list[0], list[1]]));
        assert_eq!(len, list.len(), "the list fills the rest of the message");
    }
}

#[test]
fn invalid_input_is_refused_before_sending() {
    let bad_ifname = element(
        "c4",
        ElementKey::IfnameIpv4("sixteen-bytes-xx".into(), V4),
        None,
    );
    assert!(matches!(
        group("t", &[bad_ifname]),
        Err(NetlinkError::InvalidIfname(_))
    ));
    let empty_ifname = element("c4", ElementKey::IfnameIpv4(String::new(), V4), None);
    assert!(matches!(
        group("t", &[empty_ifname]),
        Err(NetlinkError::InvalidIfname(_))
    ));
    let fine = element("s4", ElementKey::Ipv4(V4), None);
    assert!(matches!(
        group("t\0x", std::slice::from_ref(&fine)),
        Err(NetlinkError::InvalidName(_))
    ));
    assert!(matches!(
        group(&"t".repeat(256), &[fine]),
        Err(NetlinkError::InvalidName(_))
    ));
    let no_set = element("", ElementKey::Ipv4(V4), None);
    assert!(matches!(
        group("t", &[no_set]),
        Err(NetlinkError::InvalidName(_))
    ));
    let zero = element("s4", ElementKey::Ipv4(V4), Some(Duration::ZERO));
    let error = group("t", &[zero]).expect_err("zero timeout");
    assert!(matches!(error, NetlinkError::InvalidTimeout { .. }));
    assert!(error.to_string().contains("s4"), "{error}");
    let huge = element("s4", ElementKey::Ipv4(V4), Some(Duration::MAX));
    assert!(matches!(
        group("t", &[huge]),
        Err(NetlinkError::InvalidTimeout { .. })
    ));
}

#[test]
fn timeouts_round_up_to_whole_milliseconds() {
    let e = element(
        "s4",
        ElementKey::Ipv4(V4),
        Some(Duration::from_micros(1500)),
    );
    assert_eq!(
        group("t", &[e]).expect("valid")[0].items[0].timeout,
        Some(2)
    );
    let e = element("s4", ElementKey::Ipv4(V4), Some(Duration::from_nanos(1)));
    assert_eq!(
        group("t", &[e]).expect("valid")[0].items[0].timeout,
        Some(1)
    );
}

/// An `NLMSG_ERROR` reply to message `seq` (0: acknowledgement).
fn reply(seq: u32, error: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&36u32.to_ne_bytes());
    out.extend_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
    out.extend_from_slice(&0x100u16.to_ne_bytes()); // NLM_F_CAPPED
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&1234u32.to_ne_bytes());
    out.extend_from_slice(&error.to_ne_bytes());
    out.extend_from_slice(&[0; 16]); // the request's header
    out
}

fn two_set_batch(seq: u32) -> super::batch::Batch {
    let elements = [
        element("s4", ElementKey::Ipv4(V4), None),
        element("s6", ElementKey::Ipv6(Ipv6Addr::LOCALHOST), None),
    ];
    let groups = group("t", &elements).expect("valid");
    let steps: Vec<_> = groups.iter().map(|g| (Operation::New, g)).collect();
    encode_batch("t", seq, &steps)
}

#[test]
fn every_message_must_be_acknowledged() {
    let batch = two_set_batch(100);
    let mut acks = Acks::new(&batch);
    assert_eq!(
        acks.absorb(&reply(101, 0)).expect("parses"),
        Outcome::Pending
    );
    assert_eq!(
        acks.absorb(&reply(101, 0)).expect("parses"),
        Outcome::Pending,
        "duplicates count once"
    );
    assert_eq!(
        acks.absorb(&reply(99, 0)).expect("parses"),
        Outcome::Pending,
        "stale"
    );
    assert_eq!(
        acks.absorb(&reply(102, 0)).expect("parses"),
        Outcome::Committed
    );
}

#[test]
fn replies_may_share_a_datagram() {
    let batch = two_set_batch(u32::MAX); // wraps around
    let mut acks = Acks::new(&batch);
    let datagram = [reply(0, 0), reply(1, 0)].concat();
    assert_eq!(acks.absorb(&datagram).expect("parses"), Outcome::Committed);
}

#[test]
fn every_refused_message_is_reported_in_order() {
    let batch = two_set_batch(10);
    let mut acks = Acks::new(&batch);
    let datagram = [reply(12, -22), reply(11, -2)].concat();
    assert_eq!(
        acks.absorb(&datagram).expect("parses"),
        Outcome::Refused(vec![(0, Errno::ENOENT), (1, Errno::EINVAL)])
    );
}

#[test]
fn an_error_on_batch_begin_refuses_the_batch() {
    let batch = two_set_batch(10);
    let mut acks = Acks::new(&batch);
    assert_eq!(
        acks.absorb(&reply(10, 0)).expect("parses"),
        Outcome::Pending
    );
    assert_eq!(
        acks.absorb(&reply(10, -1)).expect("parses"),
        Outcome::BatchRefused(Errno::EPERM)
    );
}

#[test]
fn malformed_replies_are_errors() {
    let batch = two_set_batch(10);
    let mut acks = Acks::new(&batch);
    assert!(acks.absorb(&[1, 2, 3]).is_err());
    let mut long = reply(11, 0);
    long[0] = 200;
    assert!(acks.absorb(&long).is_err());
    let mut short = reply(11, 0);
    short.truncate(18);
    short[0] = 18;
    assert!(acks.absorb(&short).is_err());
}

#[test]
fn kernel_errors_name_the_operation_table_and_set() {
    let error = NetlinkError::Kernel {
        operation: "NEWSETELEM",
        table: "boxfence".into(),
        set: "learned4_box7".into(),
        elements: 3,
        errno: Errno::ENOENT,
    };
    let text = error.to_string();
    for part in [
        "NEWSETELEM",
        "inet boxfence",
        "learned4_box7",
        "3 element",
        "ENOENT",
        "no such table or set",
    ] {
        assert!(text.contains(part), "{text} lacks {part}");
    }
}

#[test]
fn the_socket_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<super::NftSocket>();
}
