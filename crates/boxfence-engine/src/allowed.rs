//! Opt-in logging of allowed new connections, per box (off by default):
//! the kernel's new-conntrack events, read only once some box asks, so the
//! default path costs nothing.

use std::sync::{Arc, Weak};

use boxfence_dataplane::conntrack::TrackedFlow;
use boxfence_dataplane::conntrack_events::NewFlowEvents;
use boxfence_policy::{Direction, evaluate};

use crate::EngineError;
use crate::flowlog::{AttemptKey, connection_event};
use crate::linux::LinuxEngine;

impl LinuxEngine {
    /// Turns logging of the box's allowed new connections on or off.
    pub fn set_log_allowed(self: &Arc<Self>, id: &str, on: bool) -> Result<(), EngineError> {
        if !self.machine_ids().iter().any(|known| known == id) {
            return Err(EngineError::NoSuchMachine(id.to_owned()));
        }
        self.flow_log().set_allowed(id, on);
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

    /// Logs the allowed connections of the boxes that logged them before
    /// a restart (as the flow log on disk says), from the start: the boxes
    /// are adopted later, and until then their events find no box.
    pub(crate) fn log_allowed_again(self: &Arc<Self>) -> std::io::Result<()> {
        let again = self.flow_log().allowed_at_open();
        if again.is_empty() {
            return Ok(());
        }
        self.log_allowed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(again);
        if self.new_flow_reader.set(()).is_ok() {
            self.spawn_new_flow_log()?;
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
                    for flow in &flows {
                        engine.record_allowed(flow);
                    }
                }
            })?;
        Ok(())
    }

    fn record_allowed(&self, flow: &TrackedFlow) {
        let directory = self.directory();
        let (direction, entry, remote) =
            match (directory.lookup(flow.src), directory.lookup(flow.dst)) {
                (Some(entry), _) => (Direction::Egress, entry, flow.dst),
                (None, Some(entry)) => (Direction::Ingress, entry, flow.src),
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
        let asked = flow.as_flow(direction, domain);
        let verdict = evaluate(&entry.policy, &asked);
        let event = connection_event(&entry.id, "allow", flow, asked, verdict.deciding());
        self.flow_log().record(event, Some(AttemptKey::of(flow)));
    }
}
