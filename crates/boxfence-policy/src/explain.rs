//! Explain: the verdict on a flow, with the layer and rule that decided it.
//! The data plane enforces exactly what this decides; the API answers
//! "would this be allowed, and why?" with it.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::app_policy::Direction;
use crate::blocked::{BlockCheck, BlockedBlock};
use crate::domain::DomainPattern;
use crate::effective::{BoxLayer, CompiledRule, EffectivePolicy};
use crate::flow::Flow;
use crate::name_check;
use crate::ports::Protocol;

/// The layers of DESIGN.md 1.5, in the order they are checked.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Layer {
    /// A packet from a box must carry the box's own address.
    AntiSpoof,
    /// Ranges no tenant can allow.
    AlwaysBlocked,
    /// The box's own policy.
    BoxPolicy,
    /// The app policies that select the machine.
    AppPolicy,
    /// The name a TLS ClientHello claims (SNI) on a flow a domain
    /// authorised; also HTTP/3 to such an address.
    Sni,
    /// The `Host` of a plain HTTP request on a flow a domain authorised.
    Host,
}

impl Layer {
    /// The name used in the API and in the conformance vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AntiSpoof => "anti_spoof",
            Self::AlwaysBlocked => "always_blocked",
            Self::BoxPolicy => "box_policy",
            Self::AppPolicy => "app_policy",
            Self::Sni => "sni",
            Self::Host => "host",
        }
    }
}

/// Why a layer allowed or denied a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason<'p> {
    /// The source is one of the machine's addresses.
    OwnAddress,
    /// The source is not one of the machine's addresses.
    SpoofedSource {
        /// The forged source.
        source: IpAddr,
    },
    /// The destination is in no always-blocked range.
    NotBlocked,
    /// The destination is in an always-blocked range that the operator
    /// exempted.
    Exempted {
        /// The operator's exemption.
        exemption: &'p IpNet,
    },
    /// The destination is in an always-blocked range.
    AlwaysBlocked {
        /// The block.
        block: &'static BlockedBlock,
    },
    /// Box policy `allow-all`.
    AllowAll,
    /// Box policy `deny-all`.
    DenyAll,
    /// The destination is in the box's `deniedCidrs`.
    DeniedCidr {
        /// The entry that matched.
        cidr: &'p IpNet,
    },
    /// The destination is in the box's `allowedCidrs`.
    AllowedCidr {
        /// The entry that matched.
        cidr: &'p IpNet,
    },
    /// The destination was resolved from a name in `allowedDomains`.
    AllowedDomain {
        /// The pattern that matched.
        pattern: &'p DomainPattern,
    },
    /// Custom box policy with allow lists that name neither the
    /// destination nor its domain.
    NotInAllowLists,
    /// Custom box policy with only `deniedCidrs`: default allow.
    NoAllowLists,
    /// The box policy governs egress only (but for deny-all).
    EgressOnly,
    /// No app policy of the machine has a rule for this direction.
    NoRules {
        /// The direction.
        direction: Direction,
    },
    /// An app policy rule allows the flow.
    RuleMatched {
        /// The policy's id.
        policy_id: Option<&'p str>,
        /// The policy's name.
        policy_name: &'p str,
        /// The index of the rule in the policy's `rules`.
        rule_index: usize,
        /// The rule's domain pattern that matched, when only a domain
        /// matched (not a port-only rule, not one of its `cidrs`).
        #[serde(skip_serializing_if = "Option::is_none")]
        domain: Option<&'p DomainPattern>,
    },
    /// App policies have rules for this direction, and none matches.
    NoRuleMatched {
        /// The direction.
        direction: Direction,
        /// How many rules were checked.
        rules: usize,
    },
    /// HTTP/3 (QUIC) to an address a domain authorised, while names are
    /// checked: its name cannot be read in the kernel's path, so clients
    /// must fall back to TCP.
    QuicRefused,
}

impl<'p> Reason<'p> {
    /// A caveat a user should read with this reason, if any.
    pub fn caveat(&self) -> Option<&'static str> {
        self.domain()
            .map(|_| "a domain authorises addresses: other sites sharing those addresses (a CDN) are reachable too")
    }

    /// The domain pattern that let the flow through this layer, if only a
    /// domain did.
    pub fn domain(&self) -> Option<&'p DomainPattern> {
        match self {
            Self::AllowedDomain { pattern } => Some(pattern),
            Self::RuleMatched { domain, .. } => *domain,
            _ => None,
        }
    }
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OwnAddress => f.write_str("source is the box's own address"),
            Self::SpoofedSource { source } => write!(f, "source {source} is not the box's address"),
            Self::NotBlocked => f.write_str("not in an always-blocked range"),
            Self::Exempted { exemption } => write!(
                f,
                "always blocked, but exempted by the operator ({exemption})"
            ),
            Self::AlwaysBlocked { block } => {
                write!(
                    f,
                    "always blocked: {} {} ({})",
                    block.cidr, block.name, block.rfc
                )
            }
            Self::AllowAll => f.write_str("box policy allow-all"),
            Self::DenyAll => f.write_str("box policy deny-all"),
            Self::DeniedCidr { cidr } => write!(f, "box policy custom: in deniedCidrs {cidr}"),
            Self::AllowedCidr { cidr } => write!(f, "box policy custom: in allowedCidrs {cidr}"),
            Self::AllowedDomain { pattern } => {
                write!(f, "box policy custom: allowedDomains {pattern}")
            }
            Self::NotInAllowLists => {
                f.write_str("box policy custom: not in allowedDomains/allowedCidrs")
            }
            Self::NoAllowLists => f.write_str("box policy custom: only deniedCidrs, default allow"),
            Self::EgressOnly => f.write_str("box policy governs egress only"),
            Self::NoRules { direction } => {
                write!(f, "no app policy has {} rules", direction.as_str())
            }
            Self::RuleMatched {
                policy_name,
                rule_index,
                ..
            } => {
                write!(f, "app policy {policy_name} rule {rule_index}")
            }
            Self::NoRuleMatched { direction, rules } => write!(
                f,
                "app policy: none of {rules} {} rules matches (default deny)",
                direction.as_str()
            ),
            Self::QuicRefused => f.write_str(
                "HTTP/3 (QUIC, udp 443) to an address a domain authorised is refused while names are checked; clients fall back to TCP",
            ),
        }
    }
}

/// What one layer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Finding<'p> {
    /// The layer.
    pub layer: Layer,
    /// Whether it let the flow through.
    pub allowed: bool,
    /// Why.
    pub reason: Reason<'p>,
}

/// The verdict on a flow: allowed only if every layer allows it; the first
/// layer that denies decides. Borrows names from the policy, so evaluation
/// allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'p> {
    findings: [Option<Finding<'p>>; 5],
    /// The patterns the name the flow claims (TLS SNI, HTTP `Host`) must
    /// match, one per layer a domain authorised it in.
    names: [Option<&'p DomainPattern>; 2],
}

impl<'p> Verdict<'p> {
    /// True when every layer allowed the flow.
    pub fn allowed(&self) -> bool {
        self.findings().all(|finding| finding.allowed)
    }

    /// What each layer checked found, in order; a denial is last.
    pub fn findings(&self) -> impl Iterator<Item = &Finding<'p>> {
        self.findings.iter().flatten()
    }

    /// The finding that decided: the denial, or the last layer that allowed.
    pub fn deciding(&self) -> Option<&Finding<'p>> {
        self.findings().last()
    }

    /// The layer that denied, if the flow is denied.
    pub fn denied_by(&self) -> Option<Layer> {
        self.deciding().filter(|f| !f.allowed).map(|f| f.layer)
    }

    /// The patterns the name the flow claims must match when it is allowed
    /// only by domains and names are checked; none otherwise.
    pub fn required_names(&self) -> impl Iterator<Item = &'p DomainPattern> + '_ {
        self.names.iter().flatten().copied()
    }
}

impl Serialize for Verdict<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a, 'p> {
            verdict: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            layer: Option<Layer>,
            reason: String,
            findings: Vec<&'a Finding<'p>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            name_check: Option<String>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            caveats: Vec<&'static str>,
        }
        let name_check = name_check::describe(self.required_names());
        Wire {
            verdict: if self.allowed() { "allow" } else { "deny" },
            layer: self.denied_by(),
            reason: self
                .deciding()
                .map(|f| f.reason.to_string())
                .unwrap_or_default(),
            findings: self.findings().collect(),
            // Checked names close the gap the caveat is about.
            caveats: match name_check {
                Some(_) => Vec::new(),
                None => self.findings().filter_map(|f| f.reason.caveat()).collect(),
            },
            name_check,
        }
        .serialize(serializer)
    }
}

/// Decides `flow` for the machine of `policy`.
pub fn evaluate<'p>(policy: &'p EffectivePolicy, flow: &Flow) -> Verdict<'p> {
    Evaluation::new(policy, flow.direction, flow.ip, flow.domain.as_deref())
        .source(flow.source)
        .transport(flow.protocol, flow.port)
        .run()
}

/// Decides whether the built-in resolver may answer `name` for the machine:
/// iff a connection to it could be allowed on some port (DESIGN.md 1.6).
pub fn evaluate_name<'p>(policy: &'p EffectivePolicy, name: &str) -> Verdict<'p> {
    Evaluation::new(policy, Direction::Egress, None, Some(name)).run()
}

/// One evaluation in progress.
struct Evaluation<'p, 'f> {
    policy: &'p EffectivePolicy,
    direction: Direction,
    ip: Option<IpAddr>,
    domain: Option<&'f str>,
    source: Option<IpAddr>,
    /// `None` asks about any protocol and port.
    transport: Option<(Protocol, Option<u16>)>,
}

impl<'p, 'f> Evaluation<'p, 'f> {
    fn new(
        policy: &'p EffectivePolicy,
        direction: Direction,
        ip: Option<IpAddr>,
        domain: Option<&'f str>,
    ) -> Self {
        Self {
            policy,
            direction,
            ip,
            domain,
            source: None,
            transport: None,
        }
    }

    fn source(self, source: Option<IpAddr>) -> Self {
        Self { source, ..self }
    }

    fn transport(self, protocol: Protocol, port: Option<u16>) -> Self {
        Self {
            transport: Some((protocol, port)),
            ..self
        }
    }

    fn run(&self) -> Verdict<'p> {
        let mut verdict = Verdict {
            findings: [None; 5],
            names: [None; 2],
        };
        // In layer order; a layer after a denial is never consulted.
        let checks: [&dyn Fn() -> Option<Finding<'p>>; 4] = [
            &|| self.anti_spoof(),
            &|| self.always_blocked(),
            &|| Some(self.box_layer()),
            &|| Some(self.app_layer()),
        ];
        for (slot, check) in verdict.findings.iter_mut().zip(checks) {
            *slot = check();
            if slot.is_some_and(|f| !f.allowed) {
                return verdict;
            }
        }
        if self.policy.name_check && self.direction == Direction::Egress {
            let names = name_check::required_names(verdict.findings().copied());
            match name_check::transport_rule(self.transport, names) {
                name_check::Transport::Unchecked => {}
                name_check::Transport::Checked => verdict.names = names,
                name_check::Transport::Refused => {
                    verdict.findings[4] = Some(deny(Layer::Sni, Reason::QuicRefused));
                }
            }
        }
        verdict
    }

    fn anti_spoof(&self) -> Option<Finding<'p>> {
        let source = self
            .source
            .filter(|_| self.direction == Direction::Egress)?;
        Some(if self.policy.addresses.contains(&source) {
            allow(Layer::AntiSpoof, Reason::OwnAddress)
        } else {
            deny(Layer::AntiSpoof, Reason::SpoofedSource { source })
        })
    }

    fn always_blocked(&self) -> Option<Finding<'p>> {
        let ip = self.ip.filter(|_| self.direction == Direction::Egress)?;
        let blocked = &self.policy.always_blocked;
        Some(match blocked.check(ip) {
            BlockCheck::Blocked(block) => {
                deny(Layer::AlwaysBlocked, Reason::AlwaysBlocked { block })
            }
            BlockCheck::Exempted(exemption) => {
                allow(Layer::AlwaysBlocked, Reason::Exempted { exemption })
            }
            BlockCheck::Clear => allow(Layer::AlwaysBlocked, Reason::NotBlocked),
        })
    }

    fn box_layer(&self) -> Finding<'p> {
        let layer = Layer::BoxPolicy;
        let custom = match &self.policy.box_layer {
            BoxLayer::DenyAll => return deny(layer, Reason::DenyAll),
            _ if self.direction == Direction::Ingress => return allow(layer, Reason::EgressOnly),
            BoxLayer::AllowAll => return allow(layer, Reason::AllowAll),
            BoxLayer::Custom(custom) => custom,
        };
        if let Some(cidr) = self.ip.and_then(|ip| custom.denied.lookup(ip)) {
            return deny(layer, Reason::DeniedCidr { cidr });
        }
        if !custom.default_deny() {
            return allow(layer, Reason::NoAllowLists);
        }
        if let Some(cidr) = self.ip.and_then(|ip| custom.allowed_cidrs.lookup(ip)) {
            return allow(layer, Reason::AllowedCidr { cidr });
        }
        match self
            .domain
            .and_then(|name| custom.allowed_domains.lookup(name))
        {
            Some(pattern) => allow(layer, Reason::AllowedDomain { pattern }),
            None => deny(layer, Reason::NotInAllowLists),
        }
    }

    fn app_layer(&self) -> Finding<'p> {
        let layer = Layer::AppPolicy;
        let mut rules = 0;
        // A rule that matches without a domain decides before one that
        // needs the name: whether the name is checked does not depend on
        // the order of rules.
        let mut by_domain = None;
        for (policy, rule) in self.policy.app_rules(self.direction) {
            rules += 1;
            let Some(domain) = self.rule_matches(rule) else {
                continue;
            };
            let matched = Reason::RuleMatched {
                policy_id: policy.id.as_deref(),
                policy_name: &policy.name,
                rule_index: rule.index,
                domain,
            };
            if domain.is_none() {
                return allow(layer, matched);
            }
            by_domain = by_domain.or(Some(matched));
        }
        let direction = self.direction;
        match by_domain {
            Some(matched) => allow(layer, matched),
            None if rules == 0 => allow(layer, Reason::NoRules { direction }),
            None => deny(layer, Reason::NoRuleMatched { direction, rules }),
        }
    }

    /// Whether `rule` matches the flow: `Some(None)` by its ports alone
    /// or one of its `cidrs`, `Some(Some(pattern))` only by a domain.
    fn rule_matches(&self, rule: &'p CompiledRule) -> Option<Option<&'p DomainPattern>> {
        let ports = match (&rule.ports, self.transport) {
            (Some(ports), Some((protocol, port))) => ports.contains(protocol, port),
            _ => true,
        };
        if !ports {
            return None;
        }
        let Some(peers) = &rule.peers else {
            return Some(None);
        };
        if self.ip.is_some_and(|ip| peers.cidrs.contains(ip)) {
            return Some(None);
        }
        let pattern = self.domain.and_then(|name| peers.domains.lookup(name))?;
        Some(Some(pattern))
    }
}

fn allow(layer: Layer, reason: Reason<'_>) -> Finding<'_> {
    Finding {
        layer,
        allowed: true,
        reason,
    }
}

fn deny(layer: Layer, reason: Reason<'_>) -> Finding<'_> {
    Finding {
        layer,
        allowed: false,
        reason,
    }
}
