//! Constant-time questions about nf_tables for a watchdog: the ruleset's
//! generation (every commit, by anyone, moves it) and whether a table is
//! there. Neither lists anything, whatever the size of the table.

use crate::HostNetns;
use crate::netlink::socket::{Family, Socket, SocketError};
use crate::netlink::{self, NFGENMSG_LEN, NLM_F_ACK, NLM_F_REQUEST, Writer};
use crate::nfnl::NfnlError;
use crate::nft::Listing;

/// `NFNL_SUBSYS_NFTABLES << 8`: the high byte of nf_tables message types.
const NFTABLES: u16 = 10 << 8;
/// `NFT_MSG_GETTABLE`.
const NFT_MSG_GETTABLE: u16 = NFTABLES | 1;
/// `NFT_MSG_NEWGEN`: the answer to `NFT_MSG_GETGEN`.
const NFT_MSG_NEWGEN: u16 = NFTABLES | 15;
/// `NFT_MSG_GETGEN`.
const NFT_MSG_GETGEN: u16 = NFTABLES | 16;
/// `NFTA_GEN_ID`: big-endian `u32`.
const NFTA_GEN_ID: u16 = 1;
/// `NFTA_TABLE_NAME`.
const NFTA_TABLE_NAME: u16 = 1;
/// `AF_UNSPEC`.
const AF_UNSPEC: u8 = 0;
/// `NFPROTO_INET`: tables of family `inet`.
const NFPROTO_INET: u8 = 1;

/// A `NETLINK_NETFILTER` socket for those questions.
#[derive(Debug)]
pub struct NftWatch {
    socket: Socket,
}

impl NftWatch {
    /// Opens one in the calling thread's network namespace.
    pub fn open() -> Result<Self, NfnlError> {
        Ok(Self {
            socket: Socket::open(Family::Netfilter).map_err(NfnlError::Open)?,
        })
    }

    /// Opens one in `host` (the socket stays there).
    pub fn open_in(host: &HostNetns) -> Result<Self, NfnlError> {
        Ok(Self {
            socket: Socket::open_in(Family::Netfilter, host).map_err(NfnlError::Open)?,
        })
    }

    /// The namespace's nf_tables generation id.
    pub fn generation(&mut self) -> Result<u32, NfnlError> {
        const REQUEST: &str = "nf_tables generation";
        let mut generation = None;
        self.socket
            .request(generation_request, |reply| {
                if reply.kind == NFT_MSG_NEWGEN {
                    generation = generation_of(reply.payload);
                }
                Ok(())
            })
            .map_err(NfnlError::of(REQUEST))?;
        generation.ok_or(NfnlError::Request {
            request: REQUEST,
            source: SocketError::Malformed("no generation in the answer"),
        })
    }

    /// Table `inet <name>` as the kernel holds it (see
    /// [`Listing`]), or `None` if there is none.
    pub fn list_table(&mut self, name: &str) -> Result<Option<Listing>, NfnlError> {
        crate::nft_netlink::dump::list_table(&mut self.socket, name)
    }

    /// Whether table `inet <name>` exists.
    pub fn table_exists(&mut self, name: &str) -> Result<bool, NfnlError> {
        match self
            .socket
            .request(|seq| table_request(name, seq), |_| Ok(()))
        {
            Ok(()) => Ok(true),
            Err(SocketError::Refused(nix::errno::Errno::ENOENT)) => Ok(false),
            Err(error) => Err(NfnlError::of("nf_tables table lookup")(error)),
        }
    }
}

fn generation_request(seq: u32) -> Vec<u8> {
    let mut writer = Writer::with_capacity(20);
    let start = writer.begin_message(NFT_MSG_GETGEN, NLM_F_REQUEST | NLM_F_ACK, seq, AF_UNSPEC, 0);
    writer.end_message(start);
    writer.into_bytes()
}

fn table_request(name: &str, seq: u32) -> Vec<u8> {
    let mut writer = Writer::with_capacity(32 + name.len());
    let start = writer.begin_message(
        NFT_MSG_GETTABLE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        NFPROTO_INET,
        0,
    );
    writer.put_strz(NFTA_TABLE_NAME, name);
    writer.end_message(start);
    writer.into_bytes()
}

/// `NFTA_GEN_ID` of an `NFT_MSG_NEWGEN` payload.
fn generation_of(payload: &[u8]) -> Option<u32> {
    netlink::attributes(payload.get(NFGENMSG_LEN..)?)
        .find(|(kind, _)| *kind == NFTA_GEN_ID)
        .and_then(|(_, value)| value.try_into().ok())
        .map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::messages;
    use crate::testing::ScratchNetns;

    #[test]
    fn requests_encode_as_nft_sends_them() {
        let bytes = generation_request(3);
        assert_eq!(bytes.len(), 20);
        assert_eq!(bytes[4..8], [0x10, 0x0a, 0x05, 0x00], "GETGEN, REQUEST|ACK");
        let bytes = table_request("boxfence", 4);
        let message = messages(&bytes).next().expect("one").expect("framed");
        assert_eq!(message.kind, NFT_MSG_GETTABLE);
        assert_eq!(message.payload[0], NFPROTO_INET);
        let name: Vec<_> = netlink::attributes(&message.payload[NFGENMSG_LEN..]).collect();
        assert_eq!(name, vec![(NFTA_TABLE_NAME, &b"boxfence\0"[..])]);
    }

    #[test]
    fn a_generation_answer_decodes() {
        let mut writer = Writer::with_capacity(32);
        let start = writer.begin_message(NFT_MSG_NEWGEN, 0, 1, AF_UNSPEC, 0);
        writer.put(NFTA_GEN_ID, &77u32.to_be_bytes());
        writer.end_message(start);
        let bytes = writer.into_bytes();
        let message = messages(&bytes).next().expect("one").expect("framed");
        assert_eq!(generation_of(message.payload), Some(77));
    }

    #[test]
    fn every_commit_moves_the_generation_and_tables_are_seen() {
        let Some(netns) = ScratchNetns::new("nftwatch") else {
            return;
        };
        let host = netns.host();
        let mut watch = NftWatch::open_in(&host).expect("open");
        let first = watch.generation().expect("generation");
        assert_eq!(
            watch.generation().expect("again"),
            first,
            "nothing committed"
        );
        assert!(!watch.table_exists("w").expect("lookup"));
        host.nft("add table inet w\n").expect("table");
        let second = watch.generation().expect("generation");
        assert_ne!(second, first);
        assert!(watch.table_exists("w").expect("lookup"));
        host.nft("delete table inet w\n").expect("delete");
        assert!(!watch.table_exists("w").expect("lookup"));
        assert_ne!(watch.generation().expect("generation"), second);
    }

    /// Prints what the watchdog's per-tick questions cost next to a JSON
    /// listing of a table with 1,000 chains and sets:
    /// `cargo test -p boxfence-dataplane watch_timing -- --ignored --nocapture` as root.
    #[test]
    #[ignore = "a timing printout, not a check"]
    fn watch_timing() {
        let Some(netns) = ScratchNetns::new("nftwatchtime") else {
            return;
        };
        let host = netns.host();
        let mut batch = String::from("add table inet w\n");
        for i in 0..1000 {
            batch.push_str(&format!(
                "add set inet w s{i} {{ type ipv4_addr; flags interval; elements = {{ 11.{}.{}.0/24 }} }}\n\
                 add chain inet w c{i}\nadd rule inet w c{i} ip daddr @s{i} counter accept\n",
                i / 256,
                i % 256
            ));
        }
        host.nft(&batch).expect("table");
        let mut watch = NftWatch::open_in(&host).expect("open");
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            watch.generation().expect("generation");
            assert!(watch.table_exists("w").expect("lookup"));
        }
        let tick = started.elapsed() / 1000;
        let started = std::time::Instant::now();
        host.run("nft", &["-j", "-s", "list", "table", "inet", "w"], None)
            .expect("list");
        println!(
            "per tick (generation + table lookup): {tick:?}; nft -j -s list table (1,000 chains and sets): {:?}",
            started.elapsed()
        );
    }
}
