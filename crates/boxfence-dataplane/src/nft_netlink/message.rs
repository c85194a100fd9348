//! nf_tables set-element messages and the nfnetlink batch around them.
//!
//! A batch is `NFNL_MSG_BATCH_BEGIN`, one or more `NFT_MSG_*SETELEM`
//! messages, `NFNL_MSG_BATCH_END`, sent in one datagram: the kernel
//! applies it as one transaction, or none of it.

use std::collections::HashMap;
use std::time::Duration;

use super::NetlinkError;
use super::batch::{Batch, BatchWriter, Part};
use super::element::{ElementKey, SetElement};
use crate::netlink::{NLA_HDRLEN, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, attr_size};

/// `NFT_MSG_NEWSETELEM`.
const NFT_MSG_NEWSETELEM: u16 = 12;
/// `NFT_MSG_DELSETELEM`.
const NFT_MSG_DELSETELEM: u16 = 14;
/// `NFT_MSG_DESTROYSETELEM` (Linux 6.3).
const NFT_MSG_DESTROYSETELEM: u16 = 30;

/// `NFTA_SET_ELEM_LIST_TABLE`.
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
/// `NFTA_SET_ELEM_LIST_SET`.
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
/// `NFTA_SET_ELEM_LIST_ELEMENTS`.
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
/// `NFTA_LIST_ELEM`.
const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_SET_ELEM_KEY`.
const NFTA_SET_ELEM_KEY: u16 = 1;
/// `NFTA_SET_ELEM_TIMEOUT`: milliseconds, big-endian `u64`.
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
/// `NFTA_DATA_VALUE`.
const NFTA_DATA_VALUE: u16 = 1;

/// `NFT_NAME_MAXLEN` (256) less the NUL.
const MAX_NAME_LEN: usize = 255;
/// The kernel turns milliseconds into nanoseconds and refuses
/// (`ERANGE`) anything from `U64_MAX / NSEC_PER_MSEC` on.
pub(super) const MAX_TIMEOUT_MS: u64 = u64::MAX / 1_000_000;
/// A nested attribute's length is 16 bits.
const MAX_NEST_LEN: usize = u16::MAX as usize & !3;

/// What a message does to its elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    /// `NFT_MSG_NEWSETELEM` with `NLM_F_CREATE` (no `NLM_F_EXCL`):
    /// an existing element is no error.
    New,
    /// `NFT_MSG_DELSETELEM`: a missing element is an error (`ENOENT`).
    Delete,
    /// `NFT_MSG_DESTROYSETELEM`: a missing element is ignored.
    Destroy,
}

impl Operation {
    fn message_type(self) -> u16 {
        match self {
            Self::New => NFT_MSG_NEWSETELEM,
            Self::Delete => NFT_MSG_DELSETELEM,
            Self::Destroy => NFT_MSG_DESTROYSETELEM,
        }
    }

    fn flags(self) -> u16 {
        match self {
            Self::New => NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
            Self::Delete | Self::Destroy => NLM_F_REQUEST | NLM_F_ACK,
        }
    }

    /// Whether the message carries timeouts (deletes need only keys).
    fn with_timeouts(self) -> bool {
        self == Self::New
    }

    /// The message's name, for errors.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::New => "NEWSETELEM",
            Self::Delete => "DELSETELEM",
            Self::Destroy => "DESTROYSETELEM",
        }
    }
}

/// One element, checked and ready to encode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Item<'a> {
    pub(super) key: &'a ElementKey,
    /// Milliseconds.
    pub(super) timeout: Option<u64>,
}

/// The elements of one set, each key once.
#[derive(Debug)]
pub(super) struct SetGroup<'a> {
    pub(super) set: &'a str,
    pub(super) items: Vec<Item<'a>>,
}

/// Checks names, keys and timeouts and groups the elements by set, in
/// order of first appearance; a key given twice for a set is sent once,
/// with its last timeout (a batch that deleted it twice would fail).
pub(super) fn group<'a>(
    table: &str,
    elements: &'a [SetElement],
) -> Result<Vec<SetGroup<'a>>, NetlinkError> {
    check_name(table)?;
    let mut groups: Vec<SetGroup<'a>> = Vec::new();
    // Past a handful of elements, find duplicates by hashing.
    let mut index: Option<HashMap<(&str, &ElementKey), usize>> =
        (elements.len() > 16).then(HashMap::new);
    for element in elements {
        element.key.validate()?;
        let timeout = element
            .timeout
            .map(|t| timeout_ms(&element.set, t))
            .transpose()?;
        let item = Item {
            key: &element.key,
            timeout,
        };
        let g = match groups.iter().position(|g| g.set == element.set) {
            Some(g) => g,
            None => {
                check_name(&element.set)?;
                groups.push(SetGroup {
                    set: &element.set,
                    items: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let existing = match &index {
            Some(index) => index.get(&(element.set.as_str(), &element.key)).copied(),
            None => groups[g].items.iter().position(|i| i.key == &element.key),
        };
        match existing {
            Some(i) => groups[g].items[i] = item,
            None => {
                if let Some(index) = &mut index {
                    index.insert((&element.set, &element.key), groups[g].items.len());
                }
                groups[g].items.push(item);
            }
        }
    }
    Ok(groups)
}

pub(super) fn check_name(name: &str) -> Result<(), NetlinkError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(NetlinkError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Whole milliseconds, rounded up; 0 and the kernel's overflow are refused.
fn timeout_ms(set: &str, timeout: Duration) -> Result<u64, NetlinkError> {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 && ms < MAX_TIMEOUT_MS => Ok(ms),
        _ => Err(NetlinkError::InvalidTimeout {
            set: set.to_owned(),
            timeout,
        }),
    }
}

/// The encoded size of one element in a list.
fn item_size(item: &Item<'_>, with_timeout: bool) -> usize {
    let timeout = if with_timeout && item.timeout.is_some() {
        attr_size(8)
    } else {
        0
    };
    NLA_HDRLEN + timeout + NLA_HDRLEN + attr_size(item.key.len())
}

/// Encodes `steps` (each an operation on one set's elements) as one batch
/// for table `inet <table>`, starting at sequence number `seq`. A step
/// whose element list would outgrow a 16-bit attribute length is split
/// into several messages of the same batch.
pub(super) fn encode_batch(table: &str, seq: u32, steps: &[(Operation, &SetGroup<'_>)]) -> Batch {
    let element_bytes: usize = steps
        .iter()
        .map(|(op, g)| {
            g.items
                .iter()
                .map(|i| item_size(i, op.with_timeouts()))
                .sum::<usize>()
        })
        .sum();
    let mut w = BatchWriter::new(seq, element_bytes + 64 * steps.len() + 2 * table.len());
    for &(operation, group) in steps {
        let with_timeouts = operation.with_timeouts();
        let mut rest = &group.items[..];
        while !rest.is_empty() {
            // As many elements as fit one list attribute.
            let mut size = NLA_HDRLEN;
            let mut count = 0;
            for item in rest {
                let s = item_size(item, with_timeouts);
                if size + s > MAX_NEST_LEN {
                    break;
                }
                size += s;
                count += 1;
            }
            let (chunk, tail) = rest.split_at(count.max(1));
            rest = tail;
            encode_message(&mut w, operation, table, group.set, chunk);
        }
    }
    w.finish()
}

/// One `NFT_MSG_*SETELEM` message, laid out as nft 1.0 does: table, set,
/// then the element list; in each element the timeout precedes the key.
fn encode_message(
    batch: &mut BatchWriter,
    operation: Operation,
    table: &str,
    set: &str,
    items: &[Item<'_>],
) {
    let part = Part {
        operation: operation.name(),
        set: set.to_owned(),
        elements: items.len(),
        command: None,
    };
    let message = batch.begin(operation.message_type(), operation.flags(), part);
    let w = batch.writer();
    w.put_strz(NFTA_SET_ELEM_LIST_TABLE, table);
    w.put_strz(NFTA_SET_ELEM_LIST_SET, set);
    let list = w.begin_nested(NFTA_SET_ELEM_LIST_ELEMENTS);
    for item in items {
        let element = w.begin_nested(NFTA_LIST_ELEM);
        if let (true, Some(ms)) = (operation.with_timeouts(), item.timeout) {
            w.put_be64(NFTA_SET_ELEM_TIMEOUT, ms);
        }
        let key = w.begin_nested(NFTA_SET_ELEM_KEY);
        let (bytes, len) = item.key.encode();
        w.put(NFTA_DATA_VALUE, &bytes[..len]);
        w.end_nested(key);
        w.end_nested(element);
    }
    w.end_nested(list);
    batch.end(message);
}
