//! Flow events: what the flow log reports about a denied (or, when asked,
//! allowed) connection or DNS query, with the reason in the policy's terms.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::app_policy::Direction;
use crate::explain::Layer;
use crate::ports::Protocol;

/// What an event is about.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowEventKind {
    /// A connection attempt (its first packet).
    Connection,
    /// A DNS query the resolver refused.
    DnsQuery,
    /// Events of this box dropped by the rate limit since the last one.
    Suppressed,
}

/// One flow log event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowEvent {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The machine's app, when the reporter knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The machine.
    pub machine_id: String,
    /// What the event is about.
    pub kind: FlowEventKind,
    /// `allow` or `deny`.
    pub verdict: String,
    /// Egress or ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The transport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub src: Option<IpAddr>,
    /// Source port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// Destination address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub dst: Option<IpAddr>,
    /// Destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// The name asked, or the name the destination was learned from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The name the flow claimed (TLS SNI, HTTP Host), when a name check
    /// refused it; `domain` is then the name its address was learned from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<String>,
    /// The layer that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// Why, in words.
    pub reason: String,
    /// The app policy that decided, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// The rule's index in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<usize>,
    /// For [`FlowEventKind::Suppressed`]: how many events were dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<u64>,
}

impl FlowEvent {
    /// An event of `kind` about `machine_id` at `time_ms`, with its verdict
    /// and reason; the flow's details are left unset for the caller to fill.
    pub fn new(
        time_ms: u64,
        machine_id: String,
        kind: FlowEventKind,
        verdict: &str,
        reason: String,
    ) -> Self {
        Self {
            time_ms,
            app: None,
            machine_id,
            kind,
            verdict: verdict.to_owned(),
            direction: None,
            protocol: None,
            src: None,
            sport: None,
            dst: None,
            dport: None,
            domain: None,
            claimed: None,
            layer: None,
            reason,
            policy_id: None,
            policy_name: None,
            rule_index: None,
            suppressed: None,
        }
    }

    /// One line for people: `denied: egress tcp 104.16.1.5:443 — box
    /// policy custom: not in allowedDomains/allowedCidrs`.
    pub fn describe(&self) -> String {
        let verdict = if self.verdict == "deny" {
            "denied"
        } else {
            "allowed"
        };
        match self.kind {
            FlowEventKind::Suppressed => {
                format!(
                    "{} more events suppressed (rate limit)",
                    self.suppressed.unwrap_or(0)
                )
            }
            FlowEventKind::DnsQuery => format!(
                "{verdict}: dns {} — {}",
                self.domain.as_deref().unwrap_or("?"),
                self.reason
            ),
            FlowEventKind::Connection => {
                let direction = self.direction.map_or("?", Direction::as_str);
                let protocol = self
                    .protocol
                    .map_or_else(|| "?".to_owned(), |p| p.to_string());
                let remote = if self.direction == Some(Direction::Ingress) {
                    (self.src, self.sport)
                } else {
                    (self.dst, self.dport)
                };
                let address = match remote {
                    (Some(IpAddr::V6(ip)), Some(port)) => format!("[{ip}]:{port}"),
                    (Some(ip), Some(port)) => format!("{ip}:{port}"),
                    (Some(ip), None) => ip.to_string(),
                    (None, _) => "?".into(),
                };
                let name = self
                    .domain
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                format!(
                    "{verdict}: {direction} {protocol} {address}{name} — {}",
                    self.reason
                )
            }
        }
    }
}
