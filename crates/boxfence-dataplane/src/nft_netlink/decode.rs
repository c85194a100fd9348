//! nf_tables messages read back: the kernel's dump of a table (and the
//! messages of our own batches, for tests) decoded into the expressions,
//! set declarations, elements and hooks of [`crate::nft::expr`]. Decoding
//! never fails on content: what this client does not model decodes into
//! something that differs ([`Expr::Unknown`]), so a comparison says so.

use crate::netlink::{NFGENMSG_LEN, attributes};
use crate::nft::ListedFlowtable;
use crate::nft::expr::{Data, Expr, HookSpec, RawElement, SetRef, SetSpec};

use super::expr::{
    NFTA_DATA_VALUE, NFTA_DATA_VERDICT, NFTA_EXPR_DATA, NFTA_EXPR_NAME, NFTA_SET_ELEM_DATA,
    NFTA_SET_ELEM_FLAGS, NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_KEY_END, NFTA_SET_ELEM_USERDATA,
    NFTA_VERDICT_CHAIN, NFTA_VERDICT_CODE,
};

/// The attributes of one nest, by type.
struct Attrs<'a>(Vec<(u16, &'a [u8])>);

impl<'a> Attrs<'a> {
    fn of(bytes: &'a [u8]) -> Self {
        Self(attributes(bytes).collect())
    }

    /// The attributes of a message after its `nfgenmsg`.
    fn of_message(payload: &'a [u8]) -> Self {
        Self::of(payload.get(NFGENMSG_LEN..).unwrap_or_default())
    }

    fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.0.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    fn all(&self, kind: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.0
            .iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, v)| *v)
    }

    fn be16(&self, kind: u16) -> Option<u16> {
        self.get(kind)?.try_into().ok().map(u16::from_be_bytes)
    }

    fn be32(&self, kind: u16) -> Option<u32> {
        self.get(kind)?.try_into().ok().map(u32::from_be_bytes)
    }

    fn be64(&self, kind: u16) -> Option<u64> {
        self.get(kind)?.try_into().ok().map(u64::from_be_bytes)
    }

    fn u8(&self, kind: u16) -> Option<u8> {
        self.get(kind)?.first().copied()
    }

    fn string(&self, kind: u16) -> Option<String> {
        let bytes = self.get(kind)?;
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    fn data(&self, kind: u16) -> Option<Data> {
        data(self.get(kind)?)
    }
}

/// A nested `NFTA_DATA_VALUE` or `NFTA_DATA_VERDICT`.
fn data(nested: &[u8]) -> Option<Data> {
    let attrs = Attrs::of(nested);
    if let Some(value) = attrs.get(NFTA_DATA_VALUE) {
        return Some(Data::Value(value.to_vec()));
    }
    let verdict = Attrs::of(attrs.get(NFTA_DATA_VERDICT)?);
    Some(Data::Verdict {
        code: i32::from_be_bytes(verdict.get(NFTA_VERDICT_CODE)?.try_into().ok()?),
        chain: verdict.string(NFTA_VERDICT_CHAIN),
    })
}

/// The name under which a set of a batch is known: an anonymous set is
/// named `__set%d` in a batch and told apart by its id; the kernel names
/// it `__setN` in a dump.
fn batch_set_name(name: String, id: Option<u32>) -> String {
    match id {
        Some(id) if name.contains('%') => format!("{name}#{id}"),
        _ => name,
    }
}

/// The expressions in `NFTA_RULE_EXPRESSIONS`.
pub(super) fn exprs(nested: &[u8]) -> Vec<Expr> {
    attributes(nested)
        .map(|(_, element)| {
            let attrs = Attrs::of(element);
            let name = attrs.string(NFTA_EXPR_NAME).unwrap_or_default();
            let data = attrs.get(NFTA_EXPR_DATA).unwrap_or_default();
            expr(&name, &Attrs::of(data)).unwrap_or_else(|| Expr::Unknown {
                name,
                data: data.to_vec(),
            })
        })
        .collect()
}

/// One expression; `None` when it has a shape this client does not model.
fn expr(name: &str, a: &Attrs<'_>) -> Option<Expr> {
    Some(match name {
        "meta" => match (a.be32(1), a.be32(3)) {
            (Some(dreg), None) => Expr::Meta {
                key: a.be32(2)?,
                dreg,
            },
            (None, Some(sreg)) => Expr::MetaSet {
                key: a.be32(2)?,
                sreg,
            },
            _ => return None,
        },
        "ct" => match (a.be32(1), a.be32(4)) {
            (Some(dreg), None) => Expr::Ct {
                key: a.be32(2)?,
                dreg,
                direction: a.u8(3),
            },
            (None, Some(sreg)) => Expr::CtSet {
                key: a.be32(2)?,
                sreg,
                direction: a.u8(3),
            },
            _ => return None,
        },
        "payload" if a.get(5).is_none() => Expr::Payload {
            dreg: a.be32(1)?,
            base: a.be32(2)?,
            offset: a.be32(3)?,
            len: a.be32(4)?,
        },
        "cmp" => Expr::Cmp {
            sreg: a.be32(1)?,
            op: a.be32(2)?,
            data: value(a.data(3)?)?,
        },
        // Only the boolean kind (`NFT_BITWISE_BOOL`, 0) is modelled.
        "bitwise" if a.be32(6).unwrap_or(0) == 0 => Expr::Bitwise {
            sreg: a.be32(1)?,
            dreg: a.be32(2)?,
            len: a.be32(3)?,
            mask: value(a.data(4)?)?,
            xor: value(a.data(5)?)?,
        },
        "byteorder" => Expr::Byteorder {
            sreg: a.be32(1)?,
            dreg: a.be32(2)?,
            op: a.be32(3)?,
            len: a.be32(4)?,
            size: a.be32(5)?,
        },
        "lookup" => Expr::Lookup {
            set: SetRef::Named(batch_set_name(a.string(1)?, a.be32(4))),
            sreg: a.be32(2)?,
            dreg: a.be32(3),
            invert: a.be32(5).unwrap_or(0) & 1 != 0,
        },
        "immediate" => Expr::Immediate {
            dreg: a.be32(1)?,
            data: a.data(2)?,
        },
        // Its values change with every packet.
        "counter" => Expr::Counter,
        "objref" => Expr::Objref {
            kind: a.be32(1)?,
            name: a.string(2)?,
        },
        "limit" => Expr::Limit {
            rate: a.be64(1)?,
            unit: a.be64(2)?,
            burst: a.be32(3).unwrap_or(0),
            kind: a.be32(4).unwrap_or(0),
            flags: a.be32(5).unwrap_or(0),
        },
        "log" => Expr::Log {
            prefix: a.string(2),
            group: a
                .get(1)
                .and_then(|g| g.try_into().ok())
                .map(u16::from_be_bytes),
        },
        "reject" => Expr::Reject {
            kind: a.be32(1)?,
            code: a.u8(2),
        },
        "nat" => {
            let pair = |min: u16, max: u16| a.be32(min).map(|m| (m, a.be32(max).unwrap_or(m)));
            Expr::Nat {
                kind: a.be32(1)?,
                family: a.be32(2)?,
                addr: pair(3, 4),
                proto: pair(5, 6),
                flags: a.be32(7).unwrap_or(0),
            }
        }
        "target" => Expr::XtTarget {
            name: a.string(1)?,
            rev: a.be32(2)?,
            info: a.get(3)?.to_vec(),
        },
        "queue" => Expr::Queue {
            num: a.be16(1)?,
            total: a.be16(2).unwrap_or(1),
            flags: a.be16(3).unwrap_or(0),
        },
        "flow_offload" => Expr::FlowOffload {
            flowtable: a.string(1)?,
        },
        "masq"
            if a.0
                .iter()
                .all(|(kind, v)| *kind == 1 && v.iter().all(|&b| b == 0)) =>
        {
            Expr::Masquerade
        }
        _ => return None,
    })
}

fn value(data: Data) -> Option<Vec<u8>> {
    match data {
        Data::Value(bytes) => Some(bytes),
        Data::Verdict { .. } => None,
    }
}

/// One `NFTA_LIST_ELEM` of a set (its timeout and expiry are left out).
fn element(nested: &[u8]) -> Option<RawElement> {
    let a = Attrs::of(nested);
    Some(RawElement {
        key: value(a.data(NFTA_SET_ELEM_KEY)?)?,
        key_end: a.data(NFTA_SET_ELEM_KEY_END).and_then(value),
        flags: a.be32(NFTA_SET_ELEM_FLAGS).unwrap_or(0),
        data: a.data(NFTA_SET_ELEM_DATA),
        userdata: a.get(NFTA_SET_ELEM_USERDATA).map(<[u8]>::to_vec),
    })
}

/// A `NEWTABLE`: its name and flags.
pub(super) fn table(payload: &[u8]) -> Option<(String, u32)> {
    let a = Attrs::of_message(payload);
    Some((a.string(1)?, a.be32(2).unwrap_or(0)))
}

/// A `NEWCHAIN`: its table, name and hook (for a base chain).
pub(super) fn chain(payload: &[u8]) -> Option<(String, String, Option<HookSpec>)> {
    let a = Attrs::of_message(payload);
    let hook = a.get(4).and_then(|nested| {
        let hook = Attrs::of(nested);
        // One device, as `NFTA_HOOK_DEV` or (newer kernels) the first of
        // `NFTA_HOOK_DEVS`.
        let device = hook.string(3).or_else(|| {
            let devices = Attrs::of(hook.get(4)?);
            devices.string(1)
        });
        Some(HookSpec {
            chain_type: a.string(7).unwrap_or_default(),
            hooknum: hook.be32(1)?,
            priority: hook.get(2)?.try_into().ok().map(i32::from_be_bytes)?,
            policy: a.be32(5).unwrap_or(0),
            device,
        })
    });
    Some((a.string(1)?, a.string(3)?, hook))
}

/// A `NEWRULE`: its table, chain and expressions.
pub(super) fn rule(payload: &[u8]) -> Option<(String, String, Vec<Expr>)> {
    let a = Attrs::of_message(payload);
    Some((
        a.string(1)?,
        a.string(2)?,
        exprs(a.get(4).unwrap_or_default()),
    ))
}

/// A `NEWSET`: its table, name and declaration.
pub(super) fn set(payload: &[u8]) -> Option<(String, String, SetSpec)> {
    let a = Attrs::of_message(payload);
    let fields = a
        .get(9) // NFTA_SET_DESC
        .map(Attrs::of)
        .and_then(|desc| desc.get(2).map(Attrs::of)) // NFTA_SET_DESC_CONCAT
        .map(|concat| {
            concat
                .all(1)
                .filter_map(|field| Attrs::of(field).be32(1))
                .collect()
        })
        .unwrap_or_default();
    let flags = a.be32(3).unwrap_or(0);
    let spec = SetSpec {
        flags,
        key_type: a.be32(4).unwrap_or(0),
        key_len: a.be32(5)?,
        data: a
            .be32(6)
            .map(|data_type| (data_type, a.be32(7).unwrap_or(0))),
        fields,
        userdata: a.get(13).map(<[u8]>::to_vec).unwrap_or_default(),
    };
    Some((a.string(1)?, batch_set_name(a.string(2)?, a.be32(10)), spec))
}

/// A `NEWSETELEM`: its table, set and elements.
pub(super) fn set_elements(payload: &[u8]) -> Option<(String, String, Vec<RawElement>)> {
    let a = Attrs::of_message(payload);
    let elements = attributes(a.get(3).unwrap_or_default())
        .filter_map(|(_, nested)| element(nested))
        .collect();
    Some((
        a.string(1)?,
        batch_set_name(a.string(2)?, a.be32(4)),
        elements,
    ))
}

/// A `NEWOBJ`: its table, name and `NFT_OBJECT_*` type.
pub(super) fn object(payload: &[u8]) -> Option<(String, String, u32)> {
    let a = Attrs::of_message(payload);
    Some((a.string(1)?, a.string(2)?, a.be32(3)?))
}

/// A `NEWFLOWTABLE`: its table, name, hook and devices.
pub(super) fn flowtable(payload: &[u8]) -> Option<(String, String, ListedFlowtable)> {
    let a = Attrs::of_message(payload);
    let hook = Attrs::of(a.get(3).unwrap_or_default()); // NFTA_FLOWTABLE_HOOK
    let devices = attributes(hook.get(3).unwrap_or_default()) // NFTA_FLOWTABLE_HOOK_DEVS
        .map(|(_, name)| {
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(name).into_owned()
        });
    let mut flowtable = ListedFlowtable::new(
        hook.get(2)?.try_into().ok().map(i32::from_be_bytes)?,
        devices,
    );
    flowtable.hooknum = hook.be32(1)?;
    Some((a.string(1)?, a.string(2)?, flowtable))
}
