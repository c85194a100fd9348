//! Names of the kernel objects of one box or one shared app policy.

use boxfence_policy::{CompiledAppPolicy, Direction};

/// Names of the objects of one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoxNames {
    prefix: String,
}

impl BoxNames {
    pub(crate) fn new(id: &str) -> Self {
        Self {
            prefix: format!("b_{id}"),
        }
    }

    /// Chain of the box layer (and always-blocked) for one direction.
    pub(crate) fn chain(&self, direction: Direction) -> String {
        format!("{}_{}", self.prefix, short(direction))
    }

    /// Chain of the app layer for one direction.
    pub(crate) fn app_chain(&self, direction: Direction) -> String {
        format!("{}_app_{}", self.prefix, short(direction))
    }

    /// The chain on the box's host-side device.
    pub(crate) fn link_chain(&self) -> String {
        format!("{}_link", self.prefix)
    }

    /// A set of the box layer, e.g. `deny4`, `allow6`, `learn4`.
    pub(crate) fn set(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix)
    }
}

/// Names of the objects an app policy's rules compile to, shared by every
/// box the policy selects; named by the rules' fingerprint, so a changed
/// policy gets new objects and the old ones go when no box uses them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PolicyNames {
    prefix: String,
}

impl PolicyNames {
    pub(crate) fn new(policy: &CompiledAppPolicy) -> Self {
        Self {
            prefix: format!("a_{:016x}", policy.fingerprint),
        }
    }

    pub(crate) fn chain(&self, direction: Direction) -> String {
        format!("{}_{}", self.prefix, short(direction))
    }

    /// A set of rule `index` of one direction, e.g. `ports`, `net4`.
    pub(crate) fn rule_set(&self, direction: Direction, index: usize, what: &str) -> String {
        format!("{}_{}{index}_{what}", self.prefix, short(direction))
    }
}

fn short(direction: Direction) -> &'static str {
    match direction {
        Direction::Egress => "out",
        Direction::Ingress => "in",
    }
}

/// The name of one of a box's counters ([`NEW_OUT`](super::NEW_OUT) …).
pub fn box_counter(id: &str, counter: &str) -> String {
    BoxNames::new(id).set(counter)
}

/// The set the resolver adds a box's addresses to when its box policy's
/// `allowedDomains` matched.
pub fn box_learned_set(id: &str, ipv6: bool) -> String {
    BoxNames::new(id).set(if ipv6 { "learn6" } else { "learn4" })
}

/// The set (keyed by box interface · address) the resolver adds addresses
/// to when an app policy egress rule's `domains` matched.
pub fn rule_learned_set(fingerprint: u64, rule_index: usize, ipv6: bool) -> String {
    let names = PolicyNames {
        prefix: format!("a_{fingerprint:016x}"),
    };
    names.rule_set(
        Direction::Egress,
        rule_index,
        if ipv6 { "dom6" } else { "dom4" },
    )
}
