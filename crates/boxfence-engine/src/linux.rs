//! The engine over the Linux data plane: boxes are network namespaces,
//! their policies nftables objects, changed in one transaction each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use boxfence_dataplane::HostNetns;
use boxfence_dataplane::conntrack::{Conntrack, Entry};
use boxfence_dataplane::exec::{self, ExecSpec};
use boxfence_dataplane::links::LinkConfig;
use boxfence_dataplane::nft_watch::NftWatch;
use boxfence_dataplane::routing::FailClosedRouting;
use boxfence_dataplane::ruleset::{
    Batch, BoxLink, NEW_IN, NEW_OUT, Ruleset, TableConfig, box_counter,
};
use boxfence_policy::{AlwaysBlocked, EffectivePolicy, FlowEvent};

use boxfence_dataplane::nft_netlink::NftSocket;
use boxfence_resolver::directory::Directory;

use crate::dns::{SetWriter, new_directory};
use crate::flowlog::FlowLog;
use crate::metrics::EngineMetrics;
use crate::{AddressPool, Engine, EngineError, ExecOutput, ExecRequest, MachineSpec};

/// How the Linux engine is set up.
#[derive(Debug, Clone)]
pub struct LinuxConfig {
    /// The nftables table it owns.
    pub table: String,
    /// Box namespaces are `/run/netns/<netns_prefix><id>`.
    pub netns_prefix: String,
    /// Host-side interfaces are `<ifname_prefix><id>`.
    pub ifname_prefix: String,
    /// Address pools (at most a /16 of IPv4: zones are 16-bit).
    pub pool: AddressPool,
    /// Interfaces to masquerade out of; empty: any non-box interface.
    pub uplinks: Vec<String>,
    /// Always-blocked ranges minus exemptions.
    pub always_blocked: Arc<AlwaysBlocked>,
    /// The executable that runs the exec helper subcommands.
    pub helper: PathBuf,
    /// Box uids are `uid_base + zone`.
    pub uid_base: u32,
    /// Where per-box files (resolv.conf) live.
    pub state_dir: PathBuf,
    /// First policy-routing rule preference (eight are used).
    pub rule_pref: u32,
    /// The mark bit of box traffic.
    pub mark: u32,
    /// Port of the built-in resolver.
    pub resolver_port: u16,
    /// Where the commands run (tests use a scratch namespace).
    pub host: HostNetns,
}

#[derive(Debug)]
struct State {
    ruleset: Ruleset,
    /// The engine's own nf_tables socket: incremental batches go through
    /// it, in-process (no `nft` process, no cache fetch of the table).
    socket: NftSocket,
    links: BTreeMap<String, BoxLink>,
    /// Per box, its new-flow count (both directions) at the last look in
    /// conntrack, and the flows found then that its policy still allowed:
    /// while the count stays, no other flow can have started.
    flows: HashMap<String, (u64, Vec<Entry>)>,
    /// Bumped by every call that may change the table (`lock_to_change`).
    generation: u64,
    /// The table's digest as the watchdog last saw it, and the generation
    /// it saw then: a different digest at the same generation means
    /// someone else altered the table.
    seen: Option<(u64, u64)>,
}

impl State {
    /// Commits one batch: over the socket when it is made of commands only,
    /// else (a full ruleset, whose base only `nft` takes) through `nft -f`.
    fn commit(&mut self, host: &HostNetns, batch: &Batch) -> Result<(), String> {
        match batch.commands() {
            Some(commands) => self
                .socket
                .apply(batch.table(), commands)
                .map_err(|e| e.to_string()),
            None => host.nft(&batch.to_text()).map_err(|e| e.to_string()),
        }
    }
}

/// Above this many flows a box's are not kept between updates (each one
/// is a few hundred bytes); its next update walks conntrack.
const MAX_KNOWN_FLOWS: usize = 4096;

/// The Linux engine. Changes are serialised: the kernel sees batches in
/// the order of the model.
#[derive(Debug)]
pub struct LinuxEngine {
    config: LinuxConfig,
    link_config: LinkConfig,
    state: Mutex<State>,
    directory: Arc<Directory>,
    set_writer: Option<SetWriter>,
    flow_log: Arc<FlowLog>,
    metrics: EngineMetrics,
    resolver: std::sync::OnceLock<Arc<boxfence_resolver::Resolver>>,
    /// Boxes whose allowed new connections are logged.
    pub(crate) log_allowed: Mutex<std::collections::HashSet<String>>,
    /// Set once the new-connection reader runs.
    pub(crate) new_flow_reader: std::sync::OnceLock<()>,
    /// The ctnetlink socket that cuts flows (used under the state lock).
    conntrack: Mutex<Conntrack>,
    /// What the watchdog knows between its checks.
    watch: Mutex<Watch>,
}

/// The watchdog's memory.
#[derive(Debug)]
struct Watch {
    nft: NftWatch,
    /// The nf_tables generation at which the table was last found as the
    /// engine left it: while the kernel reports it, nothing was committed.
    verified: Option<u32>,
    /// When the last listing of the table started and how long it took.
    last_listing: Option<(Instant, Duration)>,
}

impl LinuxEngine {
    /// Sets up the host (forwarding, fail-closed routing, an empty table)
    /// and starts the watchdog that restores a flushed ruleset.
    pub fn start(config: LinuxConfig) -> Result<Arc<Self>, EngineError> {
        let gateways = config.pool.gateways();
        let table = TableConfig {
            table: config.table.clone(),
            ifname_prefix: config.ifname_prefix.clone(),
            pool4: config.pool.ipv4,
            pool6: config.pool.ipv6,
            gateway4: gateways.ipv4,
            gateway6: gateways.ipv6,
            uplinks: config.uplinks.clone(),
            resolver_port: config.resolver_port,
            mark: config.mark,
            always_blocked: config.always_blocked.intervals(),
        };
        let link_config = LinkConfig {
            netns_prefix: config.netns_prefix.clone(),
            ifname_prefix: config.ifname_prefix.clone(),
            gateway4: gateways.ipv4,
            gateway6: gateways.ipv6,
        };
        std::fs::create_dir_all(&config.state_dir).map_err(kernel)?;
        let mut ruleset = Ruleset::new(table);
        // A table left by an earlier run keeps enforcing the last-applied
        // policies until reconcile replaces it in one transaction.
        let left = config
            .host
            .run("nft", &["list", "table", "inet", &config.table], None)
            .is_ok();
        if !left {
            config.host.nft(&ruleset.full().to_text()).map_err(kernel)?;
        }
        let open = || {
            config
                .host
                .in_netns(NftSocket::open)
                .map_err(kernel)?
                .map_err(kernel)
        };
        let socket = open()?;
        let conntrack = Conntrack::open_in(&config.host).map_err(kernel)?;
        let nft = NftWatch::open_in(&config.host).map_err(kernel)?;
        let engine = Arc::new(Self {
            link_config,
            state: Mutex::new(State {
                ruleset,
                socket: open()?,
                links: BTreeMap::new(),
                flows: HashMap::new(),
                generation: 0,
                seen: None,
            }),
            directory: new_directory(),
            flow_log: Arc::default(),
            metrics: EngineMetrics::default(),
            resolver: std::sync::OnceLock::new(),
            log_allowed: Mutex::default(),
            new_flow_reader: std::sync::OnceLock::new(),
            conntrack: Mutex::new(conntrack),
            watch: Mutex::new(Watch {
                nft,
                verified: None,
                last_listing: None,
            }),
            set_writer: Some(SetWriter::new(config.table.clone(), socket)),
            config,
        });
        engine
            .routing()
            .install(&engine.config.host)
            .map_err(kernel)?;
        engine.spawn_packet_log().map_err(kernel)?;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(watchdog(Arc::downgrade(&engine)));
        }
        Ok(engine)
    }

    /// Removes everything this engine made: boxes, table, routing rules.
    /// Every step is tried; the errors are collected.
    pub fn shutdown(&self) -> Result<(), EngineError> {
        let mut state = self.lock();
        let host = &self.config.host;
        let mut errors = Vec::new();
        for link in std::mem::take(&mut state.links).values() {
            if let Err(error) = self.link_config.delete(host, link) {
                errors.push(error.to_string());
            }
            let _ = std::fs::remove_dir_all(self.config.state_dir.join(&link.id));
        }
        if let Err(error) = host.nft(&state.ruleset.teardown()) {
            errors.push(error.to_string());
        }
        self.routing().uninstall(host);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Kernel(errors.join("; ")))
        }
    }

    /// The resolver's directory of boxes.
    pub fn directory(&self) -> Arc<Directory> {
        Arc::clone(&self.directory)
    }

    /// The flow log of denied connections and queries.
    pub fn flow_log(&self) -> Arc<FlowLog> {
        Arc::clone(&self.flow_log)
    }

    pub(crate) fn metrics(&self) -> &EngineMetrics {
        &self.metrics
    }

    pub(crate) fn resolver(&self) -> Option<&Arc<boxfence_resolver::Resolver>> {
        self.resolver.get()
    }

    pub(crate) fn set_resolver(&self, resolver: Arc<boxfence_resolver::Resolver>) {
        let _ = self.resolver.set(resolver);
    }

    pub(crate) fn table_name(&self) -> String {
        self.config.table.clone()
    }

    /// The machines this engine enforces.
    pub fn machine_ids(&self) -> Vec<String> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.links.keys().cloned().collect()
    }

    pub(crate) fn ifname_prefix(&self) -> &str {
        &self.config.ifname_prefix
    }

    /// The box whose host-side interface is `ifname`. Reads the state
    /// without counting as a change.
    pub(crate) fn link_by_ifname(&self, ifname: &str) -> Option<BoxLink> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .links
            .values()
            .find(|link| link.ifname == ifname)
            .cloned()
    }

    pub(crate) fn set_writer(&self) -> Option<&SetWriter> {
        self.set_writer.as_ref()
    }

    pub(crate) fn pool(&self) -> AddressPool {
        self.config.pool
    }

    pub(crate) fn resolver_port(&self) -> u16 {
        self.config.resolver_port
    }

    pub(crate) fn always_blocked(&self) -> Arc<AlwaysBlocked> {
        Arc::clone(&self.config.always_blocked)
    }

    pub(crate) fn host(&self) -> &HostNetns {
        &self.config.host
    }

    /// The path of a box's network namespace.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.link_config.netns_path(id)
    }

    fn routing(&self) -> FailClosedRouting {
        FailClosedRouting {
            pool4: self.config.pool.ipv4,
            pool6: self.config.pool.ipv6,
            mark: self.config.mark,
            first_pref: self.config.rule_pref,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a model that may not match
        // the kernel; the watchdog's full re-apply repairs that.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lock, for a call that may change the table: the watchdog then
    /// takes what it lists next as the engine's doing, not tampering.
    fn lock_to_change(&self) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.generation += 1;
        state
    }

    /// The ctnetlink socket.
    fn conntrack(&self) -> MutexGuard<'_, Conntrack> {
        self.conntrack
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn link(&self, machine: &MachineSpec) -> Result<BoxLink, EngineError> {
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
        let mut state = self.lock_to_change();
        if state.links.contains_key(&machine.id) {
            return Err(EngineError::Kernel(format!(
                "machine {} exists",
                machine.id
            )));
        }
        self.write_resolv_conf(&machine.id)?;
        let host = &self.config.host;
        // The rules name the interface, they do not need it to exist, and
        // nothing runs in the box before this returns: the link and the
        // rules are made side by side.
        let batch = state.ruleset.upsert_boxes(&[(link.clone(), policy)]);
        let (linked, ruled) = std::thread::scope(|scope| {
            let linking = scope.spawn(|| self.link_config.create(host, &link));
            let ruled = state.commit(host, &batch);
            let linked = linking
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (linked, ruled)
        });
        let failure = match (&linked, &ruled) {
            (Err(error), _) => Some(kernel(error)),
            (_, Err(error)) => Some(kernel(error)),
            (Ok(()), Ok(())) => None,
        };
        if let Some(error) = failure {
            // Undo whichever half succeeded.
            if let (Some(undo), true) = (state.ruleset.remove_box(&link.id), ruled.is_ok()) {
                let _ = state.commit(host, &undo);
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

    fn delete_blocking(&self, id: &str) -> Result<(), EngineError> {
        let mut state = self.lock_to_change();
        let link = state
            .links
            .remove(id)
            .ok_or_else(|| EngineError::NoSuchMachine(id.to_owned()))?;
        state.flows.remove(id);
        let host = &self.config.host;
        let mut errors = Vec::new();
        if let Some(batch) = state.ruleset.remove_box(id)
            && let Err(error) = state.commit(host, &batch)
        {
            errors.push(error);
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

    fn apply_blocking(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError> {
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
        let host = &self.config.host;
        let batch = state.ruleset.upsert_boxes(&boxes);
        if let Err(error) = state.commit(host, &batch) {
            let ids: Vec<&str> = boxes.iter().map(|(link, _)| link.id.as_str()).collect();
            let fallback = state.ruleset.fail_closed(&ids);
            let closed = state.commit(host, &fallback).map_or_else(
                |e| format!("; failing closed also failed: {e}"),
                |()| String::new(),
            );
            return Err(EngineError::Kernel(format!("{error}{closed}")));
        }
        self.publish(&boxes)?;
        self.cut_denied(&mut state, &boxes)
    }

    /// Cuts the flows the boxes' new policies deny. Finding flows means a
    /// walk of the kernel's whole conntrack table (about 10 ms), so a box
    /// whose new-flow counters have not moved since the last look is
    /// checked against the flows that look found, which are all it can
    /// have (none, for a box created since).
    fn cut_denied(
        &self,
        state: &mut State,
        boxes: &[(BoxLink, &EffectivePolicy)],
    ) -> Result<(), EngineError> {
        let domain_of = |id: &str, ip: IpAddr| {
            let link = boxes
                .iter()
                .find(|(link, _)| link.id == id)
                .map(|(link, _)| link)?;
            self.domain_of(link, ip)
        };
        // A few boxes: their own counters; many: one dump of all.
        let names: Vec<String> = boxes
            .iter()
            .flat_map(|(link, _)| [NEW_OUT, NEW_IN].map(|which| box_counter(&link.id, which)))
            .collect();
        let names = (boxes.len() <= 16).then_some(&names[..]);
        let counters = state.socket.counters(&self.config.table, names).ok();
        let flows_seen = |id: &str| {
            let count = |which| counters.as_ref()?.get(&box_counter(id, which)).copied();
            Some(count(NEW_OUT)? + count(NEW_IN)?)
        };
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        let mut seen = HashMap::new();
        for (link, policy) in boxes {
            let count = flows_seen(&link.id);
            match (count, state.flows.remove(&link.id)) {
                (Some(count), Some((then, flows))) if count == then => {
                    known.push(((link.clone(), *policy), flows));
                }
                _ => unknown.push((link.clone(), *policy)),
            }
            if let Some(count) = count {
                seen.insert(link.id.clone(), count);
            }
        }
        let conntrack = &mut *self.conntrack();
        let mut cuts = vec![conntrack.cut_denied(&unknown, &domain_of).map_err(kernel)?];
        if !known.is_empty() {
            let (pairs, flows): (Vec<_>, Vec<Vec<Entry>>) = known.into_iter().unzip();
            let flows = flows.into_iter().flatten().collect();
            cuts.push(
                conntrack
                    .cut_among(&pairs, flows, &domain_of)
                    .map_err(kernel)?,
            );
        }
        let mut kept: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for cut in cuts {
            kept.extend(cut.kept);
        }
        for (id, count) in seen {
            let flows = kept.remove(&id).unwrap_or_default();
            if flows.len() <= MAX_KNOWN_FLOWS {
                state.flows.insert(id, (count, flows));
            }
        }
        Ok(())
    }

    fn reconcile_blocking(
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
        // The whole table is replaced in one transaction: no moment where
        // a box is less restricted than its policy.
        let mut ruleset = Ruleset::new(state.ruleset.config().clone());
        ruleset.upsert_boxes(&boxes);
        host.nft(&ruleset.full().to_text()).map_err(kernel)?;
        state.ruleset = ruleset;
        // New counters: the flows known by them are known no more; and
        // the learned elements went with the old table.
        state.flows.clear();
        self.directory.forget_written();
        self.publish(&boxes)?;
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
        for (id, link) in &links {
            if !self.link_config.exists(id) {
                self.write_resolv_conf(id)?;
                if let Err(error) = self.link_config.create(host, link) {
                    errors.push(error.to_string());
                }
            }
        }
        state.links = links;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Kernel(errors.join("; ")))
        }
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

    /// The watchdog's periodic check; true when it repaired something.
    ///
    /// Every call asks the kernel for its nf_tables generation, which
    /// does not grow with the table: unchanged since the table was last
    /// verified means nothing was committed by anyone, and nothing is
    /// listed. A missing table is restored at once. Otherwise (the
    /// engine, the resolver's learned addresses or someone else committed)
    /// the table is listed and compared, but no more often than keeps the
    /// listing under a twentieth of the time (2.4 s at 1,000 boxes), since
    /// the resolver commits all the time.
    pub fn check(&self) -> Result<bool, EngineError> {
        let mut watch = self
            .watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = watch.nft.generation().map_err(kernel)?;
        if watch.verified == Some(generation) {
            return Ok(false);
        }
        if !watch.nft.table_exists(&self.config.table).map_err(kernel)? {
            watch.verified = None;
            return self.restore(&mut self.lock()).map(|()| true);
        }
        if let Some((at, took)) = watch.last_listing
            && at.elapsed() < (took * LISTING_SHARE).max(WATCHDOG_PERIOD)
        {
            return Ok(false);
        }
        let started = Instant::now();
        let outcome = self.compare();
        watch.last_listing = Some((started, started.elapsed()));
        match outcome? {
            Comparison::Intact => {
                watch.verified = Some(generation);
                Ok(false)
            }
            Comparison::Repaired => Ok(true),
            Comparison::Busy => Ok(false),
        }
    }

    /// Lists the table and re-applies the whole ruleset if it is gone or
    /// someone else altered it (a rule, chain, set or element other than
    /// the resolver's learned addresses). Returns true when it repaired
    /// something.
    pub fn repair(&self) -> Result<bool, EngineError> {
        Ok(self.compare()? == Comparison::Repaired)
    }

    fn compare(&self) -> Result<Comparison, EngineError> {
        let generation = self.lock().generation;
        // Listed without the lock, so API changes never wait for it.
        let digest = self.digest(&self.config.table);
        let mut state = self.lock();
        if state.generation != generation {
            // The engine changed the table meanwhile: next time.
            return Ok(Comparison::Busy);
        }
        let altered = match (digest, state.seen) {
            (None, _) => true,
            (Some(now), Some((seen_generation, seen))) => {
                seen_generation == generation && seen != now
            }
            (Some(_), None) => false,
        };
        if altered {
            self.restore(&mut state)?;
            return Ok(Comparison::Repaired);
        }
        // After its own changes, the engine takes the table as it finds it.
        state.seen = digest.map(|d| (generation, d));
        Ok(Comparison::Intact)
    }

    /// Re-applies the whole ruleset; the next listing is taken as the
    /// engine's.
    fn restore(&self, state: &mut State) -> Result<(), EngineError> {
        self.metrics
            .repairs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        state.generation += 1;
        state.seen = None;
        state.flows.clear();
        self.config
            .host
            .nft(&state.ruleset.full().to_text())
            .map_err(kernel)?;
        // The learned elements went with the old table.
        self.directory.forget_written();
        Ok(())
    }

    /// A digest of the table without counter values, handles and the
    /// elements of timeout sets (the resolver adds those all the time).
    /// Elements are sorted, and objects sorted by kind and name (rules
    /// keep their order within a chain), so equal tables hash alike
    /// whatever order the kernel lists them in.
    fn digest(&self, table: &str) -> Option<u64> {
        let json = self
            .config
            .host
            .run("nft", &["-j", "-s", "list", "table", "inet", table], None)
            .ok()?;
        let mut listing: serde_json::Value = serde_json::from_str(&json).ok()?;
        let objects = listing.get_mut("nftables")?.as_array_mut()?;
        objects.retain(|object| object.get("metainfo").is_none());
        for object in objects.iter_mut() {
            canonical(object);
        }
        objects.sort_by_cached_key(|object| {
            let (kind, body) = object
                .as_object()
                .and_then(|o| o.iter().next())
                .map_or((String::new(), &serde_json::Value::Null), |(k, v)| {
                    (k.clone(), v)
                });
            let name = |key: &str| body.get(key).map(ToString::to_string).unwrap_or_default();
            let chain = if kind == "rule" {
                name("chain")
            } else {
                name("name")
            };
            (kind, chain)
        });
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&listing.to_string(), &mut hasher);
        Some(std::hash::Hasher::finish(&hasher))
    }

    pub(crate) fn exec_blocking(
        &self,
        id: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput, EngineError> {
        let uid = {
            let state = self.lock();
            let link = state
                .links
                .get(id)
                .ok_or_else(|| EngineError::NoSuchMachine(id.to_owned()))?;
            self.config.uid_base + u32::from(link.zone)
        };
        let spec = ExecSpec {
            netns: self.link_config.netns_path(id),
            uid,
            resolv_conf: self.config.state_dir.join(id).join("resolv.conf"),
            argv: request.command.clone(),
            stdin: request.stdin.clone().unwrap_or_default().into_bytes(),
            timeout: request.timeout.unwrap_or(Duration::from_secs(60)),
        };
        let result =
            exec::run(&self.config.helper, &spec).map_err(|e| EngineError::Exec(e.to_string()))?;
        Ok(ExecOutput {
            exit_code: result.exit_code,
            stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        })
    }

    /// Runs `f` while holding the engine's lock, so no change (and no
    /// repair) reaches the kernel meanwhile. For tests of failure modes.
    pub fn while_locked<T>(&self, f: impl FnOnce() -> T) -> T {
        let _state = self.lock();
        f()
    }

    /// Addresses in use by boxes this engine runs.
    pub fn used_addresses(&self) -> HashSet<IpAddr> {
        self.lock()
            .links
            .values()
            .flat_map(|link| [IpAddr::V4(link.ipv4), IpAddr::V6(link.ipv6)])
            .collect()
    }
}

/// What one listing of the table found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// As the engine left it (or as the engine takes it after its changes).
    Intact,
    /// Gone or altered: the whole ruleset was re-applied.
    Repaired,
    /// The engine changed the table during the listing: no verdict.
    Busy,
}

/// How often the watchdog checks.
const WATCHDOG_PERIOD: Duration = Duration::from_secs(2);
/// Listings are at least this many times their own duration apart.
const LISTING_SHARE: u32 = 20;

/// Drops what changes without anyone altering the table (counter values,
/// handles, learned elements) and sorts set and map elements.
fn canonical(object: &mut serde_json::Value) {
    let Some((kind, body)) = object.as_object_mut().and_then(|o| o.iter_mut().next()) else {
        return;
    };
    let Some(body) = body.as_object_mut() else {
        return;
    };
    body.remove("handle");
    match kind.as_str() {
        "counter" => {
            body.remove("packets");
            body.remove("bytes");
        }
        "set" | "map" => {
            let learned = body
                .get("flags")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|flags| flags.iter().any(|f| f == "timeout"));
            if learned {
                body.remove("elem");
            } else if let Some(elements) = body
                .get_mut("elem")
                .and_then(serde_json::Value::as_array_mut)
            {
                elements.sort_by_cached_key(ToString::to_string);
            }
        }
        _ => {}
    }
}

/// Checks the ruleset every few seconds and restores it if someone flushed
/// or altered it, for as long as the engine lives.
async fn watchdog(engine: Weak<LinuxEngine>) {
    loop {
        tokio::time::sleep(WATCHDOG_PERIOD).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || engine.check()).await;
    }
}

fn kernel(error: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(error.to_string())
}

/// Runs blocking data-plane work off the async threads.
async fn blocking<T: Send + 'static>(
    engine: &Arc<LinuxEngine>,
    work: impl FnOnce(&LinuxEngine) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    let engine = Arc::clone(engine);
    tokio::task::spawn_blocking(move || work(&engine))
        .await
        .map_err(|error| EngineError::Kernel(format!("data plane task failed: {error}")))?
}

/// The engine behind an `Arc`, as the server holds it.
#[derive(Debug, Clone)]
pub struct SharedLinuxEngine(pub Arc<LinuxEngine>);

#[async_trait]
impl Engine for SharedLinuxEngine {
    async fn create_machine(
        &self,
        machine: &MachineSpec,
        policy: &EffectivePolicy,
    ) -> Result<(), EngineError> {
        let (machine, policy) = (machine.clone(), policy.clone());
        blocking(&self.0, move |engine| {
            engine.create_blocking(&machine, &policy)
        })
        .await
    }

    async fn delete_machine(&self, id: &str) -> Result<(), EngineError> {
        let id = id.to_owned();
        blocking(&self.0, move |engine| engine.delete_blocking(&id)).await
    }

    async fn apply(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError> {
        let policies = policies.to_vec();
        blocking(&self.0, move |engine| engine.apply_blocking(&policies)).await
    }

    async fn reconcile(
        &self,
        machines: &[(MachineSpec, EffectivePolicy)],
    ) -> Result<(), EngineError> {
        let machines = machines.to_vec();
        blocking(&self.0, move |engine| engine.reconcile_blocking(&machines)).await
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, EngineError> {
        let (id, request) = (id.to_owned(), request.clone());
        blocking(&self.0, move |engine| engine.exec_blocking(&id, &request)).await
    }

    fn flows(
        &self,
        id: &str,
        since_ms: Option<u64>,
        verdict: Option<&str>,
        limit: usize,
    ) -> Vec<FlowEvent> {
        self.0.flow_log.history(id, since_ms, verdict, limit)
    }

    fn subscribe_flows(&self) -> Option<tokio::sync::broadcast::Receiver<FlowEvent>> {
        Some(self.0.flow_log.subscribe())
    }

    fn metrics_text(&self) -> String {
        self.0.metrics_text()
    }

    async fn set_log_allowed(&self, id: &str, on: bool) -> Result<(), EngineError> {
        self.0.set_log_allowed(id, on)
    }
}
