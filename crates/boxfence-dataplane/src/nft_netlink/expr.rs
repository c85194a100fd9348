//! Rules as nf_tables expressions, in the order and registers nft 1.0.6
//! uses for the same text (so `nft list` shows our rules as it would
//! show its own; checked in `ruleset_tests`).

use std::net::IpAddr;

use crate::netlink::Writer;
use crate::nft::{Family, Match, Peer, Rule, Statement, Verdict};

/// `NFTA_LIST_ELEM`.
const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_EXPR_NAME`.
const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA`.
const NFTA_EXPR_DATA: u16 = 2;

/// `NFT_REG_VERDICT`.
const REG_VERDICT: u32 = 0;
/// `NFT_REG_1`: 16 bytes.
const REG_1: u32 = 1;
/// `NFT_REG_2`: the 16 bytes after `NFT_REG_1`.
const REG_2: u32 = 2;
/// `NFT_REG32_01`: the second 4 bytes of `NFT_REG_1`.
const REG32_01: u32 = 9;

/// `NFT_META_MARK`.
const META_MARK: u32 = 3;
/// `NFT_META_IIFNAME`.
const META_IIFNAME: u32 = 6;
/// `NFT_META_NFPROTO`.
const META_NFPROTO: u32 = 15;
/// `NFT_META_L4PROTO`.
const META_L4PROTO: u32 = 16;

/// `NFT_CT_ZONE`.
const CT_ZONE: u32 = 17;
/// `IP_CT_DIR_ORIGINAL`.
const CT_DIR_ORIGINAL: u8 = 0;

/// `NFT_PAYLOAD_NETWORK_HEADER`.
const BASE_NETWORK: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
const BASE_TRANSPORT: u32 = 2;

/// `NFPROTO_IPV4`.
const NFPROTO_IPV4: u8 = 2;
/// `NFPROTO_IPV6`.
const NFPROTO_IPV6: u8 = 10;

/// `NFT_OBJECT_COUNTER`.
pub(super) const OBJECT_COUNTER: u32 = 1;

/// `NFTA_DATA_VALUE`.
pub(super) const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT`.
pub(super) const NFTA_DATA_VERDICT: u16 = 2;

/// Writes the rule's `NFTA_RULE_EXPRESSIONS` content.
pub(super) fn write_rule(w: &mut Writer, rule: &Rule) {
    for m in &rule.matches {
        write_match(w, m);
    }
    for statement in &rule.statements {
        write_statement(w, *statement);
    }
    if let Some(counter) = &rule.counter {
        expression(w, "objref", |w| {
            w.put_be32(1, OBJECT_COUNTER); // NFTA_OBJREF_IMM_TYPE
            w.put_strz(2, counter); // NFTA_OBJREF_IMM_NAME
        });
    }
    if let Some(verdict) = &rule.verdict {
        expression(w, "immediate", |w| {
            w.put_be32(1, REG_VERDICT); // NFTA_IMMEDIATE_DREG
            let data = w.begin_nested(2); // NFTA_IMMEDIATE_DATA
            write_verdict(w, verdict);
            w.end_nested(data);
        });
    }
}

/// `NFTA_DATA_VERDICT` with the verdict's code and chain.
pub(super) fn write_verdict(w: &mut Writer, verdict: &Verdict) {
    /// `NF_ACCEPT`, `NFT_JUMP`, `NFT_GOTO`.
    const ACCEPT: i32 = 1;
    const JUMP: i32 = -3;
    const GOTO: i32 = -4;
    let (code, chain) = match verdict {
        Verdict::Accept => (ACCEPT, None),
        Verdict::Jump(chain) => (JUMP, Some(chain)),
        Verdict::Goto(chain) => (GOTO, Some(chain)),
    };
    let nested = w.begin_nested(NFTA_DATA_VERDICT);
    w.put(1, &code.to_be_bytes()); // NFTA_VERDICT_CODE
    if let Some(chain) = chain {
        w.put_strz(2, chain); // NFTA_VERDICT_CHAIN
    }
    w.end_nested(nested);
}

fn write_match(w: &mut Writer, m: &Match) {
    match m {
        Match::Addr { family, peer, set } => {
            nfproto(w, *family);
            payload(w, REG_1, BASE_NETWORK, address(*family, *peer));
            lookup(w, set);
        }
        Match::AddrMasked {
            family,
            peer,
            prefix_len,
            set,
        } => {
            nfproto(w, *family);
            let (offset, len) = address(*family, *peer);
            payload(w, REG_1, BASE_NETWORK, (offset, len));
            let mask = address_bytes(family.mask(*prefix_len));
            expression(w, "bitwise", |w| {
                w.put_be32(1, REG_1); // NFTA_BITWISE_SREG
                w.put_be32(2, REG_1); // NFTA_BITWISE_DREG
                w.put_be32(3, len); // NFTA_BITWISE_LEN
                let data = w.begin_nested(4); // NFTA_BITWISE_MASK
                w.put(NFTA_DATA_VALUE, &mask);
                w.end_nested(data);
                let data = w.begin_nested(5); // NFTA_BITWISE_XOR
                w.put(NFTA_DATA_VALUE, &vec![0; mask.len()]);
                w.end_nested(data);
            });
            lookup(w, set);
        }
        Match::IfnameAddr { family, peer, set } => {
            nfproto(w, *family);
            meta(w, META_IIFNAME);
            payload(w, REG_2, BASE_NETWORK, address(*family, *peer));
            lookup(w, set);
        }
        Match::ProtoPort { set } => {
            meta(w, META_L4PROTO);
            // A no-op on a byte (nft 1.0.6 emits it for this concatenation).
            expression(w, "byteorder", |w| {
                w.put_be32(1, REG_1); // NFTA_BYTEORDER_SREG
                w.put_be32(2, REG_1); // NFTA_BYTEORDER_DREG
                w.put_be32(3, 1); // NFTA_BYTEORDER_OP: NFT_BYTEORDER_HTON
                w.put_be32(4, 1); // NFTA_BYTEORDER_LEN
                w.put_be32(5, 2); // NFTA_BYTEORDER_SIZE
            });
            payload(w, REG32_01, BASE_TRANSPORT, (2, 2));
            lookup(w, set);
        }
        Match::L4proto(protocol) => {
            meta(w, META_L4PROTO);
            cmp_eq(w, &[*protocol]);
        }
        Match::AddrIs { peer, addr } => {
            let family = Family::of(*addr);
            nfproto(w, family);
            payload(w, REG_1, BASE_NETWORK, address(family, *peer));
            cmp_eq(w, &address_bytes(*addr));
        }
    }
}

/// A value loaded into `NFT_REG_1`, then stored where the statement says.
fn write_statement(w: &mut Writer, statement: Statement) {
    match statement {
        Statement::OriginalZone(zone) => {
            immediate(w, &zone.to_ne_bytes());
            expression(w, "ct", |w| {
                w.put_be32(2, CT_ZONE); // NFTA_CT_KEY
                w.put_be32(4, REG_1); // NFTA_CT_SREG
                w.put(3, &[CT_DIR_ORIGINAL]); // NFTA_CT_DIRECTION
            });
        }
        Statement::Mark(mark) => {
            immediate(w, &mark.to_ne_bytes());
            expression(w, "meta", |w| {
                w.put_be32(2, META_MARK); // NFTA_META_KEY
                w.put_be32(3, REG_1); // NFTA_META_SREG
            });
        }
    }
}

/// `NFT_REG_1` := `value`.
fn immediate(w: &mut Writer, value: &[u8]) {
    expression(w, "immediate", |w| {
        w.put_be32(1, REG_1); // NFTA_IMMEDIATE_DREG
        let data = w.begin_nested(2); // NFTA_IMMEDIATE_DATA
        w.put(NFTA_DATA_VALUE, value);
        w.end_nested(data);
    });
}

/// An address in network byte order.
pub(super) fn address_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The offset and length of an address in the network header.
fn address(family: Family, peer: Peer) -> (u32, u32) {
    match (family, peer) {
        (Family::Ipv4, Peer::Source) => (12, 4),
        (Family::Ipv4, Peer::Destination) => (16, 4),
        (Family::Ipv6, Peer::Source) => (8, 16),
        (Family::Ipv6, Peer::Destination) => (24, 16),
    }
}

/// The family dependency of an `inet` table's address match.
fn nfproto(w: &mut Writer, family: Family) {
    meta(w, META_NFPROTO);
    cmp_eq(
        w,
        &[match family {
            Family::Ipv4 => NFPROTO_IPV4,
            Family::Ipv6 => NFPROTO_IPV6,
        }],
    );
}

fn meta(w: &mut Writer, key: u32) {
    expression(w, "meta", |w| {
        w.put_be32(2, key); // NFTA_META_KEY
        w.put_be32(1, REG_1); // NFTA_META_DREG
    });
}

fn cmp_eq(w: &mut Writer, value: &[u8]) {
    expression(w, "cmp", |w| {
        w.put_be32(1, REG_1); // NFTA_CMP_SREG
        w.put_be32(2, 0); // NFTA_CMP_OP: NFT_CMP_EQ
        let data = w.begin_nested(3); // NFTA_CMP_DATA
        w.put(NFTA_DATA_VALUE, value);
        w.end_nested(data);
    });
}

fn payload(w: &mut Writer, register: u32, base: u32, (offset, len): (u32, u32)) {
    expression(w, "payload", |w| {
        w.put_be32(1, register); // NFTA_PAYLOAD_DREG
        w.put_be32(2, base); // NFTA_PAYLOAD_BASE
        w.put_be32(3, offset); // NFTA_PAYLOAD_OFFSET
        w.put_be32(4, len); // NFTA_PAYLOAD_LEN
    });
}

fn lookup(w: &mut Writer, set: &str) {
    expression(w, "lookup", |w| {
        w.put_be32(2, REG_1); // NFTA_LOOKUP_SREG
        w.put_strz(1, set); // NFTA_LOOKUP_SET
    });
}

/// One `NFTA_LIST_ELEM` of the rule: the expression's name and its data.
fn expression(w: &mut Writer, name: &str, data: impl FnOnce(&mut Writer)) {
    let element = w.begin_nested(NFTA_LIST_ELEM);
    w.put_strz(NFTA_EXPR_NAME, name);
    let nested = w.begin_nested(NFTA_EXPR_DATA);
    data(w);
    w.end_nested(nested);
    w.end_nested(element);
}
