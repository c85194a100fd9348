//! The Linux data plane of boxfence: each box is a network namespace
//! behind a veth link whose traffic the host kernel filters with nftables
//! compiled from the policy core's `EffectivePolicy`.

#![forbid(unsafe_code)]

mod command;
pub mod conntrack;
pub mod conntrack_events;
pub mod features;
pub mod links;
mod netlink;
mod netns;
pub mod nflog;
mod nfnl;
pub mod nfqueue;
pub mod nft;
pub mod nft_netlink;
pub mod nft_watch;
pub mod routing;
mod rtnetlink;
pub mod ruleset;

pub use command::{CommandError, HostNetns};
pub use netlink::socket::SocketError;
pub use netns::NetnsError;
pub use nfnl::NfnlError;
pub use rtnetlink::RtnlError;

#[cfg(test)]
mod testing;
