//! Turns what the kernel and the resolver deny into flow log events, with
//! the reason the policy core gives for the policy in force.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use boxfence_dataplane::nflog::{LoggedPacket, NflogReader};
use boxfence_dataplane::ruleset::LOG_GROUP;
use boxfence_policy::{Direction, Flow, FlowEvent, FlowEventKind, Layer, Reason, evaluate};
use boxfence_resolver::Refusal;

use crate::flowlog::{AttemptKey, now_ms};
use crate::linux::LinuxEngine;

impl LinuxEngine {
    /// Starts reading the kernel's packet log on its own thread inside the
    /// host namespace; it stops once the engine is gone.
    pub(crate) fn spawn_packet_log(self: &Arc<Self>) -> std::io::Result<()> {
        let engine: Weak<Self> = Arc::downgrade(self);
        let host = self.host().clone();
        std::thread::Builder::new()
            .name("boxfence-nflog".into())
            .spawn(move || {
                if host.enter().is_err() {
                    return;
                }
                let Ok(mut reader) = NflogReader::open(LOG_GROUP) else {
                    eprintln!("boxfence: cannot read the packet log; denials are not reported");
                    return;
                };
                loop {
                    let Ok(packets) = reader.read() else { return };
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    for packet in &packets {
                        if let Some((event, attempt)) = engine.packet_event(packet) {
                            engine.flow_log().record(event, Some(attempt));
                        }
                    }
                }
            })?;
        Ok(())
    }

    /// The event for a denied packet: the box it concerns, its flow, and
    /// the reason the box's current policy gives.
    fn packet_event(&self, packet: &LoggedPacket) -> Option<(FlowEvent, AttemptKey)> {
        let flow = packet.flow?;
        let layer_name = packet.prefix.trim().strip_prefix("boxfence ")?.to_owned();
        let prefix = self.ifname_prefix();
        let is_box = |ifname: &Option<String>| {
            ifname
                .as_deref()
                .is_some_and(|name| name.starts_with(prefix))
        };
        let (direction, ifname, remote) = if is_box(&packet.indev) {
            (Direction::Egress, packet.indev.clone()?, flow.dst)
        } else if is_box(&packet.outdev) {
            (Direction::Ingress, packet.outdev.clone()?, flow.src)
        } else {
            return None;
        };
        let link = self.link_by_ifname(&ifname)?;
        let entry = self.directory().lookup(IpAddr::V4(link.ipv4));
        let domain = entry
            .as_ref()
            .filter(|_| direction == Direction::Egress)
            .and_then(|e| e.domain_of(remote));
        let mut event = FlowEvent {
            time_ms: now_ms(),
            app: None,
            machine_id: link.id.clone(),
            kind: FlowEventKind::Connection,
            verdict: "deny".into(),
            direction: Some(direction),
            protocol: Some(flow.protocol),
            src: Some(flow.src),
            sport: flow.sport,
            dst: Some(flow.dst),
            dport: flow.dport,
            domain: domain.clone(),
            layer: None,
            reason: String::new(),
            policy_id: None,
            policy_name: None,
            rule_index: None,
            suppressed: None,
        };
        match layer_name.as_str() {
            "anti_spoof" => {
                event.layer = Some(Layer::AntiSpoof);
                event.reason = format!("source {} is not the box's address", flow.src);
            }
            "host" => {
                event.reason = "boxes may reach the host only at the built-in resolver".into();
            }
            _ => {
                let verdict = entry.as_ref().map(|entry| {
                    let asked = Flow {
                        direction,
                        protocol: flow.protocol,
                        port: flow
                            .dport
                            .filter(|_| flow.protocol != boxfence_policy::Protocol::Icmp),
                        ip: Some(remote),
                        domain,
                        source: None,
                    };
                    let verdict = evaluate(&entry.policy, &asked);
                    verdict
                        .deciding()
                        .filter(|f| !f.allowed)
                        .map(|f| (f.layer, f.reason, f.reason.to_string()))
                });
                match verdict.flatten() {
                    Some((layer, reason, text)) => {
                        event.layer = Some(layer);
                        event.reason = text;
                        if let Reason::RuleMatched {
                            policy_id,
                            policy_name,
                            rule_index,
                        } = reason
                        {
                            event.policy_id = policy_id.map(str::to_owned);
                            event.policy_name = Some(policy_name.to_owned());
                            event.rule_index = Some(rule_index);
                        }
                    }
                    None => {
                        event.reason =
                            format!("denied by {layer_name} (under the policy in force then)");
                    }
                }
            }
        }
        let attempt = AttemptKey {
            protocol: flow.protocol,
            src: (flow.src, flow.sport),
            dst: (flow.dst, flow.dport),
        };
        Some((event, attempt))
    }

    /// Records a query the resolver refused.
    pub(crate) fn record_refusal(&self, refusal: &Refusal) {
        let Some(machine_id) = refusal.machine_id.clone() else {
            return;
        };
        let layer = if refusal.reason.starts_with("app policy") {
            Layer::AppPolicy
        } else {
            Layer::BoxPolicy
        };
        let event = FlowEvent {
            time_ms: now_ms(),
            app: None,
            machine_id,
            kind: FlowEventKind::DnsQuery,
            verdict: "deny".into(),
            direction: Some(Direction::Egress),
            protocol: None,
            src: Some(refusal.source),
            sport: None,
            dst: None,
            dport: None,
            domain: Some(refusal.name.clone()),
            layer: Some(layer),
            reason: refusal.reason.clone(),
            policy_id: None,
            policy_name: None,
            rule_index: None,
            suppressed: None,
        };
        self.flow_log().record(event, None);
    }
}
