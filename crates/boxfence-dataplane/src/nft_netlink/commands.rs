//! Ruleset commands ([`crate::nft::Command`]) as one nf_tables batch.
//!
//! Only the last message asks for an acknowledgement: the kernel reports
//! every refused message anyway, and acknowledgements of thousands of
//! messages would overflow the receive buffer (each is its own skb).

use std::net::IpAddr;

use super::NetlinkError;
use super::batch::{Batch, BatchWriter, NLM_F_APPEND, Part};
use super::expr::{NFTA_DATA_VALUE, OBJECT_COUNTER, address_bytes, write_rule, write_verdict};
use crate::netlink::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, Writer, attr_size};
use crate::nft::{Command, Element, SetKind, Verdict, command_line};

/// `NFT_MSG_*` kinds.
const NEWTABLE: u16 = 0;
const NEWCHAIN: u16 = 3;
const DELCHAIN: u16 = 5;
const NEWRULE: u16 = 6;
const DELRULE: u16 = 8;
const NEWSET: u16 = 9;
const DELSET: u16 = 11;
const NEWSETELEM: u16 = 12;
const DELSETELEM: u16 = 14;
const NEWOBJ: u16 = 18;
const DELOBJ: u16 = 20;

/// `NF_INET_INGRESS`.
const HOOK_INGRESS: u32 = 5;
/// `NF_ACCEPT`.
const ACCEPT: u32 = 1;

/// `NFT_SET_INTERVAL`, `NFT_SET_TIMEOUT`, `NFT_SET_CONCAT`.
const SET_INTERVAL: u32 = 0x4;
const SET_TIMEOUT: u32 = 0x10;
const SET_CONCAT: u32 = 0x80;
/// `NFT_SET_ELEM_INTERVAL_END`.
const ELEM_INTERVAL_END: u32 = 1;

/// nft's data type ids (a concatenation shifts the first by 6 bits).
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;

/// `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;
/// Room left for elements in one message's 16-bit list attribute.
const MAX_LIST_LEN: usize = (u16::MAX as usize & !3) - 64;

/// Encodes `commands` for table `inet <table>` as one batch starting at
/// sequence number `seq`.
pub(super) fn encode(table: &str, seq: u32, commands: &[Command]) -> Result<Batch, NetlinkError> {
    let mut batch = BatchWriter::new(seq, 256 * commands.len());
    let mut set_id = 0u32;
    for (index, command) in commands.iter().enumerate() {
        let last = index + 1 == commands.len();
        let mut message = Message {
            batch: &mut batch,
            table,
            command,
            ack: if last { NLM_F_ACK } else { 0 },
        };
        match command {
            Command::AddTable => message.send(NEWTABLE, NLM_F_CREATE, table, |w| {
                w.put_strz(1, table); // NFTA_TABLE_NAME
            }),
            Command::AddChain(name) => message.send(NEWCHAIN, NLM_F_CREATE, name, |w| {
                chain_named(w, table, name);
            }),
            Command::AddIngressChain { name, device } => {
                message.send(NEWCHAIN, NLM_F_CREATE, name, |w| {
                    chain_named(w, table, name);
                    let hook = w.begin_nested(4); // NFTA_CHAIN_HOOK
                    w.put_be32(1, HOOK_INGRESS); // NFTA_HOOK_HOOKNUM
                    w.put_be32(2, 0); // NFTA_HOOK_PRIORITY: filter
                    w.put_strz(3, device); // NFTA_HOOK_DEV
                    w.end_nested(hook);
                    w.put_be32(5, ACCEPT); // NFTA_CHAIN_POLICY
                    w.put_strz(7, "filter"); // NFTA_CHAIN_TYPE
                });
            }
            Command::DeleteChain(name) => message.send(DELCHAIN, 0, name, |w| {
                chain_named(w, table, name);
            }),
            Command::FlushChain(name) => message.send(DELRULE, 0, name, |w| named(w, table, name)),
            Command::AddRule { chain, rule } => {
                message.send(NEWRULE, NLM_F_CREATE | NLM_F_APPEND, chain, |w| {
                    named(w, table, chain);
                    let expressions = w.begin_nested(4); // NFTA_RULE_EXPRESSIONS
                    write_rule(w, rule);
                    w.end_nested(expressions);
                });
            }
            Command::AddSet { name, kind } => {
                set_id += 1;
                message.send(NEWSET, NLM_F_CREATE, name, |w| {
                    write_set(w, table, name, *kind, set_id);
                });
            }
            Command::DeleteSet(name) => message.send(DELSET, 0, name, |w| named(w, table, name)),
            Command::FlushSet(name) => message.send(DELSETELEM, 0, name, |w| named(w, table, name)),
            Command::AddElements { set, elements } => {
                message.elements(NEWSETELEM, NLM_F_CREATE, set, &encode_elements(elements)?);
            }
            Command::DeleteElements { set, elements } => {
                message.elements(DELSETELEM, 0, set, &encode_elements(elements)?);
            }
            Command::AddCounter(name) => message.send(NEWOBJ, NLM_F_CREATE, name, |w| {
                named(w, table, name);
                w.put_be32(3, OBJECT_COUNTER); // NFTA_OBJ_TYPE
                let data = w.begin_nested(4); // NFTA_OBJ_DATA
                w.put_be64(1, 0); // NFTA_COUNTER_BYTES
                w.put_be64(2, 0); // NFTA_COUNTER_PACKETS
                w.end_nested(data);
            }),
            Command::DeleteCounter(name) => message.send(DELOBJ, 0, name, |w| {
                named(w, table, name);
                w.put_be32(3, OBJECT_COUNTER); // NFTA_OBJ_TYPE
            }),
        }
    }
    Ok(batch.finish())
}

/// The message(s) of one command.
struct Message<'a> {
    batch: &'a mut BatchWriter,
    table: &'a str,
    command: &'a Command,
    /// `NLM_F_ACK` on the batch's last message, else 0.
    ack: u16,
}

impl Message<'_> {
    /// One message of kind `kind` about `object`, its attributes written by `attributes`.
    fn send(&mut self, kind: u16, flags: u16, object: &str, attributes: impl FnOnce(&mut Writer)) {
        self.one(kind, flags | self.ack, object, 0, attributes);
    }

    fn one(
        &mut self,
        kind: u16,
        flags: u16,
        object: &str,
        elements: usize,
        attributes: impl FnOnce(&mut Writer),
    ) {
        let part = Part {
            operation: operation_name(kind),
            set: object.to_owned(),
            elements,
            command: Some(command_line(self.table, self.command)),
        };
        let start = self.batch.begin(kind, NLM_F_REQUEST | flags, part);
        attributes(self.batch.writer());
        self.batch.end(start);
    }

    /// Encoded elements of `set`, as many messages as their lists need.
    fn elements(&mut self, kind: u16, flags: u16, set: &str, encoded: &[Vec<u8>]) {
        let mut rest = encoded;
        while !rest.is_empty() {
            let mut size = 0;
            let count = rest
                .iter()
                .take_while(|e| {
                    size += e.len();
                    size <= MAX_LIST_LEN
                })
                .count()
                .max(1);
            let (chunk, tail) = rest.split_at(count);
            rest = tail;
            let ack = if rest.is_empty() { self.ack } else { 0 };
            let table = self.table;
            self.one(kind, flags | ack, set, chunk.len(), |w| {
                w.put_strz(1, table); // NFTA_SET_ELEM_LIST_TABLE
                w.put_strz(2, set); // NFTA_SET_ELEM_LIST_SET
                let list = w.begin_nested(3); // NFTA_SET_ELEM_LIST_ELEMENTS
                chunk.iter().for_each(|e| w.put_raw(e));
                w.end_nested(list);
            });
        }
    }
}

fn operation_name(kind: u16) -> &'static str {
    match kind {
        NEWTABLE => "NEWTABLE",
        NEWCHAIN => "NEWCHAIN",
        DELCHAIN => "DELCHAIN",
        NEWRULE => "NEWRULE",
        DELRULE => "DELRULE",
        NEWSET => "NEWSET",
        DELSET => "DELSET",
        NEWSETELEM => "NEWSETELEM",
        DELSETELEM => "DELSETELEM",
        NEWOBJ => "NEWOBJ",
        DELOBJ => "DELOBJ",
        _ => "message",
    }
}

/// The table (attribute 1) and the name (attribute 2) of a set or object,
/// or of the chain of a rule, or the set of set elements.
fn named(w: &mut Writer, table: &str, name: &str) {
    w.put_strz(1, table);
    w.put_strz(2, name);
}

/// A chain's table and name (`NFTA_CHAIN_TABLE`, `NFTA_CHAIN_NAME`).
fn chain_named(w: &mut Writer, table: &str, name: &str) {
    w.put_strz(1, table);
    w.put_strz(3, name);
}

fn write_set(w: &mut Writer, table: &str, name: &str, kind: SetKind, id: u32) {
    let (flags, key_type, key_len) = match kind {
        SetKind::Ipv4 => (SET_INTERVAL, TYPE_IPADDR, 4),
        SetKind::Ipv6 => (SET_INTERVAL, TYPE_IP6ADDR, 16),
        SetKind::Ipv4Networks => (0, TYPE_IPADDR, 4),
        SetKind::Ipv6Networks => (0, TYPE_IP6ADDR, 16),
        SetKind::ProtoPort => (
            SET_INTERVAL | SET_CONCAT,
            TYPE_INET_PROTOCOL << 6 | TYPE_INET_SERVICE,
            8,
        ),
        SetKind::Ipv4Learned => (SET_TIMEOUT, TYPE_IPADDR, 4),
        SetKind::Ipv6Learned => (SET_TIMEOUT, TYPE_IP6ADDR, 16),
        SetKind::IfnameIpv4Learned => (SET_TIMEOUT, TYPE_IFNAME << 6 | TYPE_IPADDR, 20),
        SetKind::IfnameIpv6Learned => (SET_TIMEOUT, TYPE_IFNAME << 6 | TYPE_IP6ADDR, 32),
    };
    named(w, table, name);
    w.put_be32(3, flags); // NFTA_SET_FLAGS
    w.put_be32(4, key_type); // NFTA_SET_KEY_TYPE
    w.put_be32(5, key_len); // NFTA_SET_KEY_LEN
    w.put_be32(10, id); // NFTA_SET_ID
    if kind == SetKind::ProtoPort {
        // The concatenation's field lengths, for the pipapo backend.
        let desc = w.begin_nested(9); // NFTA_SET_DESC
        let concat = w.begin_nested(2); // NFTA_SET_DESC_CONCAT
        for field_len in [1, 2] {
            let element = w.begin_nested(1); // NFTA_LIST_ELEM
            w.put_be32(1, field_len); // NFTA_SET_FIELD_LEN
            w.end_nested(element);
        }
        w.end_nested(concat);
        w.end_nested(desc);
    }
}

/// Each element as one encoded `NFTA_LIST_ELEM`. Address ranges become
/// nft's interval encoding: an element at each start, an end-flagged one
/// just past each end (none past the top of the address space: that
/// interval is open, which its user data says), and one end-flagged
/// element at zero when the first range starts above it.
fn encode_elements(elements: &[Element]) -> Result<Vec<Vec<u8>>, NetlinkError> {
    let mut out = Vec::with_capacity(elements.len() * 2 + 1);
    let mut first_range = true;
    for element in elements {
        match element {
            Element::Range(range) => {
                let start = address_bytes(range.first);
                if first_range && start.iter().any(|&b| b != 0) {
                    out.push(element_bytes(
                        &vec![0; start.len()],
                        None,
                        ELEM_INTERVAL_END,
                        None,
                        false,
                    ));
                }
                first_range = false;
                match next_address(range.last) {
                    Some(end) => {
                        out.push(element_bytes(&start, None, 0, None, false));
                        out.push(element_bytes(&end, None, ELEM_INTERVAL_END, None, false));
                    }
                    None => out.push(element_bytes(&start, None, 0, None, true)),
                }
            }
            Element::ProtoPorts {
                protocol,
                first,
                last,
            } => {
                let key = |port: u16| {
                    let [hi, lo] = port.to_be_bytes();
                    vec![*protocol, 0, 0, 0, hi, lo, 0, 0]
                };
                out.push(element_bytes(
                    &key(*first),
                    Some(&key(*last)),
                    0,
                    None,
                    false,
                ));
            }
            Element::IfnameVerdict(ifname, verdict) => {
                out.push(verdict_element(&ifname_bytes(ifname)?, verdict));
            }
            Element::AddrVerdict(addr, verdict) => {
                out.push(verdict_element(&address_bytes(*addr), verdict));
            }
            Element::Addr(addr) => {
                out.push(element_bytes(&address_bytes(*addr), None, 0, None, false));
            }
            Element::Ifname(ifname) => {
                out.push(element_bytes(&ifname_bytes(ifname)?, None, 0, None, false));
            }
        }
    }
    Ok(out)
}

/// A verdict map's element.
fn verdict_element(key: &[u8], verdict: &Verdict) -> Vec<u8> {
    let mut data = Writer::default();
    write_verdict(&mut data, verdict);
    element_bytes(key, None, 0, Some(&data.into_bytes()), false)
}

/// One `NFTA_LIST_ELEM`: flags, key, key end, data, user data.
fn element_bytes(
    key: &[u8],
    key_end: Option<&[u8]>,
    flags: u32,
    data: Option<&[u8]>,
    open: bool,
) -> Vec<u8> {
    let mut w = Writer::with_capacity(attr_size(key.len()) * 2 + 64);
    let element = w.begin_nested(1); // NFTA_LIST_ELEM
    if flags != 0 {
        w.put_be32(3, flags); // NFTA_SET_ELEM_FLAGS
    }
    value(&mut w, 1, key); // NFTA_SET_ELEM_KEY
    if let Some(end) = key_end {
        value(&mut w, 10, end); // NFTA_SET_ELEM_KEY_END
    }
    if let Some(data) = data {
        let nested = w.begin_nested(2); // NFTA_SET_ELEM_DATA
        w.put_raw(data);
        w.end_nested(nested);
    }
    if open {
        // nft's NFTNL_UDATA_SET_ELEM_FLAGS = NFTNL_SET_ELEM_F_INTERVAL_OPEN.
        w.put(6, &[1, 4, 1, 0, 0, 0]); // NFTA_SET_ELEM_USERDATA
    }
    w.end_nested(element);
    w.into_bytes()
}

fn value(w: &mut Writer, kind: u16, bytes: &[u8]) {
    let nested = w.begin_nested(kind);
    w.put(NFTA_DATA_VALUE, bytes);
    w.end_nested(nested);
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

/// An interface name NUL-padded to `IFNAMSIZ`, as nft lays out `ifname`.
fn ifname_bytes(ifname: &str) -> Result<Vec<u8>, NetlinkError> {
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains('\0') {
        return Err(NetlinkError::InvalidIfname(ifname.to_owned()));
    }
    let mut key = vec![0; IFNAMSIZ];
    key[..ifname.len()].copy_from_slice(ifname.as_bytes());
    Ok(key)
}
