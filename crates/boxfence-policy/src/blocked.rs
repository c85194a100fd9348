//! Always-blocked ranges (DESIGN.md 1.5): every IANA "not globally
//! reachable" block, plus multicast and the IPv6 forms that embed IPv4, so
//! IPv6 is never a way around an IPv4 rule. Tenants cannot allow them; only
//! the operator can exempt a range.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::cidr::Cidr;
use crate::diagnostic::{Diagnostics, JsonPath};
use crate::matchers::{CidrSet, IpRange};

/// One always-blocked block and where it is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlockedBlock {
    /// The block in CIDR notation.
    pub cidr: &'static str,
    /// What the block is.
    pub name: &'static str,
    /// The document that reserves it.
    pub rfc: &'static str,
}

const fn block(cidr: &'static str, name: &'static str, rfc: &'static str) -> BlockedBlock {
    BlockedBlock { cidr, name, rfc }
}

/// The table. Nested entries are fine: a lookup names the most specific.
pub const ALWAYS_BLOCKED: &[BlockedBlock] = &[
    // IPv4 (IANA IPv4 Special-Purpose Address Registry, RFC 6890).
    block("0.0.0.0/8", "\"this network\"", "RFC 791"),
    block("10.0.0.0/8", "private use", "RFC 1918"),
    block("100.64.0.0/10", "shared address space (CGNAT)", "RFC 6598"),
    block("127.0.0.0/8", "loopback", "RFC 1122"),
    block("169.254.0.0/16", "link-local", "RFC 3927"),
    block(
        "169.254.169.254/32",
        "cloud instance metadata (link-local)",
        "RFC 3927",
    ),
    block("172.16.0.0/12", "private use", "RFC 1918"),
    block("192.0.0.0/24", "IETF protocol assignments", "RFC 6890"),
    block("192.0.2.0/24", "documentation (TEST-NET-1)", "RFC 5737"),
    block(
        "192.88.99.0/24",
        "6to4 relay anycast (deprecated)",
        "RFC 7526",
    ),
    block("192.168.0.0/16", "private use", "RFC 1918"),
    block("198.18.0.0/15", "benchmarking", "RFC 2544"),
    block("198.51.100.0/24", "documentation (TEST-NET-2)", "RFC 5737"),
    block("203.0.113.0/24", "documentation (TEST-NET-3)", "RFC 5737"),
    block("224.0.0.0/4", "multicast", "RFC 5771"),
    block("240.0.0.0/4", "reserved for future use", "RFC 1112"),
    block("255.255.255.255/32", "limited broadcast", "RFC 919"),
    // IPv6 (IANA IPv6 Special-Purpose Address Registry, RFC 6890).
    block("::/96", "IPv4-compatible IPv6 (deprecated)", "RFC 4291"),
    block("::/128", "unspecified address", "RFC 4291"),
    block("::1/128", "loopback", "RFC 4291"),
    block("::ffff:0:0/96", "IPv4-mapped IPv6", "RFC 4291"),
    block("64:ff9b::/96", "IPv4/IPv6 translation (NAT64)", "RFC 6052"),
    block(
        "64:ff9b:1::/48",
        "local-use IPv4/IPv6 translation",
        "RFC 8215",
    ),
    block("100::/64", "discard-only", "RFC 6666"),
    block("2001::/23", "IETF protocol assignments", "RFC 2928"),
    block("2001::/32", "Teredo (embeds IPv4)", "RFC 4380"),
    block("2001:db8::/32", "documentation", "RFC 3849"),
    block("2002::/16", "6to4 (embeds IPv4)", "RFC 3056"),
    block("3fff::/20", "documentation", "RFC 9637"),
    block("5f00::/16", "segment routing (SRv6) SIDs", "RFC 9602"),
    block("fc00::/7", "unique local", "RFC 4193"),
    block("fe80::/10", "link-local", "RFC 4291"),
    block("fec0::/10", "site-local (deprecated)", "RFC 3879"),
    block("ff00::/8", "multicast", "RFC 4291"),
];

/// What the always-blocked table says of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockCheck<'a> {
    /// In this block, not exempted.
    Blocked(&'static BlockedBlock),
    /// In a block, but the operator exempted it with this range.
    Exempted(&'a IpNet),
    /// In no block.
    Clear,
}

/// Why an operator exemption was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExemptionError {
    /// The exemption overlaps the boxes' own address pools.
    #[error(
        "exemption {exemption} overlaps the box address pool {pool}; boxes must never reach each other"
    )]
    OverlapsBoxPool {
        /// The exemption as configured.
        exemption: Cidr,
        /// The pool it overlaps.
        pool: Cidr,
    },
}

/// The always-blocked table minus the operator's exemptions.
#[derive(Debug, Clone)]
pub struct AlwaysBlocked {
    /// `ALWAYS_BLOCKED` parsed, in the table's order.
    nets: Vec<IpNet>,
    blocks: CidrSet,
    exempt: CidrSet,
}

impl Default for AlwaysBlocked {
    fn default() -> Self {
        let nets: Vec<IpNet> = ALWAYS_BLOCKED
            .iter()
            .filter_map(|block| block.cidr.parse().ok())
            .collect();
        Self {
            blocks: CidrSet::new(nets.iter().copied()),
            nets,
            exempt: CidrSet::default(),
        }
    }
}

impl AlwaysBlocked {
    /// The table minus `exemptions`, which must not overlap `box_pools`.
    pub fn with_exemptions(
        exemptions: &[Cidr],
        box_pools: &[Cidr],
    ) -> Result<Self, ExemptionError> {
        for &exemption in exemptions {
            if let Some(&pool) = box_pools
                .iter()
                .find(|pool| overlaps(pool.net(), exemption.net()))
            {
                return Err(ExemptionError::OverlapsBoxPool { exemption, pool });
            }
        }
        Ok(Self {
            exempt: CidrSet::new(exemptions.iter().map(|c| c.net())),
            ..Self::default()
        })
    }

    /// The block that denies `ip`, unless the operator exempted it.
    pub fn lookup(&self, ip: IpAddr) -> Option<&'static BlockedBlock> {
        match self.check(ip) {
            BlockCheck::Blocked(block) => Some(block),
            BlockCheck::Exempted(_) | BlockCheck::Clear => None,
        }
    }

    /// Whether `ip` is blocked, exempted from a block, or in no block;
    /// one lookup of each table.
    pub fn check(&self, ip: IpAddr) -> BlockCheck<'_> {
        let Some(net) = self.blocks.lookup(ip) else {
            return BlockCheck::Clear;
        };
        if let Some(exemption) = self.exempt.lookup(ip) {
            return BlockCheck::Exempted(exemption);
        }
        self.nets
            .iter()
            .position(|candidate| candidate == net)
            .and_then(|index| ALWAYS_BLOCKED.get(index))
            .map_or(BlockCheck::Clear, BlockCheck::Blocked)
    }

    /// The blocked addresses as merged ranges for the kernel.
    pub fn intervals(&self) -> Vec<IpRange> {
        self.blocks.intervals_without(&self.exempt)
    }

    /// Records a warning for each entry of `cidrs` that lies wholly inside
    /// blocked ranges, so it can have no effect.
    pub(crate) fn warn_about(&self, cidrs: &[Cidr], path: &JsonPath, out: &mut Diagnostics) {
        let blocked = self.intervals();
        for (index, cidr) in cidrs.iter().enumerate() {
            let net = cidr.net();
            // Ranges never mix families, and IPv4 sorts before IPv6.
            let inside = blocked
                .iter()
                .any(|range| range.first <= net.network() && net.broadcast() <= range.last);
            if inside {
                let block = self
                    .lookup(net.network())
                    .map_or("always-blocked", |b| b.name);
                out.push(
                    &path.index(index),
                    format!("{cidr} is inside an always-blocked range ({block}); this entry has no effect"),
                );
            }
        }
    }
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
