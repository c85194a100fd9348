//! Name checks (issue 19): a domain authorises addresses, and every site
//! sharing such an address (a CDN) would be reachable too. So a TCP flow
//! that only a domain authorised must also *claim* an allowed name in its
//! first payload: the SNI of a TLS ClientHello, or the `Host` of a plain
//! HTTP request. The claimed name is judged by the same layers and rules
//! as the address was ([`evaluate`] with the claimed name as the flow's
//! domain), so a name passes iff a connection to it on this port would.
//!
//! A flow that a CIDR authorised (or a rule without peers) is never
//! checked: that is also how a policy lets a flow to a host that sends
//! neither TLS nor HTTP through, without any new policy field.

use crate::domain::DomainPattern;
use crate::effective::EffectivePolicy;
use crate::explain::{Finding, Layer, Verdict, evaluate};
use crate::flow::Flow;
use crate::ports::Protocol;

/// The port of HTTP/3 (QUIC).
pub const QUIC_PORT: u16 = 443;

/// What the first payload of a checked flow claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim<'a> {
    /// A TLS ClientHello with this SNI (the outer one, under ECH).
    Sni(&'a str),
    /// A plain HTTP request with this `Host` (its port removed).
    Host(&'a str),
    /// A TLS ClientHello without SNI.
    NoSni,
    /// Neither a TLS ClientHello nor an HTTP request.
    Unrecognised,
}

impl Claim<'_> {
    /// The layer a denial of this claim is reported under.
    pub fn layer(&self) -> Layer {
        match self {
            Self::Sni(_) | Self::NoSni => Layer::Sni,
            Self::Host(_) | Self::Unrecognised => Layer::Host,
        }
    }

    /// The claimed name, if the payload named one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Sni(name) | Self::Host(name) => Some(name),
            Self::NoSni | Self::Unrecognised => None,
        }
    }
}

/// The judgement of a claim.
#[derive(Debug, Clone, Copy)]
pub struct NameCheck<'p> {
    /// The layer the check reports under.
    pub layer: Layer,
    /// The flow's verdict with the claimed name as its domain (without a
    /// name when none was claimed).
    pub verdict: Verdict<'p>,
}

impl NameCheck<'_> {
    /// Whether the flow may go on.
    pub fn allowed(&self) -> bool {
        self.verdict.allowed()
    }
}

/// Judges `claim` for `flow` (its address, port and protocol; its
/// `domain` is ignored) under `policy`.
pub fn check_name<'p>(policy: &'p EffectivePolicy, flow: &Flow, claim: Claim<'_>) -> NameCheck<'p> {
    let asked = Flow {
        domain: claim.name().map(str::to_owned),
        ..flow.clone()
    };
    NameCheck {
        layer: claim.layer(),
        verdict: evaluate(policy, &asked),
    }
}

/// Why a claim was refused, in words: `TLS SNI evil.example: box policy
/// custom: not in allowedDomains/allowedCidrs`.
pub fn refusal(claim: Claim<'_>, check: &NameCheck<'_>) -> String {
    let why = check
        .verdict
        .deciding()
        .filter(|f| !f.allowed)
        .map(|f| f.reason.to_string())
        .unwrap_or_default();
    match claim {
        Claim::Sni(name) => format!("TLS SNI {name} is not allowed here: {why}"),
        Claim::Host(name) => format!("HTTP Host {name} is not allowed here: {why}"),
        Claim::NoSni => format!(
            "TLS ClientHello without SNI to an address a domain authorised ({why} without a name)"
        ),
        Claim::Unrecognised => format!(
            "first payload is neither a TLS ClientHello nor an HTTP request, to an address a domain authorised ({why} without a name)"
        ),
    }
}

/// The domain patterns of the findings that let a flow through only by a
/// domain (the box layer's `allowedDomains`, an app rule's `domains`).
pub(crate) fn required_names<'p>(
    findings: impl Iterator<Item = Finding<'p>>,
) -> [Option<&'p DomainPattern>; 2] {
    let mut names = [None; 2];
    let by_domain = findings.filter_map(|f| {
        let slot = match f.layer {
            Layer::BoxPolicy => 0,
            Layer::AppPolicy => 1,
            _ => return None,
        };
        Some((slot, f.reason.domain()?))
    });
    for (slot, pattern) in by_domain {
        names[slot] = Some(pattern);
    }
    names
}

/// What a domain-authorised flow's transport means for the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Not authorised by a domain, or not TCP: not checked.
    Unchecked,
    /// TCP (or any, when the question names no transport): its first
    /// payload is checked.
    Checked,
    /// HTTP/3: refused.
    Refused,
}

/// The rule for a flow authorised by `names` over `transport`.
pub(crate) fn transport_rule(
    transport: Option<(Protocol, Option<u16>)>,
    names: [Option<&DomainPattern>; 2],
) -> Transport {
    if names.iter().all(Option::is_none) {
        return Transport::Unchecked;
    }
    match transport {
        None | Some((Protocol::Tcp, _)) => Transport::Checked,
        Some((Protocol::Udp, Some(QUIC_PORT))) => Transport::Refused,
        Some(_) => Transport::Unchecked,
    }
}

/// The explain line of a checked flow: `name check: TLS SNI or HTTP Host
/// must match api.github.com`.
pub(crate) fn describe<'p>(names: impl Iterator<Item = &'p DomainPattern>) -> Option<String> {
    let names: Vec<String> = names.map(ToString::to_string).collect();
    (!names.is_empty()).then(|| {
        format!(
            "name check: TLS SNI or HTTP Host must match {}",
            names.join(" and ")
        )
    })
}
