//! ctnetlink messages: the dump request, the entries a dump (or an event)
//! reports, and the delete of one entry.
//!
//! A delete sends back the entry's original tuple as the kernel reported
//! it (with its zone, and ICMP id/type/code, which `TrackedFlow` does not
//! keep) and its id, so it removes exactly that entry, or answers
//! `ENOENT` when the entry is gone or was replaced by a new one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::TrackedFlow;
use crate::netlink::{self, NFGENMSG_LEN, NLA_F_NESTED, NLMSG_HDRLEN, Writer, attr_size};
use crate::netlink::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

/// `NFNL_SUBSYS_CTNETLINK`: the high byte of every ctnetlink message type.
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
/// `IPCTNL_MSG_CT_NEW`: an entry (dump replies and new-entry events).
pub(crate) const IPCTNL_MSG_CT_NEW: u16 = NFNL_SUBSYS_CTNETLINK << 8;
/// `IPCTNL_MSG_CT_GET`.
const IPCTNL_MSG_CT_GET: u16 = (NFNL_SUBSYS_CTNETLINK << 8) | 1;
/// `IPCTNL_MSG_CT_DELETE`.
const IPCTNL_MSG_CT_DELETE: u16 = (NFNL_SUBSYS_CTNETLINK << 8) | 2;
/// `AF_UNSPEC`: a dump of both families.
const AF_UNSPEC: u8 = 0;

/// `CTA_TUPLE_ORIG`.
const CTA_TUPLE_ORIG: u16 = 1;
/// `CTA_ID`: the entry's id, big-endian `u32`.
const CTA_ID: u16 = 12;
/// `CTA_ZONE`: a zone of both directions, big-endian `u16`.
const CTA_ZONE: u16 = 18;
/// `CTA_TUPLE_IP`.
const CTA_TUPLE_IP: u16 = 1;
/// `CTA_TUPLE_PROTO`.
const CTA_TUPLE_PROTO: u16 = 2;
/// `CTA_TUPLE_ZONE`: the zone of one direction (`ct original zone set`).
const CTA_TUPLE_ZONE: u16 = 3;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// One conntrack entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Source address of the original direction.
    pub src: IpAddr,
    /// Destination address of the original direction.
    pub dst: IpAddr,
    /// The flow as the policy judges it (every IP protocol).
    pub flow: TrackedFlow,
    /// Its zone in the original direction (0: the default zone).
    pub zone: u16,
    /// `AF_INET` or `AF_INET6`: a delete names the entry's family.
    family: u8,
    /// `CTA_TUPLE_ORIG`'s payload, sent back by a delete.
    tuple: Vec<u8>,
    /// `CTA_ZONE`'s payload, when the zone covers both directions.
    both_zone: Option<[u8; 2]>,
    /// `CTA_ID`'s payload.
    id: Option<[u8; 4]>,
}

impl Entry {
    /// Reads an `IPCTNL_MSG_CT_NEW` message's payload (`nfgenmsg` first).
    pub(crate) fn decode(payload: &[u8]) -> Option<Self> {
        let family = *payload.first()?;
        let (mut tuple, mut both_zone, mut id) = (None, None, None);
        for (kind, value) in netlink::attributes(payload.get(NFGENMSG_LEN..)?) {
            match kind {
                CTA_TUPLE_ORIG => tuple = Some(value),
                CTA_ZONE => both_zone = value.try_into().ok(),
                CTA_ID => id = value.try_into().ok(),
                _ => {}
            }
        }
        let tuple = tuple?;
        let parts = Tuple::decode(tuple)?;
        Some(Self {
            src: parts.src,
            dst: parts.dst,
            flow: TrackedFlow::new(
                parts.protocol,
                parts.src,
                parts.dst,
                parts.sport,
                parts.dport,
            ),
            zone: parts.zone.or(both_zone).map_or(0, u16::from_be_bytes),
            family,
            tuple: tuple.to_vec(),
            both_zone,
            id,
        })
    }
}

/// The fields of an original tuple.
struct Tuple {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    sport: Option<u16>,
    dport: Option<u16>,
    zone: Option<[u8; 2]>,
}

impl Tuple {
    fn decode(tuple: &[u8]) -> Option<Self> {
        let (mut src, mut dst, mut protocol) = (None, None, None);
        let (mut sport, mut dport, mut zone) = (None, None, None);
        for (kind, value) in netlink::attributes(tuple) {
            match kind {
                CTA_TUPLE_IP => {
                    for (kind, address) in netlink::attributes(value) {
                        let ip = match address.len() {
                            4 => <[u8; 4]>::try_from(address)
                                .ok()
                                .map(Ipv4Addr::from)
                                .map(IpAddr::V4),
                            16 => <[u8; 16]>::try_from(address)
                                .ok()
                                .map(Ipv6Addr::from)
                                .map(IpAddr::V6),
                            _ => None,
                        };
                        match kind {
                            CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = ip,
                            CTA_IP_V4_DST | CTA_IP_V6_DST => dst = ip,
                            _ => {}
                        }
                    }
                }
                CTA_TUPLE_PROTO => {
                    for (kind, field) in netlink::attributes(value) {
                        let port = || <[u8; 2]>::try_from(field).ok().map(u16::from_be_bytes);
                        match kind {
                            CTA_PROTO_NUM => protocol = field.first().copied(),
                            CTA_PROTO_SRC_PORT => sport = port(),
                            CTA_PROTO_DST_PORT => dport = port(),
                            _ => {}
                        }
                    }
                }
                CTA_TUPLE_ZONE => zone = value.try_into().ok(),
                _ => {}
            }
        }
        Some(Self {
            src: src?,
            dst: dst?,
            protocol: protocol?,
            sport,
            dport,
            zone,
        })
    }
}

/// The flow of an `IPCTNL_MSG_CT_NEW` message's payload, if policed.
pub(crate) fn new_flow(payload: &[u8]) -> Option<TrackedFlow> {
    Some(Entry::decode(payload)?.flow)
}

/// A dump of every entry of the socket's namespace, both families.
pub(crate) fn dump_request(seq: u32) -> Vec<u8> {
    let mut writer = Writer::with_capacity(32);
    let start = writer.begin_message(
        IPCTNL_MSG_CT_GET,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        AF_UNSPEC,
        0,
    );
    writer.end_message(start);
    writer.into_bytes()
}

/// Appends the delete of `entry`, acknowledged, as message `seq`.
pub(crate) fn put_delete(writer: &mut Writer, entry: &Entry, seq: u32) {
    let start = writer.begin_message(
        IPCTNL_MSG_CT_DELETE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        entry.family,
        0,
    );
    writer.put(CTA_TUPLE_ORIG | NLA_F_NESTED, &entry.tuple);
    if let Some(zone) = &entry.both_zone {
        writer.put(CTA_ZONE, zone);
    }
    if let Some(id) = &entry.id {
        writer.put(CTA_ID, id);
    }
    writer.end_message(start);
}

/// The encoded size of `entry`'s delete.
pub(crate) fn delete_len(entry: &Entry) -> usize {
    NLMSG_HDRLEN
        + NFGENMSG_LEN
        + attr_size(entry.tuple.len())
        + entry.both_zone.map_or(0, |z| attr_size(z.len()))
        + entry.id.map_or(0, |id| attr_size(id.len()))
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
