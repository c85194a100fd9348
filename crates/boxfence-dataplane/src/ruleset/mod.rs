//! The nftables ruleset: one `inet` table owned by boxfence, changed only
//! by whole batches (one kernel transaction each).
//!
//! Per packet the cost does not grow with boxes or rules: what a box sends
//! first meets the box's own chain on its device's ingress hook (zone,
//! mark, source check); one prerouting chain (after dstnat) accepts
//! established flows and dispatches new ones through verdict maps, by
//! interface for what a box sends and by address for what is sent to it,
//! to the box's own chains, where every list is one set lookup. App
//! policies compile once into chains and sets shared by every box they
//! select.

mod base;
mod compile;
mod name_check;
mod names;
mod objects;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use boxfence_policy::matchers::IpRange;
use boxfence_policy::{CompiledAppPolicy, Direction, EffectivePolicy};
use ipnet::{Ipv4Net, Ipv6Net};

pub use base::FLOWTABLE;
pub use compile::{DENIED, NEW_IN, NEW_OUT};
use compile::{box_objects, policy_objects};
pub use name_check::NameCheck;
use names::PolicyNames;
pub use names::{box_counter, box_learned_set, rule_learned_set};
pub use objects::Batch;
use objects::Object;

use crate::nft::lower::LowerError;
use crate::nft::{Command, Element, Listing, Verdict};

const DENY_BLOCKED: &str = "deny_blocked";
const DENY_BOX: &str = "deny_box";
const DENY_APP: &str = "deny_app";
const DENY_HOST: &str = "deny_host";
/// Where a box packet from neither of its addresses goes.
const OTHER_SOURCE: &str = "other_source";

/// What the table is built around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableConfig {
    /// The `inet` table's name.
    pub table: String,
    /// Host-side interface names of boxes start with this (`bf-`).
    pub ifname_prefix: String,
    /// The boxes' IPv4 pool.
    pub pool4: Ipv4Net,
    /// The boxes' IPv6 pool.
    pub pool6: Ipv6Net,
    /// The host side's address in each box link (the boxes' gateway and
    /// resolver address).
    pub gateway4: Ipv4Addr,
    /// IPv6 counterpart of `gateway4`.
    pub gateway6: Ipv6Addr,
    /// Interfaces box traffic is masqueraded out of; empty: any non-box.
    pub uplinks: Vec<String>,
    /// Port of the built-in resolver on the gateway addresses.
    pub resolver_port: u16,
    /// Packet mark bit that says "the boxfence table saw this".
    pub mark: u32,
    /// The NFLOG group denials are logged to: one reader per group and
    /// network namespace, so each table on a host has its own.
    pub log_group: u16,
    /// Always-blocked ranges minus the operator's exemptions.
    pub always_blocked: Vec<IpRange>,
    /// The fast path: `Some(uplinks)` offloads established box flows to
    /// a flowtable on every box link and these uplinks (each must exist
    /// whenever the whole table is committed); `None`: no flowtable.
    pub flowtable_uplinks: Option<Vec<String>>,
    /// Name checks of domain-authorised flows (issue 19); `None`: off.
    pub name_check: Option<NameCheck>,
}

/// A box as the ruleset knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoxLink {
    /// The machine id.
    pub id: String,
    /// Host-side interface name.
    pub ifname: String,
    /// The box's IPv4 address.
    pub ipv4: Ipv4Addr,
    /// The box's IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Its conntrack zone.
    pub zone: u16,
}

#[derive(Debug, Clone)]
struct BoxEntry {
    link: BoxLink,
    objects: Arc<[Object]>,
    policies: Vec<PolicyNames>,
    /// The dispatch maps send the box to the deny chain, not its chains.
    failed_closed: bool,
}

#[derive(Debug, Clone)]
struct PolicyEntry {
    objects: Arc<[Object]>,
    users: usize,
    /// A batch that may have created them failed: the kernel may lack
    /// them, so the next batch that uses them sends them again.
    unsure: bool,
}

/// The desired content of the table, and the batches that move the kernel
/// from one state to the next. A clone is cheap (boxes and policies share
/// their compiled objects), so a copy can be rendered outside a lock.
#[derive(Debug, Clone)]
pub struct Ruleset {
    config: TableConfig,
    boxes: BTreeMap<String, BoxEntry>,
    policies: BTreeMap<PolicyNames, PolicyEntry>,
}

impl Ruleset {
    /// An empty ruleset (no boxes).
    pub fn new(config: TableConfig) -> Self {
        Self {
            config,
            boxes: BTreeMap::new(),
            policies: BTreeMap::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// True when the box is in the ruleset.
    pub fn contains(&self, id: &str) -> bool {
        self.boxes.contains_key(id)
    }

    /// The batch that replaces whatever table of this name the kernel has
    /// with the whole ruleset, atomically (resolver-learned addresses are
    /// dropped, which only restricts).
    pub fn full(&mut self) -> Batch {
        let batch = self.whole();
        self.policies.values_mut().for_each(|p| p.unsure = false);
        self.boxes
            .values_mut()
            .for_each(|e| e.failed_closed = false);
        batch
    }

    /// The batch [`full`](Self::full) sends, without taking it as sent:
    /// what the table holds when it holds exactly the model.
    pub fn whole(&self) -> Batch {
        let mut batch = Batch::new(&self.config.table);
        // Whatever table of this name there is goes in the same
        // transaction (the first command makes sure there is one to delete).
        batch.push(Command::AddTable);
        batch.push(Command::DeleteTable);
        batch.push(Command::AddTable);
        if let Some(uplinks) = &self.config.flowtable_uplinks {
            let links = self.boxes.values().map(|e| e.link.ifname.clone());
            let devices = uplinks.iter().cloned().chain(links).collect();
            batch.push(base::flowtable(devices));
        }
        base::render(&self.config, &mut batch);
        for policy in self.policies.values() {
            policy.objects.iter().for_each(|o| batch.upsert(o));
        }
        for entry in self.boxes.values() {
            entry.objects.iter().for_each(|o| batch.upsert(o));
            dispatch_to_chains(&entry.link, false, &mut batch);
        }
        batch
    }

    /// What the table holds when it holds exactly the model (no kernel
    /// involved): what the watchdog compares a dump of the table with.
    pub fn listing(&self) -> Result<Listing, LowerError> {
        Listing::after(self.whole().commands())
    }

    /// The batch that removes the table (there need not be one).
    pub fn teardown(&self) -> Batch {
        let mut batch = Batch::new(&self.config.table);
        batch.push(Command::AddTable);
        batch.push(Command::DeleteTable);
        batch
    }

    /// Adds or updates boxes with their effective policies; returns the
    /// batch that does it in the kernel, which holds only what changed
    /// (an app-wide policy change is its new shared objects, one app chain
    /// per box and the old objects' removal). The model changes now: if
    /// the batch fails, apply [`fail_closed`](Self::fail_closed) and later
    /// [`full`](Self::full).
    pub fn upsert_boxes(&mut self, boxes: &[(BoxLink, &EffectivePolicy)]) -> Batch {
        let mut batch = Batch::new(&self.config.table);
        let mut released = Vec::new();
        for (link, policy) in boxes {
            let selected: Vec<&CompiledAppPolicy> =
                policy.app_policies.iter().map(AsRef::as_ref).collect();
            let mut names = Vec::new();
            for compiled in selected {
                let name = PolicyNames::new(compiled);
                if !names.contains(&name) {
                    let entry = self
                        .policies
                        .entry(name.clone())
                        .or_insert_with(|| PolicyEntry {
                            objects: policy_objects(compiled, self.config.name_check).into(),
                            users: 0,
                            unsure: true,
                        });
                    if entry.unsure {
                        entry.objects.iter().for_each(|o| batch.upsert(o));
                        entry.unsure = false;
                    }
                    entry.users += 1;
                    names.push(name);
                }
            }
            let objects = box_objects(link, policy, self.config.mark, self.config.name_check);
            let old = self.boxes.get(&link.id);
            // After a failed batch (the box failed closed) the kernel holds
            // what came before it, not the model: everything goes again.
            objects
                .iter()
                .filter(|o| old.is_none_or(|e| e.failed_closed || !e.objects.contains(o)))
                .for_each(|o| batch.upsert(o));
            match old {
                Some(e) if e.link == *link && !e.failed_closed => {}
                Some(e) if e.link == *link => dispatch_to_chains(link, true, &mut batch),
                Some(e) => {
                    unlink(&e.link, &mut batch);
                    dispatch_to_chains(link, false, &mut batch);
                    if e.link.ifname != link.ifname {
                        self.leave_flowtable(&e.link, &mut batch);
                        self.join_flowtable(link, &mut batch);
                    }
                }
                None => {
                    dispatch_to_chains(link, false, &mut batch);
                    self.join_flowtable(link, &mut batch);
                }
            }
            // A set the box no longer needs (a list emptied, or looked up
            // another way) goes after the chains that used it were
            // rewritten above. After a failed batch the kernel may not
            // have it: the watchdog's comparison removes any leftover.
            if let Some(old) = old.filter(|e| !e.failed_closed) {
                let stale: Vec<Object> = old
                    .objects
                    .iter()
                    .filter(|o| objects.iter().all(|new| new.name() != o.name()))
                    .cloned()
                    .collect();
                remove_objects(&stale, &mut batch);
            }
            let entry = BoxEntry {
                link: link.clone(),
                objects: objects.into(),
                policies: names,
                failed_closed: false,
            };
            if let Some(old) = self.boxes.insert(link.id.clone(), entry) {
                released.extend(old.policies);
            }
        }
        self.release(released, &mut batch);
        batch
    }

    /// Removes a box; returns the batch, or `None` if it was not there.
    pub fn remove_box(&mut self, id: &str) -> Option<Batch> {
        let entry = self.boxes.remove(id)?;
        let mut batch = Batch::new(&self.config.table);
        unlink(&entry.link, &mut batch);
        self.leave_flowtable(&entry.link, &mut batch);
        entry.objects.iter().for_each(|o| batch.flush_chain(o));
        remove_objects(&entry.objects, &mut batch);
        self.release(entry.policies, &mut batch);
        Some(batch)
    }

    /// A batch that cuts the given boxes off (as deny-all) whatever their
    /// policy, for when applying their policy failed. The model keeps what
    /// the failed batch was to make; the next batch for these boxes (and
    /// for any shared policy objects) sends all of it again.
    pub fn fail_closed(&mut self, ids: &[&str]) -> Batch {
        self.policies.values_mut().for_each(|p| p.unsure = true);
        let mut batch = Batch::new(&self.config.table);
        for id in ids {
            if let Some(entry) = self.boxes.get_mut(*id) {
                dispatch_to(&entry.link, true, |_| DENY_BOX.into(), &mut batch);
                entry.failed_closed = true;
            }
        }
        batch
    }

    /// Takes `present` as the uplinks the flowtable holds: the kernel
    /// drops a device that goes from its flowtable by itself, and one that
    /// comes (or comes back) is added in place, its box flows offloaded
    /// from then on. Returns the batch that adds those that came (empty
    /// when uplinks only went), or `None` when nothing changed or there
    /// is no flowtable.
    pub fn follow_uplinks(&mut self, present: Vec<String>) -> Option<Batch> {
        let held = self.config.flowtable_uplinks.as_mut()?;
        if *held == present {
            return None;
        }
        let came: Vec<String> = present
            .iter()
            .filter(|uplink| !held.contains(uplink))
            .cloned()
            .collect();
        *held = present;
        let mut batch = Batch::new(&self.config.table);
        if !came.is_empty() {
            batch.push(base::flowtable(came));
        }
        Some(batch)
    }

    /// Adds the box's link to the flowtable, if there is one (in place:
    /// the flows it holds stay).
    fn join_flowtable(&self, link: &BoxLink, batch: &mut Batch) {
        if self.config.flowtable_uplinks.is_some() {
            batch.push(base::flowtable(vec![link.ifname.clone()]));
        }
    }

    /// Removes the box's link from the flowtable, if there is one; the
    /// link must still exist (the kernel drops a device that goes, and
    /// then refuses its removal).
    fn leave_flowtable(&self, link: &BoxLink, batch: &mut Batch) {
        if self.config.flowtable_uplinks.is_some() {
            batch.push(Command::DeleteFlowtableDevices {
                name: FLOWTABLE.into(),
                devices: vec![link.ifname.clone()],
            });
        }
    }

    /// Drops one use of each policy; deletes the objects of those unused.
    fn release(&mut self, names: Vec<PolicyNames>, batch: &mut Batch) {
        for name in names {
            let Some(entry) = self.policies.get_mut(&name) else {
                continue;
            };
            entry.users -= 1;
            if entry.users == 0
                && let Some(entry) = self.policies.remove(&name)
            {
                entry.objects.iter().for_each(|o| batch.flush_chain(o));
                remove_objects(&entry.objects, batch);
            }
        }
    }
}

/// Points the dispatch maps at the box's own chains.
fn dispatch_to_chains(link: &BoxLink, replace: bool, batch: &mut Batch) {
    let names = names::BoxNames::new(&link.id);
    dispatch_to(link, replace, |direction| names.chain(direction), batch);
}

/// Points the box's entries in the dispatch maps at the chain `chain`
/// names per direction. An element that exists with another value needs
/// a delete first (`replace`); both sit in one transaction, so no packet
/// sees the gap.
fn dispatch_to(
    link: &BoxLink,
    replace: bool,
    chain: impl Fn(Direction) -> String,
    batch: &mut Batch,
) {
    for entry in dispatch(link) {
        if replace {
            batch.push(Command::delete_element(entry.map, entry.key()));
        }
        let verdict = Verdict::Goto(chain(entry.direction));
        batch.push(Command::add_element(entry.map, entry.to(verdict)));
    }
}

/// Removes the box's elements from the dispatch maps.
fn unlink(link: &BoxLink, batch: &mut Batch) {
    for entry in dispatch(link) {
        batch.push(Command::delete_element(entry.map, entry.key()));
    }
}

/// One entry of a box in a dispatch map: traffic a box sends is found by
/// its interface, traffic sent to it (judged before routing, when the
/// output interface is not known yet) by its address.
struct DispatchEntry {
    map: &'static str,
    direction: Direction,
    key: DispatchKey,
}

enum DispatchKey {
    Ifname(String),
    Addr(IpAddr),
}

impl DispatchEntry {
    fn key(&self) -> Element {
        match &self.key {
            DispatchKey::Ifname(ifname) => Element::Ifname(ifname.clone()),
            DispatchKey::Addr(addr) => Element::Addr(*addr),
        }
    }

    fn to(&self, verdict: Verdict) -> Element {
        match &self.key {
            DispatchKey::Ifname(ifname) => Element::IfnameVerdict(ifname.clone(), verdict),
            DispatchKey::Addr(addr) => Element::AddrVerdict(*addr, verdict),
        }
    }
}

fn dispatch(link: &BoxLink) -> [DispatchEntry; 3] {
    let entry = |map, direction, key| DispatchEntry {
        map,
        direction,
        key,
    };
    [
        entry(
            "out_chains",
            Direction::Egress,
            DispatchKey::Ifname(link.ifname.clone()),
        ),
        entry(
            "in4",
            Direction::Ingress,
            DispatchKey::Addr(link.ipv4.into()),
        ),
        entry(
            "in6",
            Direction::Ingress,
            DispatchKey::Addr(link.ipv6.into()),
        ),
    ]
}

/// Deletes chains, then the sets their rules used.
fn remove_objects(objects: &[Object], batch: &mut Batch) {
    let (sets, chains): (Vec<&Object>, Vec<&Object>) = objects
        .iter()
        .partition(|o| matches!(o, Object::Set { .. }));
    chains.into_iter().rev().for_each(|o| batch.delete(o));
    sets.into_iter().for_each(|o| batch.delete(o));
}

#[cfg(test)]
mod listing_tests;
#[cfg(test)]
mod tests;
