//! Expressions, register data and set elements as nf_tables attributes
//! (the attribute numbers of `linux/netfilter/nf_tables.h`), written in
//! the order nft 1.0.6 writes them. [`super::decode`] reads the same
//! attributes back.

use crate::netlink::Writer;
use crate::nft::expr::{Data, Expr, RawElement, SetRef};

/// `NFTA_LIST_ELEM`.
pub(super) const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_EXPR_NAME`.
pub(super) const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA`.
pub(super) const NFTA_EXPR_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`.
pub(super) const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT`.
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE`, `NFTA_VERDICT_CHAIN`.
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;

/// `NFTA_SET_ELEM_*`.
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_SET_ELEM_FLAGS: u16 = 3;
pub(super) const NFTA_SET_ELEM_USERDATA: u16 = 6;
pub(super) const NFTA_SET_ELEM_KEY_END: u16 = 10;

/// The name nf_tables gives an anonymous set in a batch (the kernel
/// numbers it); a lookup finds it by the batch's set id.
pub(super) const ANONYMOUS_SET_NAME: &str = "__set%d";

/// Writes a rule's `NFTA_RULE_EXPRESSIONS` content. Each anonymous set
/// was created earlier in the batch; `anonymous_ids` gives their set ids
/// in the order the lookups come.
pub(super) fn write_exprs(
    w: &mut Writer,
    exprs: &[Expr],
    anonymous_ids: &mut impl Iterator<Item = u32>,
) {
    for e in exprs {
        match e {
            Expr::Meta { key, dreg } => expression(w, "meta", |w| {
                w.put_be32(2, *key); // NFTA_META_KEY
                w.put_be32(1, *dreg); // NFTA_META_DREG
            }),
            Expr::MetaSet { key, sreg } => expression(w, "meta", |w| {
                w.put_be32(2, *key); // NFTA_META_KEY
                w.put_be32(3, *sreg); // NFTA_META_SREG
            }),
            Expr::Ct {
                key,
                dreg,
                direction,
            } => expression(w, "ct", |w| {
                w.put_be32(2, *key); // NFTA_CT_KEY
                w.put_be32(1, *dreg); // NFTA_CT_DREG
                if let Some(direction) = direction {
                    w.put(3, &[*direction]); // NFTA_CT_DIRECTION
                }
            }),
            Expr::CtSet {
                key,
                sreg,
                direction,
            } => expression(w, "ct", |w| {
                w.put_be32(2, *key); // NFTA_CT_KEY
                w.put_be32(4, *sreg); // NFTA_CT_SREG
                if let Some(direction) = direction {
                    w.put(3, &[*direction]); // NFTA_CT_DIRECTION
                }
            }),
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => expression(w, "payload", |w| {
                w.put_be32(1, *dreg); // NFTA_PAYLOAD_DREG
                w.put_be32(2, *base); // NFTA_PAYLOAD_BASE
                w.put_be32(3, *offset); // NFTA_PAYLOAD_OFFSET
                w.put_be32(4, *len); // NFTA_PAYLOAD_LEN
            }),
            Expr::Cmp { sreg, op, data } => expression(w, "cmp", |w| {
                w.put_be32(1, *sreg); // NFTA_CMP_SREG
                w.put_be32(2, *op); // NFTA_CMP_OP
                write_data(w, 3, &Data::Value(data.clone())); // NFTA_CMP_DATA
            }),
            Expr::Bitwise {
                sreg,
                dreg,
                len,
                mask,
                xor,
            } => expression(w, "bitwise", |w| {
                w.put_be32(1, *sreg); // NFTA_BITWISE_SREG
                w.put_be32(2, *dreg); // NFTA_BITWISE_DREG
                w.put_be32(3, *len); // NFTA_BITWISE_LEN
                write_data(w, 4, &Data::Value(mask.clone())); // NFTA_BITWISE_MASK
                write_data(w, 5, &Data::Value(xor.clone())); // NFTA_BITWISE_XOR
            }),
            Expr::Byteorder {
                sreg,
                dreg,
                op,
                len,
                size,
            } => expression(w, "byteorder", |w| {
                w.put_be32(1, *sreg); // NFTA_BYTEORDER_SREG
                w.put_be32(2, *dreg); // NFTA_BYTEORDER_DREG
                w.put_be32(3, *op); // NFTA_BYTEORDER_OP
                w.put_be32(4, *len); // NFTA_BYTEORDER_LEN
                w.put_be32(5, *size); // NFTA_BYTEORDER_SIZE
            }),
            Expr::Lookup {
                sreg,
                set,
                dreg,
                invert,
            } => expression(w, "lookup", |w| {
                w.put_be32(2, *sreg); // NFTA_LOOKUP_SREG
                match set {
                    SetRef::Named(name) => w.put_strz(1, name), // NFTA_LOOKUP_SET
                    SetRef::Anonymous(_) => {
                        w.put_strz(1, ANONYMOUS_SET_NAME);
                        let id = anonymous_ids.next().unwrap_or_default();
                        w.put_be32(4, id); // NFTA_LOOKUP_SET_ID
                    }
                }
                if let Some(dreg) = dreg {
                    w.put_be32(3, *dreg); // NFTA_LOOKUP_DREG
                }
                if *invert {
                    w.put_be32(5, 1); // NFTA_LOOKUP_FLAGS: NFT_LOOKUP_F_INV
                }
            }),
            Expr::Immediate { dreg, data } => expression(w, "immediate", |w| {
                w.put_be32(1, *dreg); // NFTA_IMMEDIATE_DREG
                write_data(w, 2, data); // NFTA_IMMEDIATE_DATA
            }),
            Expr::Counter => expression(w, "counter", |_| {}),
            Expr::Objref { kind, name } => expression(w, "objref", |w| {
                w.put_be32(1, *kind); // NFTA_OBJREF_IMM_TYPE
                w.put_strz(2, name); // NFTA_OBJREF_IMM_NAME
            }),
            Expr::Limit {
                rate,
                unit,
                burst,
                kind,
                flags,
            } => expression(w, "limit", |w| {
                w.put_be64(1, *rate); // NFTA_LIMIT_RATE
                w.put_be64(2, *unit); // NFTA_LIMIT_UNIT
                w.put_be32(3, *burst); // NFTA_LIMIT_BURST
                w.put_be32(4, *kind); // NFTA_LIMIT_TYPE
                w.put_be32(5, *flags); // NFTA_LIMIT_FLAGS
            }),
            Expr::Log { prefix, group } => expression(w, "log", |w| {
                if let Some(prefix) = prefix {
                    w.put_strz(2, prefix); // NFTA_LOG_PREFIX
                }
                if let Some(group) = group {
                    w.put(1, &group.to_be_bytes()); // NFTA_LOG_GROUP
                }
            }),
            Expr::Reject { kind, code } => expression(w, "reject", |w| {
                w.put_be32(1, *kind); // NFTA_REJECT_TYPE
                if let Some(code) = code {
                    w.put(2, &[*code]); // NFTA_REJECT_ICMP_CODE
                }
            }),
            Expr::Nat {
                kind,
                family,
                addr,
                proto,
                flags,
            } => expression(w, "nat", |w| {
                w.put_be32(1, *kind); // NFTA_NAT_TYPE
                w.put_be32(2, *family); // NFTA_NAT_FAMILY
                if let Some((min, max)) = addr {
                    w.put_be32(3, *min); // NFTA_NAT_REG_ADDR_MIN
                    w.put_be32(4, *max); // NFTA_NAT_REG_ADDR_MAX
                }
                if let Some((min, max)) = proto {
                    w.put_be32(5, *min); // NFTA_NAT_REG_PROTO_MIN
                    w.put_be32(6, *max); // NFTA_NAT_REG_PROTO_MAX
                }
                if *flags != 0 {
                    w.put_be32(7, *flags); // NFTA_NAT_FLAGS
                }
            }),
            Expr::Masquerade => expression(w, "masq", |_| {}),
            Expr::XtTarget { name, rev, info } => expression(w, "target", |w| {
                w.put_strz(1, name); // NFTA_TARGET_NAME
                w.put_be32(2, *rev); // NFTA_TARGET_REV
                w.put(3, info); // NFTA_TARGET_INFO
            }),
            Expr::Queue { num, total, flags } => expression(w, "queue", |w| {
                w.put(1, &num.to_be_bytes()); // NFTA_QUEUE_NUM
                w.put(2, &total.to_be_bytes()); // NFTA_QUEUE_TOTAL
                w.put(3, &flags.to_be_bytes()); // NFTA_QUEUE_FLAGS
            }),
            Expr::FlowOffload { flowtable } => expression(w, "flow_offload", |w| {
                w.put_strz(1, flowtable); // NFTA_FLOW_TABLE_NAME
            }),
            Expr::Unknown { name, data } => expression(w, name, |w| w.put_raw(data)),
        }
    }
}

/// A nested `NFTA_DATA_VALUE` or `NFTA_DATA_VERDICT` in attribute `kind`.
pub(super) fn write_data(w: &mut Writer, kind: u16, data: &Data) {
    let outer = w.begin_nested(kind);
    match data {
        Data::Value(bytes) => w.put(NFTA_DATA_VALUE, bytes),
        Data::Verdict { code, chain } => {
            let nested = w.begin_nested(NFTA_DATA_VERDICT);
            w.put(NFTA_VERDICT_CODE, &code.to_be_bytes());
            if let Some(chain) = chain {
                w.put_strz(NFTA_VERDICT_CHAIN, chain);
            }
            w.end_nested(nested);
        }
    }
    w.end_nested(outer);
}

/// One `NFTA_LIST_ELEM` of a set: flags, key, key end, data, user data.
pub(super) fn element_bytes(element: &RawElement) -> Vec<u8> {
    let mut w = Writer::with_capacity(2 * element.key.len() + 64);
    let nested = w.begin_nested(NFTA_LIST_ELEM);
    if element.flags != 0 {
        w.put_be32(NFTA_SET_ELEM_FLAGS, element.flags);
    }
    write_data(&mut w, NFTA_SET_ELEM_KEY, &Data::Value(element.key.clone()));
    if let Some(end) = &element.key_end {
        write_data(&mut w, NFTA_SET_ELEM_KEY_END, &Data::Value(end.clone()));
    }
    if let Some(data) = &element.data {
        write_data(&mut w, NFTA_SET_ELEM_DATA, data);
    }
    if let Some(userdata) = &element.userdata {
        w.put(NFTA_SET_ELEM_USERDATA, userdata);
    }
    w.end_nested(nested);
    w.into_bytes()
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
