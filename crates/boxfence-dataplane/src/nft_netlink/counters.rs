//! Reading the table's named counters: one `NFT_MSG_GETOBJ` dump.

use std::collections::HashMap;

use nix::errno::Errno;

use super::NetlinkError;
use super::batch::NFNL_SUBSYS_NFTABLES;
use crate::netlink::{
    NFGENMSG_LEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, Writer,
    attributes, messages,
};
use crate::nft::expr::OBJECT_COUNTER;

/// `NFT_MSG_GETOBJ`, `NFT_MSG_NEWOBJ` (what the dump answers with).
const GETOBJ: u16 = 19;
const NEWOBJ: u16 = 18;
/// `NFPROTO_INET`.
const NFPROTO_INET: u8 = 1;

/// What to read.
#[derive(Debug, Clone, Copy)]
pub(super) enum Query<'a> {
    /// Every counter of the table, in one dump.
    All,
    /// These counters, one `GETOBJ` each (cheaper than a dump of a large
    /// table when only a few are wanted).
    Named(&'a [String]),
}

/// The request datagram: messages with sequence numbers from `seq` on.
pub(super) fn request(table: &str, seq: u32, query: Query<'_>) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + table.len());
    let mut message = |seq: u32, flags: u16, name: Option<&str>| {
        let start = w.begin_message(
            NFNL_SUBSYS_NFTABLES << 8 | GETOBJ,
            NLM_F_REQUEST | flags,
            seq,
            NFPROTO_INET,
            0,
        );
        w.put_strz(1, table); // NFTA_OBJ_TABLE
        if let Some(name) = name {
            w.put_strz(2, name); // NFTA_OBJ_NAME
        }
        w.put_be32(3, OBJECT_COUNTER); // NFTA_OBJ_TYPE
        w.end_message(start);
    };
    match query {
        Query::All => message(seq, NLM_F_DUMP, None),
        Query::Named(names) => {
            for (i, name) in (0..).zip(names) {
                message(seq.wrapping_add(i), NLM_F_ACK, Some(name));
            }
        }
    }
    w.into_bytes()
}

/// Counter packets by name, from the answers.
#[derive(Debug)]
pub(super) struct Collected {
    first_seq: u32,
    /// Messages sent (one for a dump).
    sent: u32,
    /// `GETOBJ`s acknowledged.
    acked: u32,
    dump: bool,
    pub(super) packets: HashMap<String, u64>,
}

impl Collected {
    pub(super) fn new(first_seq: u32, query: Query<'_>) -> Self {
        let (sent, dump) = match query {
            Query::All => (1, true),
            Query::Named(names) => (u32::try_from(names.len()).unwrap_or(u32::MAX), false),
        };
        Self {
            first_seq,
            sent,
            acked: 0,
            dump,
            packets: HashMap::new(),
        }
    }

    /// Takes in one datagram; `Ok(true)` once every answer is in.
    pub(super) fn absorb(&mut self, datagram: &[u8]) -> Result<bool, NetlinkError> {
        for message in messages(datagram) {
            let message = message.map_err(NetlinkError::Malformed)?;
            if message.seq.wrapping_sub(self.first_seq) >= self.sent {
                continue;
            }
            match message.kind {
                NLMSG_DONE if self.dump => return Ok(true),
                NLMSG_ERROR => {
                    let code = message
                        .payload
                        .get(..4)
                        .ok_or(NetlinkError::Malformed("short NLMSG_ERROR"))?;
                    let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                    if code != 0 {
                        return Err(NetlinkError::Socket {
                            op: "GETOBJ",
                            errno: Errno::from_raw(code.saturating_neg()),
                        });
                    }
                    self.acked += 1;
                    if !self.dump && self.acked == self.sent {
                        return Ok(true);
                    }
                }
                kind if kind == NFNL_SUBSYS_NFTABLES << 8 | NEWOBJ => {
                    let body = message.payload.get(NFGENMSG_LEN..).unwrap_or_default();
                    if let Some((name, packets)) = counter(body) {
                        self.packets.insert(name, packets);
                    }
                }
                _ => {}
            }
        }
        Ok(false)
    }
}

/// The name and packet count of one `NEWOBJ` message of a counter.
fn counter(body: &[u8]) -> Option<(String, u64)> {
    let mut name = None;
    let mut packets = None;
    for (kind, value) in attributes(body) {
        match kind {
            2 => name = std::str::from_utf8(value.strip_suffix(&[0])?).ok(), // NFTA_OBJ_NAME
            4 => {
                // NFTA_OBJ_DATA: NFTA_COUNTER_PACKETS
                packets = attributes(value)
                    .find(|(kind, _)| *kind == 2)
                    .and_then(|(_, v)| Some(u64::from_be_bytes(v.try_into().ok()?)));
            }
            _ => {}
        }
    }
    Some((name?.to_owned(), packets?))
}
