//! Reading the table's named counters: one `NFT_MSG_GETOBJ` dump.

use std::collections::HashMap;

use nix::errno::Errno;

use super::NetlinkError;
use super::batch::{NFNL_SUBSYS_NFTABLES, NLM_F_ACK, NLM_F_REQUEST};
use super::expr::OBJECT_COUNTER;
use crate::netlink::{NFGENMSG_LEN, Writer, attributes, messages};

/// `NFT_MSG_GETOBJ`, `NFT_MSG_NEWOBJ` (what the dump answers with).
const GETOBJ: u16 = 19;
const NEWOBJ: u16 = 18;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
const NLM_F_DUMP: u16 = 0x300;
/// `NLMSG_ERROR`, `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `NFPROTO_INET`.
const NFPROTO_INET: u8 = 1;

/// The dump request for the counters of table `inet <table>`.
pub(super) fn request(table: &str, seq: u32) -> Vec<u8> {
    let mut w = Writer::with_capacity(64 + table.len());
    let message = w.begin_message(
        NFNL_SUBSYS_NFTABLES << 8 | GETOBJ,
        NLM_F_REQUEST | NLM_F_DUMP | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    );
    w.put_strz(1, table); // NFTA_OBJ_TABLE
    w.put_be32(3, OBJECT_COUNTER); // NFTA_OBJ_TYPE
    w.end_message(message);
    w.into_bytes()
}

/// Counter packets by name, from the dump's answers.
#[derive(Debug, Default)]
pub(super) struct Collected {
    pub(super) packets: HashMap<String, u64>,
}

impl Collected {
    /// Takes in one datagram; `Ok(true)` once the dump is complete.
    pub(super) fn absorb(&mut self, seq: u32, datagram: &[u8]) -> Result<bool, NetlinkError> {
        for message in messages(datagram) {
            let message = message.map_err(NetlinkError::Malformed)?;
            if message.seq != seq {
                continue;
            }
            match message.kind {
                NLMSG_DONE => return Ok(true),
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
