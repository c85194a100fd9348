//! The model lowered to what the kernel holds: rules to expressions, set
//! kinds to declarations, elements to the kernel's elements, base chains
//! to hooks. Pure functions: the netlink client encodes their results, and
//! the listing the model expects is made of them.
//!
//! Expressions come in the order and registers nft 1.0.6 uses for the
//! same text (so `nft list` shows our rules as it would show its own;
//! checked by the twin tests in `ruleset`).

mod exprs;
mod sets;

use std::net::IpAddr;

use super::expr::{
    Data, HookSpec, VERDICT_ACCEPT, VERDICT_DROP, VERDICT_GOTO, VERDICT_JUMP, VERDICT_RETURN,
};
use super::{BaseChain, ChainType, Hook, Verdict};

pub use exprs::rule;
pub use sets::{elements, set_spec};

/// What cannot be lowered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// An interface name (or a pattern's prefix) is empty, longer than 15
    /// bytes, or contains NUL.
    #[error("invalid interface name {0:?} (1 to 15 bytes, no NUL)")]
    InvalidIfname(String),
}

/// `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;

/// `NF_INET_*` hook numbers.
const HOOK_PREROUTING: u32 = 0;
const HOOK_INPUT: u32 = 1;
const HOOK_FORWARD: u32 = 2;
const HOOK_POSTROUTING: u32 = 4;
const HOOK_INGRESS: u32 = 5;

/// A verdict as register data.
pub fn verdict_data(verdict: &Verdict) -> Data {
    let (code, chain) = match verdict {
        Verdict::Accept => (VERDICT_ACCEPT, None),
        Verdict::Drop => (VERDICT_DROP, None),
        Verdict::Jump(chain) => (VERDICT_JUMP, Some(chain.clone())),
        Verdict::Goto(chain) => (VERDICT_GOTO, Some(chain.clone())),
        Verdict::Return => (VERDICT_RETURN, None),
    };
    Data::Verdict { code, chain }
}

/// A base chain's hook.
pub fn hook(base: &BaseChain) -> HookSpec {
    let (hooknum, device) = match &base.hook {
        Hook::Prerouting => (HOOK_PREROUTING, None),
        Hook::Input => (HOOK_INPUT, None),
        Hook::Forward => (HOOK_FORWARD, None),
        Hook::Postrouting => (HOOK_POSTROUTING, None),
        Hook::Ingress(device) => (HOOK_INGRESS, Some(device.clone())),
    };
    HookSpec {
        chain_type: match base.chain_type {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
        .to_owned(),
        hooknum,
        priority: base.priority,
        policy: VERDICT_ACCEPT as u32,
        device,
    }
}

/// An address in network byte order.
pub fn address_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An interface name NUL-padded to `IFNAMSIZ`, as nft lays out `ifname`.
pub fn ifname_bytes(ifname: &str) -> Result<Vec<u8>, LowerError> {
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains('\0') {
        return Err(LowerError::InvalidIfname(ifname.to_owned()));
    }
    let mut key = vec![0; IFNAMSIZ];
    key[..ifname.len()].copy_from_slice(ifname.as_bytes());
    Ok(key)
}
