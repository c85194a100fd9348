//! CIDR blocks as the APIs write them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a CIDR string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an address with an optional `/prefix`.
    #[error("`{0}` is not a CIDR block (expected e.g. 104.16.0.0/12 or 2001:db8::/32)")]
    Syntax(String),
    /// Bits after the prefix are set, so the block is ambiguous.
    #[error("`{given}` has host bits set; the network is {network}")]
    HostBitsSet {
        /// The text as given.
        given: String,
        /// The network the prefix describes.
        network: IpNet,
    },
}

/// A CIDR block with no host bits set (`104.16.0.0/12`). A bare address
/// stands for the block of that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(IpNet);

impl Cidr {
    /// The block as an `IpNet`.
    pub fn net(self) -> IpNet {
        self.0
    }

    /// True when `ip` lies inside the block.
    pub fn contains(self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl From<IpNet> for Cidr {
    fn from(net: IpNet) -> Self {
        Self(net.trunc())
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let net = if text.contains('/') {
            IpNet::from_str(text).map_err(|_| CidrError::Syntax(text.to_owned()))?
        } else {
            IpAddr::from_str(text)
                .map(IpNet::from)
                .map_err(|_| CidrError::Syntax(text.to_owned()))?
        };
        if net.trunc() != net {
            return Err(CidrError::HostBitsSet {
                given: text.to_owned(),
                network: net.trunc(),
            });
        }
        Ok(Self(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
