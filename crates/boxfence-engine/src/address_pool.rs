//! Address pools: each machine gets the lowest free address of each pool.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::MachineAddresses;

/// Why no address could be allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Every address of the pool is in use.
    #[error("address pool {0} is exhausted")]
    Exhausted(String),
}

/// The IPv4 and IPv6 pools machines take their addresses from. The first
/// address of each pool is the host side's gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    /// Pool of IPv4 addresses.
    pub ipv4: Ipv4Net,
    /// Pool of IPv6 addresses.
    pub ipv6: Ipv6Net,
}

impl AddressPool {
    /// The host side's address in each pool (the machines' gateway).
    pub fn gateways(&self) -> MachineAddresses {
        MachineAddresses {
            ipv4: Ipv4Addr::from_bits(self.ipv4.network().to_bits() + 1),
            ipv6: Ipv6Addr::from_bits(self.ipv6.network().to_bits() + 1),
        }
    }

    /// The lowest free pair of addresses, skipping network, gateway and
    /// broadcast addresses and everything in `used`.
    pub fn allocate(&self, used: &HashSet<IpAddr>) -> Result<MachineAddresses, PoolError> {
        let first4 = self.ipv4.network().to_bits() + 2;
        let last4 = self.ipv4.broadcast().to_bits().saturating_sub(1);
        let ipv4 = (first4..=last4)
            .map(Ipv4Addr::from_bits)
            .find(|ip| !used.contains(&IpAddr::V4(*ip)))
            .ok_or_else(|| PoolError::Exhausted(self.ipv4.to_string()))?;
        let first6 = self.ipv6.network().to_bits() + 2;
        let last6 = self.ipv6.broadcast().to_bits();
        let mut ipv6 = None;
        let mut candidate = first6;
        while candidate <= last6 {
            let ip = Ipv6Addr::from_bits(candidate);
            if !used.contains(&IpAddr::V6(ip)) {
                ipv6 = Some(ip);
                break;
            }
            candidate += 1;
        }
        let ipv6 = ipv6.ok_or_else(|| PoolError::Exhausted(self.ipv6.to_string()))?;
        Ok(MachineAddresses { ipv4, ipv6 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_skips_gateway_and_used_addresses() {
        let pool = AddressPool {
            ipv4: "10.200.0.0/30".parse().expect("net"),
            ipv6: "fd00:bf::/126".parse().expect("net"),
        };
        let first = pool.allocate(&HashSet::new()).expect("free");
        assert_eq!(first.ipv4, Ipv4Addr::new(10, 200, 0, 2));
        assert_eq!(first.ipv6, "fd00:bf::2".parse::<Ipv6Addr>().expect("ip"));
        let used = HashSet::from([IpAddr::V4(first.ipv4), IpAddr::V6(first.ipv6)]);
        assert_eq!(
            pool.allocate(&used),
            Err(PoolError::Exhausted("10.200.0.0/30".into()))
        );
        assert_eq!(pool.gateways().ipv4, Ipv4Addr::new(10, 200, 0, 1));
    }
}
