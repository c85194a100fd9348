//! Combination (DESIGN.md 1.3-1.5): one machine's box policy and the app
//! policies that select it, compiled into the layers that decide its flows.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use crate::app_policy::{AppPolicy, Direction, Rule, Selector};
use crate::blocked::AlwaysBlocked;
use crate::box_policy::BoxPolicy;
use crate::matchers::{CidrSet, DomainSet, PortSet};

/// What the policy core needs to know of a machine.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// The machine's id, as selectors name it.
    pub id: String,
    /// Its metadata, as selectors match it.
    pub metadata: BTreeMap<String, String>,
    /// Its box policy.
    pub network_policy: BoxPolicy,
    /// Its own addresses, the only sources its packets may carry.
    pub addresses: Vec<IpAddr>,
}

/// An app policy compiled once and shared by every machine it selects.
#[derive(Debug, Clone)]
pub struct CompiledAppPolicy {
    /// The policy's id, once stored.
    pub id: Option<String>,
    /// The policy's name.
    pub name: String,
    /// Which machines it applies to.
    pub selector: Selector,
    /// A digest of the rules: equal rules, equal fingerprint. The data
    /// plane names the kernel objects it shares by it.
    pub fingerprint: u64,
    egress: Vec<CompiledRule>,
    ingress: Vec<CompiledRule>,
}

/// One compiled allow rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Index of the rule in its policy's `rules`.
    pub index: usize,
    /// Allowed protocol · ports; `None` allows every protocol and port.
    pub ports: Option<PortSet>,
    /// Allowed peers; `None` allows every peer.
    pub peers: Option<Peers>,
}

/// The peers a rule narrows to: a flow matches if either matches.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// Remote ranges (destinations for egress, sources for ingress).
    pub cidrs: CidrSet,
    /// Names whose resolved addresses match (egress only).
    pub domains: DomainSet,
}

impl CompiledAppPolicy {
    /// Compiles `policy`.
    pub fn compile(policy: &AppPolicy) -> Self {
        let mut compiled = Self {
            id: policy.id.clone(),
            name: policy.name.clone(),
            selector: policy.selector.clone(),
            fingerprint: fingerprint(&policy.rules),
            egress: Vec::new(),
            ingress: Vec::new(),
        };
        for (index, rule) in policy.rules.iter().enumerate() {
            let compiled_rule = CompiledRule {
                index,
                ports: rule.ports.as_deref().map(PortSet::new),
                peers: rule.has_peers().then(|| Peers {
                    cidrs: CidrSet::new(rule.cidrs.iter().map(|cidr| cidr.net())),
                    domains: DomainSet::new(rule.domains.iter().cloned()),
                }),
            };
            match rule.direction {
                Direction::Egress => compiled.egress.push(compiled_rule),
                Direction::Ingress => compiled.ingress.push(compiled_rule),
            }
        }
        compiled
    }

    /// The rules of one direction.
    pub fn rules(&self, direction: Direction) -> &[CompiledRule] {
        match direction {
            Direction::Egress => &self.egress,
            Direction::Ingress => &self.ingress,
        }
    }
}

/// A digest of `rules` that is the same in every process of one build
/// (std's SipHash with fixed keys over the canonical JSON).
fn fingerprint(rules: &[Rule]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    serde_json::to_string(rules)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// The box layer, compiled.
#[derive(Debug, Clone)]
pub enum BoxLayer {
    /// No restriction.
    AllowAll,
    /// Offline: every egress flow, DNS query and unsolicited ingress flow
    /// is denied.
    DenyAll,
    /// Lists; default deny when an allow list is non-empty.
    Custom(Box<CustomLayer>),
}

/// A compiled `custom` box policy.
#[derive(Debug, Clone)]
pub struct CustomLayer {
    /// `deniedCidrs`: beat every allow.
    pub denied: CidrSet,
    /// `allowedCidrs`.
    pub allowed_cidrs: CidrSet,
    /// `allowedDomains`.
    pub allowed_domains: DomainSet,
}

impl CustomLayer {
    /// True when the layer denies what its allow lists do not name.
    pub fn default_deny(&self) -> bool {
        !self.allowed_cidrs.is_empty() || !self.allowed_domains.is_empty()
    }
}

impl BoxLayer {
    /// Compiles a box policy.
    pub fn compile(policy: &BoxPolicy) -> Self {
        match policy {
            BoxPolicy::AllowAll => Self::AllowAll,
            BoxPolicy::DenyAll => Self::DenyAll,
            BoxPolicy::Custom(custom) => Self::Custom(Box::new(CustomLayer {
                denied: CidrSet::new(custom.denied_cidrs.iter().map(|c| c.net())),
                allowed_cidrs: CidrSet::new(custom.allowed_cidrs.iter().map(|c| c.net())),
                allowed_domains: DomainSet::new(custom.allowed_domains.iter().cloned()),
            })),
        }
    }
}

/// Everything that decides one machine's flows, layer by layer, in the
/// order of DESIGN.md 1.5: anti-spoofing (its `addresses`), always-blocked
/// ranges, the box layer, and the app policies that select it.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    /// The machine's id.
    pub machine_id: String,
    /// The machine's own addresses.
    pub addresses: Vec<IpAddr>,
    /// The always-blocked ranges in force (operator exemptions applied).
    pub always_blocked: Arc<AlwaysBlocked>,
    /// The box layer.
    pub box_layer: BoxLayer,
    /// The app policies that select the machine, in name order.
    pub app_policies: Vec<Arc<CompiledAppPolicy>>,
    /// Whether a TCP flow that only a domain authorised must claim an
    /// allowed name (TLS SNI, HTTP `Host`) and HTTP/3 to it is refused
    /// (the operator's `[network] name_check`; on unless turned off).
    pub name_check: bool,
}

impl EffectivePolicy {
    /// Combines a machine with the compiled policies of its app; only those
    /// whose selector matches the machine are kept.
    pub fn combine(
        machine: &Machine,
        app_policies: &[Arc<CompiledAppPolicy>],
        always_blocked: Arc<AlwaysBlocked>,
    ) -> Self {
        let mut selected: Vec<Arc<CompiledAppPolicy>> = app_policies
            .iter()
            .filter(|policy| policy.selector.matches(&machine.id, &machine.metadata))
            .cloned()
            .collect();
        selected.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            machine_id: machine.id.clone(),
            addresses: machine.addresses.clone(),
            always_blocked,
            box_layer: BoxLayer::compile(&machine.network_policy),
            app_policies: selected,
            name_check: true,
        }
    }

    /// This policy with name checks on or off.
    pub fn with_name_check(self, name_check: bool) -> Self {
        Self { name_check, ..self }
    }

    /// [`combine`](Self::combine) for policies not compiled yet.
    pub fn from_policies(
        machine: &Machine,
        app_policies: &[AppPolicy],
        always_blocked: Arc<AlwaysBlocked>,
    ) -> Self {
        let compiled: Vec<_> = app_policies
            .iter()
            .map(|policy| Arc::new(CompiledAppPolicy::compile(policy)))
            .collect();
        Self::combine(machine, &compiled, always_blocked)
    }

    /// The app rules of one direction with their policies. When there are
    /// none, the app layer allows everything in that direction.
    pub fn app_rules(
        &self,
        direction: Direction,
    ) -> impl Iterator<Item = (&CompiledAppPolicy, &CompiledRule)> {
        self.app_policies.iter().flat_map(move |policy| {
            policy
                .rules(direction)
                .iter()
                .map(move |rule| (policy.as_ref(), rule))
        })
    }
}
