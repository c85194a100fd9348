//! The changes the API asks for: create, delete, apply (with the cut of
//! flows the new policies deny) and reconcile, each one transaction of the
//! table under the engine's lock.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use boxfence_dataplane::ruleset::{BoxLink, Ruleset};
use boxfence_policy::EffectivePolicy;

use super::{LinuxEngine, kernel};
use crate::{EngineError, MachineSpec};

impl LinuxEngine {
    pub(crate) fn link(&self, machine: &MachineSpec) -> Result<BoxLink, EngineError> {
        let offset = u32::from(machine.addresses.ipv4) - u32::from(self.config.pool.ipv4.network());
        Ok(BoxLink {
            id: machine.id.clone(),
            ifname: self.link_config.ifname(&machine.id).map_err(kernel)?,
            ipv4: machine.addresses.ipv4,
            ipv6: machine.addresses.ipv6,
            zone: u16::try_from(offset)
                .map_err(|_| EngineError::Kernel("IPv4 pool larger than a /16".into()))?,
        })
    }

    fn write_resolv_conf(&self, id: &str) -> Result<(), EngineError> {
        let gateways = self.config.pool.gateways();
        let dir = self.config.state_dir.join(id);
        std::fs::create_dir_all(&dir).map_err(kernel)?;
        let text = format!(
            "nameserver {}\nnameserver {}\n",
            gateways.ipv4, gateways.ipv6
        );
        std::fs::write(dir.join("resolv.conf"), text).map_err(kernel)
    }

    pub(crate) fn create_blocking(
        &self,
        machine: &MachineSpec,
        policy: &EffectivePolicy,
    ) -> Result<(), EngineError> {
        let link = self.link(machine)?;
        if self.lock().links.contains_key(&machine.id) {
            return Err(EngineError::Kernel(format!(
                "machine {} exists",
                machine.id
            )));
        }
        // Made before the lock (a process of its own, which no change
        // waits for). The server never creates one id twice at once.
        let netns = self.box_netns(&link)?;
        let created = self.create_locked(machine, policy, &link, netns);
        if created.is_err() {
            let _ = self.stop_sandbox(&link.id);
        }
        created
    }

    fn create_locked(
        &self,
        machine: &MachineSpec,
        policy: &EffectivePolicy,
        link: &BoxLink,
        netns: Option<std::fs::File>,
    ) -> Result<(), EngineError> {
        let link = link.clone();
        let mut state = self.lock_to_change();
        self.write_resolv_conf(&machine.id)?;
        let host = &self.config.host;
        let batch = state.ruleset.upsert_boxes(&[(link.clone(), policy)]);
        let (linked, ruled) = if self.paths.links_before_table() {
            // The kernel hooks a chain (older kernels) or a flowtable only
            // on a device that exists. Until the chain is there, what the
            // box sends is refused as unproved (`from_box`), and nothing
            // runs in it yet anyway.
            match self.link_config.create_in(host, &link, netns) {
                Ok(()) => (Ok(()), state.commit(&batch)),
                Err(error) => (Err(error), Err("not tried: the link failed".to_owned())),
            }
        } else {
            // The rules name the interface, they do not need it to exist,
            // and nothing runs in the box before this returns: the link
            // and the rules are made side by side.
            std::thread::scope(|scope| {
                let linking = scope.spawn(|| self.link_config.create_in(host, &link, netns));
                let ruled = state.commit(&batch);
                let linked = linking
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (linked, ruled)
            })
        };
        let failure = match (&linked, &ruled) {
            (Err(error), _) => Some(kernel(error)),
            (_, Err(error)) => Some(kernel(error)),
            (Ok(()), Ok(())) => None,
        };
        if let Some(error) = failure {
            // Undo whichever half succeeded (the model took the box in
            // either way).
            if let (Some(undo), true) = (state.ruleset.remove_box(&link.id), ruled.is_ok()) {
                let _ = state.commit(&undo);
            }
            if linked.is_ok() {
                let _ = self.link_config.delete(host, &link);
            }
            return Err(error);
        }
        self.publish(&[(link.clone(), policy)])?;
        // A new box has fresh counters and no flow yet (its address's old
        // flows went when its previous owner was deleted).
        state.flows.insert(machine.id.clone(), (0, Vec::new()));
        state.links.insert(machine.id.clone(), link);
        Ok(())
    }

    pub(super) fn delete_blocking(&self, id: &str) -> Result<(), EngineError> {
        let mut state = self.lock_to_change();
        let link = state
            .links
            .remove(id)
            .ok_or_else(|| EngineError::NoSuchMachine(id.to_owned()))?;
        state.flows.remove(id);
        let host = &self.config.host;
        let mut errors = Vec::new();
        if let Some(batch) = state.ruleset.remove_box(id)
            && let Err(error) = state.commit(&batch)
        {
            // The kernel kept the box's objects, which would also block
            // later removals of the shared chains they jump to: rebuild
            // the table from the model, which no longer has the box.
            if let Err(restore) = self.restore(&mut state) {
                errors.push(format!("{error}; rebuilding the table failed: {restore}"));
            }
        }
        // The link goes first, so no new flow starts; then its flows, so
        // its addresses can be reused.
        if let Err(error) = self.link_config.delete(host, &link) {
            errors.push(error.to_string());
        }
        if let Err(error) = self.conntrack().flush_box(&link) {
            errors.push(error.to_string());
        }
        let _ = std::fs::remove_dir_all(self.config.state_dir.join(id));
        self.directory.remove(id);
        self.flow_log.forget(id);
        if let Ok(mut boxes) = self.log_allowed.lock() {
            boxes.remove(id);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Kernel(errors.join("; ")))
        }
    }

    pub(super) fn apply_blocking(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError> {
        let started = std::time::Instant::now();
        let result = self.apply_locked(policies);
        self.metrics.apply_latency.observe(started.elapsed());
        result
    }

    fn apply_locked(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError> {
        let mut state = self.lock_to_change();
        let mut boxes = Vec::new();
        for policy in policies {
            let link = state
                .links
                .get(&policy.machine_id)
                .ok_or_else(|| EngineError::NoSuchMachine(policy.machine_id.clone()))?;
            boxes.push((link.clone(), policy));
        }
        let batch = state.ruleset.upsert_boxes(&boxes);
        if let Err(error) = state.commit(&batch) {
            let ids: Vec<&str> = boxes.iter().map(|(link, _)| link.id.as_str()).collect();
            let fallback = state.ruleset.fail_closed(&ids);
            let closed = state.commit(&fallback).map_or_else(
                |e| format!("; failing closed also failed: {e}"),
                |()| String::new(),
            );
            return Err(EngineError::Kernel(format!("{error}{closed}")));
        }
        self.publish(&boxes)?;
        self.cut_denied(&mut state, &boxes)
    }

    pub(super) fn reconcile_blocking(
        &self,
        machines: &[(MachineSpec, EffectivePolicy)],
    ) -> Result<(), EngineError> {
        let mut state = self.lock_to_change();
        let host = &self.config.host;
        let mut links = BTreeMap::new();
        let mut boxes = Vec::new();
        for (machine, policy) in machines {
            let link = self.link(machine)?;
            links.insert(link.id.clone(), link.clone());
            boxes.push((link, policy));
        }
        let mut errors = Vec::new();
        for stale in self.stale_namespaces(&links) {
            let link = BoxLink {
                ifname: self.link_config.ifname(&stale).unwrap_or_default(),
                id: stale,
                ipv4: Ipv4Addr::UNSPECIFIED,
                ipv6: std::net::Ipv6Addr::UNSPECIFIED,
                zone: 0,
            };
            if let Err(error) = self.link_config.delete(host, &link) {
                errors.push(error.to_string());
            }
        }
        // Links first: older kernels hook a device chain, and every kernel
        // a flowtable, only on a device that exists. A new link's traffic
        // is refused as unproved until its chain is there.
        for link in links.values().filter(|link| !self.has_userns(&link.id)) {
            if let Err(error) = self.link_config.delete(host, link) {
                errors.push(error.to_string());
            }
        }
        errors.extend(self.repair_links(links.values()));
        // The whole table is replaced in one transaction: no moment where
        // a box is less restricted than its policy.
        let mut ruleset = Ruleset::new(state.ruleset.config().clone());
        ruleset.upsert_boxes(&boxes);
        state.commit(&ruleset.full()).map_err(EngineError::Kernel)?;
        state.ruleset = ruleset;
        // New counters: the flows known by them are known no more; and
        // the learned elements went with the old table.
        state.flows.clear();
        self.directory.forget_written();
        self.publish(&boxes)?;
        state.links = links;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Kernel(errors.join("; ")))
        }
    }

    /// Makes anew each box link whose namespace or device is gone (with
    /// its resolv.conf); returns what failed.
    pub(super) fn repair_links<'a>(&self, links: impl Iterator<Item = &'a BoxLink>) -> Vec<String> {
        let mut errors = Vec::new();
        for link in links {
            let repaired = self.write_resolv_conf(&link.id).and_then(|()| {
                self.link_config
                    .repair(&self.config.host, link, || {
                        self.box_netns(link).map_err(std::io::Error::other)
                    })
                    .map_err(kernel)
            });
            if let Err(error) = repaired {
                errors.push(error.to_string());
            }
        }
        errors
    }

    /// Namespaces with this engine's prefix that the store no longer has.
    fn stale_namespaces(&self, keep: &BTreeMap<String, BoxLink>) -> Vec<String> {
        let prefix = &self.config.netns_prefix;
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                entry
                    .file_name()
                    .to_str()?
                    .strip_prefix(prefix.as_str())
                    .map(str::to_owned)
            })
            .filter(|id| !keep.contains_key(id))
            .collect()
    }
}
