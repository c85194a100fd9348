//! Protocol · port matching with ranges.

use crate::ports::{PortRange, PortRule, Protocol};

/// A compiled set of protocol · port-range entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortSet {
    tcp: Vec<PortRange>,
    udp: Vec<PortRange>,
    icmp: bool,
}

impl PortSet {
    /// Compiles a rule's `ports`.
    pub fn new(rules: &[PortRule]) -> Self {
        let mut set = Self::default();
        for rule in rules {
            match *rule {
                PortRule::Tcp(range) => set.tcp.push(range),
                PortRule::Udp(range) => set.udp.push(range),
                PortRule::Icmp => set.icmp = true,
            }
        }
        set.tcp = merge(set.tcp);
        set.udp = merge(set.udp);
        set
    }

    /// True when the set allows `protocol` on `port` (ignored for ICMP;
    /// no port rule names another protocol).
    pub fn contains(&self, protocol: Protocol, port: Option<u16>) -> bool {
        let ranges = match protocol {
            Protocol::Icmp => return self.icmp,
            Protocol::Other(_) => return false,
            Protocol::Tcp => &self.tcp,
            Protocol::Udp => &self.udp,
        };
        let Some(port) = port else { return false };
        let after = ranges.partition_point(|range| range.first <= port);
        after
            .checked_sub(1)
            .is_some_and(|index| ranges[index].contains(port))
    }

    /// Merged, sorted port ranges of `protocol` (empty for ICMP).
    pub fn ranges(&self, protocol: Protocol) -> &[PortRange] {
        match protocol {
            Protocol::Tcp => &self.tcp,
            Protocol::Udp => &self.udp,
            Protocol::Icmp | Protocol::Other(_) => &[],
        }
    }

    /// True when ICMP is allowed.
    pub fn icmp(&self) -> bool {
        self.icmp
    }
}

fn merge(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort();
    let mut merged: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if u32::from(range.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(range.last);
            }
            _ => merged.push(range),
        }
    }
    merged
}
