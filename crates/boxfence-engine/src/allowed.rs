//! Opt-in logging of allowed new connections, per box (off by default):
//! the kernel's new-conntrack events, read only once some box asks, so the
//! default path costs nothing.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use boxfence_dataplane::conntrack_events::NewFlowEvents;
use boxfence_policy::{Direction, Flow, FlowEvent, FlowEventKind, evaluate};

use crate::EngineError;
use crate::flowlog::{AttemptKey, now_ms};
use crate::linux::LinuxEngine;

impl LinuxEngine {
    /// Turns logging of the box's allowed new connections on or off.
    pub fn set_log_allowed(self: &Arc<Self>, id: &str, on: bool) -> Result<(), EngineError> {
        if !self.machine_ids().iter().any(|known| known == id) {
            return Err(EngineError::NoSuchMachine(id.to_owned()));
        }
        {
            let mut boxes = self
                .log_allowed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if on {
                boxes.insert(id.to_owned());
            } else {
                boxes.remove(id);
            }
        }
        if on && self.new_flow_reader.set(()).is_ok() {
            self.spawn_new_flow_log()
                .map_err(|e| EngineError::Kernel(e.to_string()))?;
        }
        Ok(())
    }

    fn spawn_new_flow_log(self: &Arc<Self>) -> std::io::Result<()> {
        let engine: Weak<Self> = Arc::downgrade(self);
        let host = self.host().clone();
        std::thread::Builder::new()
            .name("boxfence-ctevents".into())
            .spawn(move || {
                if host.enter().is_err() {
                    return;
                }
                let Ok(mut events) = NewFlowEvents::open() else {
                    eprintln!(
                        "boxfence: cannot read new-connection events; allowed flows are not logged"
                    );
                    return;
                };
                loop {
                    let Ok(flows) = events.read() else { return };
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    for flow in flows {
                        engine.record_allowed(
                            flow.src,
                            flow.dst,
                            flow.protocol,
                            flow.sport,
                            flow.dport,
                        );
                    }
                }
            })?;
        Ok(())
    }

    fn record_allowed(
        &self,
        src: IpAddr,
        dst: IpAddr,
        protocol: boxfence_policy::Protocol,
        sport: Option<u16>,
        dport: Option<u16>,
    ) {
        let directory = self.directory();
        let (direction, entry, remote) = match (directory.lookup(src), directory.lookup(dst)) {
            (Some(entry), _) => (Direction::Egress, entry, dst),
            (None, Some(entry)) => (Direction::Ingress, entry, src),
            (None, None) => return,
        };
        let wanted = self
            .log_allowed
            .lock()
            .is_ok_and(|boxes| boxes.contains(&entry.id));
        if !wanted {
            return;
        }
        let domain = (direction == Direction::Egress)
            .then(|| entry.domain_of(remote))
            .flatten();
        let flow = Flow {
            direction,
            protocol,
            port: dport,
            ip: Some(remote),
            domain: domain.clone(),
            source: None,
        };
        let verdict = evaluate(&entry.policy, &flow);
        let deciding = verdict.deciding();
        let event = FlowEvent {
            time_ms: now_ms(),
            app: None,
            machine_id: entry.id.clone(),
            kind: FlowEventKind::Connection,
            verdict: "allow".into(),
            direction: Some(direction),
            protocol: Some(protocol),
            src: Some(src),
            sport,
            dst: Some(dst),
            dport,
            domain,
            layer: deciding.map(|f| f.layer),
            reason: deciding.map(|f| f.reason.to_string()).unwrap_or_default(),
            policy_id: None,
            policy_name: None,
            rule_index: None,
            suppressed: None,
        };
        let attempt = AttemptKey {
            protocol,
            src: (src, sport),
            dst: (dst, dport),
        };
        self.flow_log().record(event, Some(attempt));
    }
}
