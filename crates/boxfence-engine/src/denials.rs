//! Turns what the kernel and the resolver deny into flow log events, with
//! the reason the policy core gives for the policy in force.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use boxfence_dataplane::nflog::{LoggedPacket, NflogReader};
use boxfence_dataplane::ruleset::BoxLink;
use boxfence_policy::{Direction, FlowEvent, FlowEventKind, Layer, evaluate};
use boxfence_resolver::Refusal;

use crate::flowlog::{AttemptKey, connection_event, now_ms};
use crate::linux::LinuxEngine;

impl LinuxEngine {
    /// Starts reading the kernel's packet log on its own thread inside the
    /// host namespace; it stops once the engine is gone.
    pub(crate) fn spawn_packet_log(self: &Arc<Self>) -> std::io::Result<()> {
        let engine: Weak<Self> = Arc::downgrade(self);
        let host = self.host().clone();
        let group = self.log_group();
        std::thread::Builder::new()
            .name("boxfence-nflog".into())
            .spawn(move || {
                if host.enter().is_err() {
                    return;
                }
                let Ok(mut reader) = NflogReader::open(group) else {
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
        // From no address at all: the kernel's own link-up traffic in the
        // box (IPv6 duplicate address detection, MLD reports), which no
        // process of the box sent; refused as spoofed, not worth an event.
        if flow.src.is_unspecified() {
            return None;
        }
        let layer_name = packet.prefix.trim().strip_prefix("boxfence ")?.to_owned();
        let prefix = self.ifname_prefix();
        let is_box = |ifname: &Option<String>| {
            ifname
                .as_deref()
                .is_some_and(|name| name.starts_with(prefix))
        };
        // Traffic to a box is judged before routing, so the box it was
        // for is known by its address, not by an output interface.
        let (direction, link, remote) = if is_box(&packet.indev) {
            let ifname = packet.indev.as_deref()?;
            (
                Direction::Egress,
                self.link_where(|link| link.ifname == ifname)?,
                flow.dst,
            )
        } else {
            let to_box = |link: &BoxLink| [IpAddr::V4(link.ipv4), IpAddr::V6(link.ipv6)];
            (
                Direction::Ingress,
                self.link_where(|link| to_box(link).contains(&flow.dst))?,
                flow.src,
            )
        };
        let entry = self.directory().lookup(IpAddr::V4(link.ipv4));
        let domain = entry
            .as_ref()
            .filter(|_| direction == Direction::Egress)
            .and_then(|e| e.domain_of(remote));
        let asked = flow.as_flow(direction, domain);
        let event = match layer_name.as_str() {
            "anti_spoof" => FlowEvent {
                layer: Some(Layer::AntiSpoof),
                reason: format!("source {} is not the box's address", flow.src),
                ..connection_event(&link.id, "deny", &flow, asked, None)
            },
            "host" => FlowEvent {
                reason: "boxes may reach the host only at the built-in resolver".into(),
                ..connection_event(&link.id, "deny", &flow, asked, None)
            },
            _ => {
                let verdict = entry.as_ref().map(|entry| evaluate(&entry.policy, &asked));
                let denial = verdict
                    .as_ref()
                    .and_then(|v| v.deciding().filter(|f| !f.allowed));
                let mut event = connection_event(&link.id, "deny", &flow, asked, denial);
                if denial.is_none() {
                    event.reason =
                        format!("denied by {layer_name} (under the policy in force then)");
                }
                event
            }
        };
        Some((event, AttemptKey::of(&flow)))
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
            direction: Some(Direction::Egress),
            src: Some(refusal.source),
            domain: Some(refusal.name.clone()),
            layer: Some(layer),
            ..FlowEvent::new(
                now_ms(),
                machine_id,
                FlowEventKind::DnsQuery,
                "deny",
                refusal.reason.clone(),
            )
        };
        self.flow_log().record(event, None);
    }
}
