//! Ruleset commands ([`crate::nft::Command`]) as one nf_tables batch.
//!
//! Only the last message asks for an acknowledgement: the kernel reports
//! every refused message anyway, and acknowledgements of thousands of
//! messages would overflow the receive buffer (each is its own skb).

use super::NetlinkError;
use super::batch::{Batch, BatchWriter, NLM_F_APPEND, Part};
use super::expr::{ANONYMOUS_SET_NAME, element_bytes, write_exprs};
use crate::netlink::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, Writer};
use crate::nft::expr::{Expr, NETDEV_INGRESS, OBJECT_COUNTER, RawElement, SetRef, SetSpec};
use crate::nft::{Command, command_line, lower};

/// `NFT_MSG_*` kinds.
const NEWTABLE: u16 = 0;
const DELTABLE: u16 = 2;
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
const NEWFLOWTABLE: u16 = 22;
const DELFLOWTABLE: u16 = 24;

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
            text: command_line(table, command),
            ack: if last { NLM_F_ACK } else { 0 },
        };
        match command {
            Command::AddTable => message.send(NEWTABLE, NLM_F_CREATE, table, |w| {
                w.put_strz(1, table); // NFTA_TABLE_NAME
                w.put_be32(2, 0); // NFTA_TABLE_FLAGS
            }),
            Command::DeleteTable => message.send(DELTABLE, 0, table, |w| {
                w.put_strz(1, table); // NFTA_TABLE_NAME
            }),
            Command::AddChain(name) => message.send(NEWCHAIN, NLM_F_CREATE, name, |w| {
                chain_named(w, table, name);
            }),
            Command::AddBaseChain { name, base } => {
                let hook = lower::hook(base);
                message.send(NEWCHAIN, NLM_F_CREATE, name, |w| {
                    chain_named(w, table, name);
                    let nested = w.begin_nested(4); // NFTA_CHAIN_HOOK
                    w.put_be32(1, hook.hooknum); // NFTA_HOOK_HOOKNUM
                    w.put(2, &hook.priority.to_be_bytes()); // NFTA_HOOK_PRIORITY
                    if let Some(device) = &hook.device {
                        w.put_strz(3, device); // NFTA_HOOK_DEV
                    }
                    w.end_nested(nested);
                    w.put_be32(5, hook.policy); // NFTA_CHAIN_POLICY
                    w.put_strz(7, &hook.chain_type); // NFTA_CHAIN_TYPE
                });
            }
            Command::DeleteChain(name) => message.send(DELCHAIN, 0, name, |w| {
                chain_named(w, table, name);
            }),
            Command::FlushChain(name) => message.send(DELRULE, 0, name, |w| named(w, table, name)),
            Command::AddRule { chain, rule } => {
                let exprs = lower::rule(rule)?;
                // A rule's anonymous sets go first, each with its elements.
                let mut ids = Vec::new();
                for set in anonymous_sets(&exprs) {
                    set_id += 1;
                    ids.push(set_id);
                    let size = u32::try_from(set.elements.len()).unwrap_or(u32::MAX);
                    // Not the command's last message: no acknowledgement.
                    message.one(NEWSET, NLM_F_CREATE, ANONYMOUS_SET_NAME, 0, |w| {
                        write_set(w, table, ANONYMOUS_SET_NAME, &set.spec, set_id, Some(size));
                    });
                    let elements = encoded(&set.elements);
                    message.elements(
                        NEWSETELEM,
                        NLM_F_CREATE,
                        ANONYMOUS_SET_NAME,
                        Some(set_id),
                        &elements,
                    );
                }
                message.send(NEWRULE, NLM_F_CREATE | NLM_F_APPEND, chain, |w| {
                    named(w, table, chain);
                    let nested = w.begin_nested(4); // NFTA_RULE_EXPRESSIONS
                    write_exprs(w, &exprs, &mut ids.into_iter());
                    w.end_nested(nested);
                });
            }
            Command::AddSet { name, kind } => {
                set_id += 1;
                message.send(NEWSET, NLM_F_CREATE, name, |w| {
                    write_set(w, table, name, &lower::set_spec(*kind), set_id, None);
                });
            }
            Command::DeleteSet(name) => message.send(DELSET, 0, name, |w| named(w, table, name)),
            Command::FlushSet(name) => message.send(DELSETELEM, 0, name, |w| named(w, table, name)),
            Command::AddElements { set, elements } => {
                let elements = encoded(&lower::elements(elements)?);
                message.elements(NEWSETELEM, NLM_F_CREATE, set, None, &elements);
            }
            Command::DeleteElements { set, elements } => {
                let elements = encoded(&lower::elements(elements)?);
                message.elements(DELSETELEM, 0, set, None, &elements);
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
            Command::AddFlowtable { name, flowtable } => {
                message.send(NEWFLOWTABLE, NLM_F_CREATE, name, |w| {
                    named(w, table, name);
                    flowtable_hook(w, Some(flowtable.priority), &flowtable.devices);
                });
            }
            // With a hook, DELFLOWTABLE removes only its devices.
            Command::DeleteFlowtableDevices { name, devices } => {
                message.send(DELFLOWTABLE, 0, name, |w| {
                    named(w, table, name);
                    flowtable_hook(w, None, devices);
                });
            }
        }
    }
    Ok(batch.finish())
}

/// The anonymous sets a rule's lookups read, in order.
fn anonymous_sets(exprs: &[Expr]) -> impl Iterator<Item = &crate::nft::expr::AnonymousSet> {
    exprs.iter().filter_map(|e| match e {
        Expr::Lookup {
            set: SetRef::Anonymous(set),
            ..
        } => Some(set),
        _ => None,
    })
}

fn encoded(elements: &[RawElement]) -> Vec<Vec<u8>> {
    elements.iter().map(element_bytes).collect()
}

/// The message(s) of one command.
struct Message<'a> {
    batch: &'a mut BatchWriter,
    table: &'a str,
    /// The command as nft text, for errors.
    text: String,
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
            command: Some(self.text.clone()),
        };
        let start = self.batch.begin(kind, NLM_F_REQUEST | flags, part);
        attributes(self.batch.writer());
        self.batch.end(start);
    }

    /// Encoded elements of `set` (a set of this batch's when `id` is
    /// given), as many messages as their lists need.
    fn elements(&mut self, kind: u16, flags: u16, set: &str, id: Option<u32>, encoded: &[Vec<u8>]) {
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
            // An anonymous set's elements are followed by its rule.
            let ack = if rest.is_empty() && id.is_none() {
                self.ack
            } else {
                0
            };
            let table = self.table;
            self.one(kind, flags | ack, set, chunk.len(), |w| {
                w.put_strz(1, table); // NFTA_SET_ELEM_LIST_TABLE
                w.put_strz(2, set); // NFTA_SET_ELEM_LIST_SET
                if let Some(id) = id {
                    w.put_be32(4, id); // NFTA_SET_ELEM_LIST_SET_ID
                }
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
        DELTABLE => "DELTABLE",
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
        NEWFLOWTABLE => "NEWFLOWTABLE",
        DELFLOWTABLE => "DELFLOWTABLE",
        _ => "message",
    }
}

/// The table (attribute 1) and the name (attribute 2) of a set or object,
/// or of the chain of a rule, or the set of set elements.
fn named(w: &mut Writer, table: &str, name: &str) {
    w.put_strz(1, table);
    w.put_strz(2, name);
}

/// `NFTA_FLOWTABLE_HOOK`: the ingress hook at `priority` (a new
/// flowtable's; an existing one's must match, so a removal leaves it
/// out) and the devices, if any.
fn flowtable_hook(w: &mut Writer, priority: Option<i32>, devices: &[String]) {
    let hook = w.begin_nested(3); // NFTA_FLOWTABLE_HOOK
    if let Some(priority) = priority {
        w.put_be32(1, NETDEV_INGRESS); // NFTA_FLOWTABLE_HOOK_NUM
        w.put(2, &priority.to_be_bytes()); // NFTA_FLOWTABLE_HOOK_PRIORITY
    }
    if !devices.is_empty() {
        let list = w.begin_nested(3); // NFTA_FLOWTABLE_HOOK_DEVS
        devices.iter().for_each(|d| w.put_strz(1, d)); // NFTA_DEVICE_NAME
        w.end_nested(list);
    }
    w.end_nested(hook);
}

/// A chain's table and name (`NFTA_CHAIN_TABLE`, `NFTA_CHAIN_NAME`).
fn chain_named(w: &mut Writer, table: &str, name: &str) {
    w.put_strz(1, table);
    w.put_strz(3, name);
}

/// A `NEWSET`'s attributes; `size` (`NFTA_SET_DESC_SIZE`) for a constant
/// set, as nft gives it.
fn write_set(w: &mut Writer, table: &str, name: &str, spec: &SetSpec, id: u32, size: Option<u32>) {
    named(w, table, name);
    w.put_be32(3, spec.flags); // NFTA_SET_FLAGS
    w.put_be32(4, spec.key_type); // NFTA_SET_KEY_TYPE
    w.put_be32(5, spec.key_len); // NFTA_SET_KEY_LEN
    if let Some((data_type, data_len)) = spec.data {
        w.put_be32(6, data_type); // NFTA_SET_DATA_TYPE
        w.put_be32(7, data_len); // NFTA_SET_DATA_LEN
    }
    w.put_be32(10, id); // NFTA_SET_ID
    if !spec.userdata.is_empty() {
        w.put(13, &spec.userdata); // NFTA_SET_USERDATA
    }
    if size.is_some() || !spec.fields.is_empty() {
        let desc = w.begin_nested(9); // NFTA_SET_DESC
        if let Some(size) = size {
            w.put_be32(1, size); // NFTA_SET_DESC_SIZE
        }
        if !spec.fields.is_empty() {
            let concat = w.begin_nested(2); // NFTA_SET_DESC_CONCAT
            for field_len in &spec.fields {
                let element = w.begin_nested(1); // NFTA_LIST_ELEM
                w.put_be32(1, *field_len); // NFTA_SET_FIELD_LEN
                w.end_nested(element);
            }
            w.end_nested(concat);
        }
        w.end_nested(desc);
    }
}
