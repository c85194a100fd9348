//! The engine over the Linux data plane: boxes are network namespaces,
//! their policies nftables objects, changed in one transaction each.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use boxfence_dataplane::exec::{self, ExecSpec};
use boxfence_dataplane::links::LinkConfig;
use boxfence_dataplane::routing::FailClosedRouting;
use boxfence_dataplane::ruleset::{BoxLink, Ruleset, TableConfig};
use boxfence_dataplane::{HostNetns, conntrack};
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
    links: BTreeMap<String, BoxLink>,
    /// Bumped by every change this engine makes to the table.
    generation: u64,
    /// The table's digest as the watchdog last saw it, and the generation
    /// it saw then: a different digest at the same generation means
    /// someone else altered the table.
    seen: Option<(u64, u64)>,
}

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
            config.host.nft(&ruleset.full()).map_err(kernel)?;
        }
        let socket = config
            .host
            .in_netns(NftSocket::open)
            .map_err(kernel)?
            .map_err(kernel)?;
        let engine = Arc::new(Self {
            link_config,
            state: Mutex::new(State {
                ruleset,
                links: BTreeMap::new(),
                generation: 0,
                seen: None,
            }),
            directory: new_directory(),
            flow_log: Arc::default(),
            metrics: EngineMetrics::default(),
            resolver: std::sync::OnceLock::new(),
            log_allowed: Mutex::default(),
            new_flow_reader: std::sync::OnceLock::new(),
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
        let mut state = self.lock();
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
            let ruled = host.nft(&batch);
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
                let _ = host.nft(&undo);
            }
            if linked.is_ok() {
                let _ = self.link_config.delete(host, &link);
            }
            return Err(error);
        }
        self.publish(&[(link.clone(), policy)])?;
        state.links.insert(machine.id.clone(), link);
        Ok(())
    }

    fn delete_blocking(&self, id: &str) -> Result<(), EngineError> {
        let mut state = self.lock();
        let link = state
            .links
            .remove(id)
            .ok_or_else(|| EngineError::NoSuchMachine(id.to_owned()))?;
        let host = &self.config.host;
        let mut errors = Vec::new();
        if let Some(batch) = state.ruleset.remove_box(id)
            && let Err(error) = host.nft(&batch)
        {
            errors.push(error.to_string());
        }
        // The link goes first, so no new flow starts; then its flows, so
        // its addresses can be reused.
        if let Err(error) = self.link_config.delete(host, &link) {
            errors.push(error.to_string());
        }
        if let Err(error) = conntrack::flush_box(host, &link) {
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
        let mut state = self.lock();
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
        if let Err(error) = host.nft(&batch) {
            let ids: Vec<&str> = boxes.iter().map(|(link, _)| link.id.as_str()).collect();
            let fallback = state.ruleset.fail_closed(&ids);
            let closed = host.nft(&fallback).map_or_else(
                |e| format!("; failing closed also failed: {e}"),
                |()| String::new(),
            );
            return Err(EngineError::Kernel(format!("{error}{closed}")));
        }
        self.publish(&boxes)?;
        let domain_of = |id: &str, ip: IpAddr| {
            let link = boxes
                .iter()
                .find(|(link, _)| link.id == id)
                .map(|(link, _)| link)?;
            self.domain_of(link, ip)
        };
        conntrack::cut_denied(host, &boxes, &domain_of).map_err(kernel)?;
        Ok(())
    }

    fn reconcile_blocking(
        &self,
        machines: &[(MachineSpec, EffectivePolicy)],
    ) -> Result<(), EngineError> {
        let mut state = self.lock();
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
        host.nft(&ruleset.full()).map_err(kernel)?;
        state.ruleset = ruleset;
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

    /// Re-applies the whole ruleset if the table is gone or someone else
    /// altered it (a rule, chain, set or element other than the resolver's
    /// learned addresses). Returns true when it repaired something.
    pub fn repair(&self) -> Result<bool, EngineError> {
        let raw = || {
            self.state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let generation = raw().generation;
        // Listed without the lock, so API changes never wait for it; a
        // change made meanwhile makes this look a wash until next time.
        let digest = self.digest(&self.config.table);
        let mut state = raw();
        if state.generation != generation {
            return Ok(false);
        }
        let altered = match (digest, state.seen) {
            (None, _) => true,
            (Some(now), Some((seen_generation, seen))) => {
                seen_generation == generation && seen != now
            }
            (Some(_), None) => false,
        };
        if altered {
            self.metrics
                .repairs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.config
                .host
                .nft(&state.ruleset.full())
                .map_err(kernel)?;
            // The learned elements went with the old table.
            self.directory.forget_written();
            state.seen = self
                .digest(&state.ruleset.config().table)
                .map(|d| (generation, d));
        } else {
            state.seen = digest.map(|d| (generation, d));
        }
        Ok(altered)
    }

    /// A digest of the table without counter values and without the
    /// elements of timeout sets (the resolver adds those all the time).
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
            if let Some(counter) = object
                .get_mut("counter")
                .and_then(serde_json::Value::as_object_mut)
            {
                counter.remove("packets");
                counter.remove("bytes");
            }
            if let Some(set) = object
                .get_mut("set")
                .and_then(serde_json::Value::as_object_mut)
            {
                let learned = set
                    .get("flags")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|flags| flags.iter().any(|f| f == "timeout"));
                if learned {
                    set.remove("elem");
                }
            }
        }
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

/// Restores the ruleset every few seconds if someone flushed or altered it,
/// for as long as the engine lives.
async fn watchdog(engine: Weak<LinuxEngine>) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || engine.repair()).await;
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
