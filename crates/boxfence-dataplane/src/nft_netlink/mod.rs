//! A minimal nf_tables netlink client for `inet` tables, without spawning
//! `nft`: ruleset batches ([`NftSocket::apply`], the whole table included)
//! and set elements, one transaction per call.
//!
//! The built-in resolver inserts each allowed answer's addresses with
//! [`NftSocket::add_elements`] before delivering the answer: the call
//! returns once the kernel has committed the batch (or refused it).
//!
//! The wire format is the one nft 1.0 sends (checked byte for byte in the
//! tests against `nft --debug=mnl` captures): an nfnetlink batch
//! (`NFNL_MSG_BATCH_BEGIN`/`END`, `res_id` `NFNL_SUBSYS_NFTABLES`) of
//! `NFT_MSG_NEWSETELEM`/`DELSETELEM` messages (`nfgenmsg` family
//! `NFPROTO_INET`) with `NFTA_SET_ELEM_LIST_TABLE`, `_SET` and `_ELEMENTS`
//! → `NFTA_LIST_ELEM` → `NFTA_SET_ELEM_TIMEOUT` (big-endian milliseconds)
//! and `NFTA_SET_ELEM_KEY` → `NFTA_DATA_VALUE`. Unlike nft, every message
//! asks for an acknowledgement (`NLM_F_ACK`), so a call knows the outcome
//! of each message, and nft's `NFTA_SET_ELEM_LIST_SET_ID` (for sets created
//! in the same batch) is left out.

mod batch;
mod commands;
mod counters;
mod decode;
#[cfg(test)]
mod decode_tests;
pub(crate) mod dump;
mod element;
mod error;
mod expr;
#[cfg(test)]
mod kernel_tests;
mod message;
mod reply;
mod socket;
#[cfg(test)]
mod tests;

pub use element::{ElementKey, SetElement};
pub use error::NetlinkError;
pub use socket::{NftSocket, RefreshMode, RemovalMode};
