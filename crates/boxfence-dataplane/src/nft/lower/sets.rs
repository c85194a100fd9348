//! Set kinds to declarations, model elements to the kernel's elements.

use std::net::IpAddr;

use boxfence_policy::matchers::IpRange;

use super::super::expr::*;
use super::super::{Element, SetKind};
use super::{LowerError, address_bytes, ifname_bytes, verdict_data};

/// `sizeof(struct nft_verdict)` on 64-bit kernels.
const VERDICT_LEN: u32 = 16;

/// nft's user data of an interval open at the top of the address space
/// (`NFTNL_UDATA_SET_ELEM_FLAGS` = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`).
const INTERVAL_OPEN: [u8; 6] = [1, 4, 1, 0, 0, 0];

/// How a set of this kind is declared.
pub fn set_spec(kind: SetKind) -> SetSpec {
    let (flags, key_type, key_len) = match kind {
        SetKind::Ipv4 => (SET_INTERVAL, TYPE_IPADDR, 4),
        SetKind::Ipv6 => (SET_INTERVAL, TYPE_IP6ADDR, 16),
        SetKind::Ipv4Networks | SetKind::Ipv4Verdicts => (0, TYPE_IPADDR, 4),
        SetKind::Ipv6Networks | SetKind::Ipv6Verdicts => (0, TYPE_IP6ADDR, 16),
        SetKind::ProtoPort => (
            SET_INTERVAL | SET_CONCAT,
            TYPE_INET_PROTOCOL << 6 | TYPE_INET_SERVICE,
            8,
        ),
        SetKind::Ipv4Learned => (SET_TIMEOUT, TYPE_IPADDR, 4),
        SetKind::Ipv6Learned => (SET_TIMEOUT, TYPE_IP6ADDR, 16),
        SetKind::IfnameIpv4Learned => (SET_TIMEOUT, TYPE_IFNAME << 6 | TYPE_IPADDR, 20),
        SetKind::IfnameIpv6Learned => (SET_TIMEOUT, TYPE_IFNAME << 6 | TYPE_IP6ADDR, 32),
        SetKind::IfnameVerdicts => (0, TYPE_IFNAME, 16),
    };
    let map = matches!(
        kind,
        SetKind::IfnameVerdicts | SetKind::Ipv4Verdicts | SetKind::Ipv6Verdicts
    );
    SetSpec {
        flags: flags | if map { SET_MAP } else { 0 },
        key_type,
        key_len,
        // The kernel keeps a verdict's size (`struct nft_verdict`),
        // whatever was sent.
        data: map.then_some((DATA_VERDICT, VERDICT_LEN)),
        // The concatenation's field lengths, for the pipapo backend.
        fields: if kind == SetKind::ProtoPort {
            vec![1, 2]
        } else {
            Vec::new()
        },
        userdata: if map {
            userdata(&[
                (KEY_BYTEORDER, byteorder(key_type)),
                (DATA_BYTEORDER, 0),
                (DATA_INTERVAL, 0),
            ])
        } else {
            Vec::new()
        },
    }
}

/// `NFTNL_UDATA_SET_KEYBYTEORDER`, `_DATABYTEORDER`, `_DATA_INTERVAL`:
/// what nft 1.0.6 says of a map's or an anonymous set's keys, without
/// which it lists interface names as `""`.
pub(super) const KEY_BYTEORDER: u8 = 0;
const DATA_BYTEORDER: u8 = 1;
const DATA_INTERVAL: u8 = 6;

/// nft's byte order of a key type: `BYTEORDER_HOST_ENDIAN` for names and
/// protocol numbers, `BYTEORDER_BIG_ENDIAN` for addresses and the like.
pub(super) fn byteorder(key_type: u32) -> u32 {
    match key_type {
        TYPE_IFNAME | TYPE_INET_PROTOCOL => 1,
        _ => 2,
    }
}

/// nft's user data: type, length, value (host byte order) each.
pub(super) fn userdata(entries: &[(u8, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 * entries.len());
    for (kind, value) in entries {
        out.extend_from_slice(&[*kind, 4]);
        out.extend_from_slice(&value.to_ne_bytes());
    }
    out
}

/// The kernel's elements for `elements` (of one set). Address ranges
/// become nft's interval encoding: an element at each start, an
/// end-flagged one just past each end (none past the top of the address
/// space: that interval is open, which its user data says), and one
/// end-flagged element at zero when the first range starts above it.
pub fn elements(elements: &[Element]) -> Result<Vec<RawElement>, LowerError> {
    let mut out = Vec::with_capacity(elements.len() * 2 + 1);
    let mut ranges = Vec::new();
    for element in elements {
        match element {
            Element::Range(range) => ranges.push(*range),
            Element::ProtoPorts {
                protocol,
                first,
                last,
            } => {
                let key = |port: u16| {
                    let [hi, lo] = port.to_be_bytes();
                    vec![*protocol, 0, 0, 0, hi, lo, 0, 0]
                };
                out.push(RawElement {
                    key_end: Some(key(*last)),
                    ..RawElement::key(key(*first))
                });
            }
            Element::IfnameVerdict(ifname, verdict) => out.push(RawElement {
                data: Some(verdict_data(verdict)),
                ..RawElement::key(ifname_bytes(ifname)?)
            }),
            Element::AddrVerdict(addr, verdict) => out.push(RawElement {
                data: Some(verdict_data(verdict)),
                ..RawElement::key(address_bytes(*addr))
            }),
            Element::Addr(addr) => out.push(RawElement::key(address_bytes(*addr))),
            Element::Ifname(ifname) => out.push(RawElement::key(ifname_bytes(ifname)?)),
        }
    }
    out.extend(intervals(&ranges));
    Ok(out)
}

pub(super) fn intervals(ranges: &[IpRange]) -> Vec<RawElement> {
    let mut out = Vec::with_capacity(ranges.len() * 2 + 1);
    let end = |key: Vec<u8>| RawElement {
        flags: ELEM_INTERVAL_END,
        ..RawElement::key(key)
    };
    if let Some(first) = ranges.first() {
        let start = address_bytes(first.first);
        if start.iter().any(|&b| b != 0) {
            out.push(end(vec![0; start.len()]));
        }
    }
    for range in ranges {
        let start = address_bytes(range.first);
        match next_address(range.last) {
            Some(next) => {
                out.push(RawElement::key(start));
                out.push(end(next));
            }
            None => out.push(RawElement {
                userdata: Some(INTERVAL_OPEN.to_vec()),
                ..RawElement::key(start)
            }),
        }
    }
    out
}

/// The address after `addr`, or `None` at the top of its family.
fn next_address(addr: IpAddr) -> Option<Vec<u8>> {
    match addr {
        IpAddr::V4(a) => u32::from(a)
            .checked_add(1)
            .map(|n| n.to_be_bytes().to_vec()),
        IpAddr::V6(a) => u128::from(a)
            .checked_add(1)
            .map(|n| n.to_be_bytes().to_vec()),
    }
}

/// The declaration of a set of one-byte keys of nft type `key_type`.
pub(super) fn one_byte_keys(key_type: u32) -> SetSpec {
    SetSpec {
        flags: 0,
        key_type,
        key_len: 1,
        data: None,
        fields: Vec::new(),
        userdata: Vec::new(),
    }
}

pub(super) fn bytes(values: &[u8]) -> Vec<RawElement> {
    values.iter().map(|&v| RawElement::key(vec![v])).collect()
}
