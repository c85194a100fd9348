//! What goes into a set: keys as nf_tables lays them out in registers.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::NetlinkError;

/// `IFNAMSIZ`: an interface name with its NUL fills 16 bytes.
const IFNAMSIZ: usize = 16;

/// One element for one set of the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SetElement {
    /// The set's name.
    pub set: String,
    /// The element's key; its type must match the set's.
    pub key: ElementKey,
    /// How long the element lives. `None` gives a new element the set's
    /// default timeout (or none); an existing one keeps its timeout under
    /// [`RefreshMode::InPlace`](super::RefreshMode::InPlace) and is
    /// re-created with the set's default under
    /// [`RefreshMode::DeleteAndAdd`](super::RefreshMode::DeleteAndAdd).
    pub timeout: Option<Duration>,
}

impl SetElement {
    /// An element of `set` with `key` that expires after `timeout`.
    pub fn new(set: impl Into<String>, key: ElementKey, timeout: Option<Duration>) -> Self {
        Self {
            set: set.into(),
            key,
            timeout,
        }
    }
}

/// A set key of one of the types the data plane uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElementKey {
    /// `type ipv4_addr`.
    Ipv4(Ipv4Addr),
    /// `type ipv6_addr`.
    Ipv6(Ipv6Addr),
    /// `type ifname . ipv4_addr` (interface name of 1 to 15 bytes).
    IfnameIpv4(String, Ipv4Addr),
    /// `type ifname . ipv6_addr` (interface name of 1 to 15 bytes).
    IfnameIpv6(String, Ipv6Addr),
}

/// The longest key: `ifname . ipv6_addr`.
pub(super) const MAX_KEY_LEN: usize = IFNAMSIZ + 16;

impl ElementKey {
    /// The key's length on the wire (the set's `klen`).
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Ipv4(_) => 4,
            Self::Ipv6(_) => 16,
            Self::IfnameIpv4(..) => IFNAMSIZ + 4,
            Self::IfnameIpv6(..) => IFNAMSIZ + 16,
        }
    }

    /// Checks what the kernel would otherwise reject less clearly.
    pub(super) fn validate(&self) -> Result<(), NetlinkError> {
        match self {
            Self::IfnameIpv4(name, _) | Self::IfnameIpv6(name, _)
                if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') =>
            {
                Err(NetlinkError::InvalidIfname(name.clone()))
            }
            _ => Ok(()),
        }
    }

    /// The key as nft lays it out: addresses in network byte order; in a
    /// concatenation each component takes a multiple of 4 bytes, so the
    /// interface name is NUL-padded to `IFNAMSIZ` (16) and the address
    /// follows. Returns the bytes and how many of them are used.
    pub(super) fn encode(&self) -> ([u8; MAX_KEY_LEN], usize) {
        let mut out = [0u8; MAX_KEY_LEN];
        match self {
            Self::Ipv4(addr) => out[..4].copy_from_slice(&addr.octets()),
            Self::Ipv6(addr) => out[..16].copy_from_slice(&addr.octets()),
            Self::IfnameIpv4(name, addr) => {
                put_ifname(&mut out, name);
                out[IFNAMSIZ..IFNAMSIZ + 4].copy_from_slice(&addr.octets());
            }
            Self::IfnameIpv6(name, addr) => {
                put_ifname(&mut out, name);
                out[IFNAMSIZ..IFNAMSIZ + 16].copy_from_slice(&addr.octets());
            }
        }
        (out, self.len())
    }
}

/// Copies an interface name (validated: under 16 bytes) into the key.
fn put_ifname(out: &mut [u8; MAX_KEY_LEN], name: &str) {
    let len = name.len().min(IFNAMSIZ - 1);
    out[..len].copy_from_slice(&name.as_bytes()[..len]);
}
