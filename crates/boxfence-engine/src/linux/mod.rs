//! The engine over the Linux data plane: boxes are network namespaces,
//! their policies nftables objects, changed in one transaction each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use boxfence_dataplane::HostNetns;
use boxfence_dataplane::conntrack::{Conntrack, Entry};
use boxfence_dataplane::features::{FastPath, Feature, KernelFeatures, Paths};
use boxfence_dataplane::links::LinkConfig;
use boxfence_dataplane::nft_watch::NftWatch;
use boxfence_dataplane::routing::FailClosedRouting;
use boxfence_dataplane::ruleset::{Batch, BoxLink, NameCheck, Ruleset, TableConfig};
use boxfence_policy::{AlwaysBlocked, EffectivePolicy, FlowEvent};

use boxfence_dataplane::nft_netlink::NftSocket;
use boxfence_resolver::directory::Directory;

use crate::dns::{SetWriter, new_directory};
use crate::flowlog::FlowLog;
use crate::metrics::EngineMetrics;
use crate::{AddressPool, Attachment, Engine, EngineError, ExecOutput, ExecRequest, MachineSpec};

mod changes;
mod flows;
mod sandbox;
mod threads;
mod watchdog;

pub use sandbox::SandboxConfig;
use threads::{Worker, on_own_thread};
use watchdog::{Watch, watchdog};

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
    /// How boxes' containers are made.
    pub sandbox: SandboxConfig,
    /// Where per-box files (resolv.conf) and the containers' bundles live.
    pub state_dir: PathBuf,
    /// First policy-routing rule preference (eight are used).
    pub rule_pref: u32,
    /// The mark bit of box traffic (name checks use the four above it).
    pub mark: u32,
    /// The NFLOG group its denials are logged to, unique among the
    /// engines of the namespace (the kernel gives a group one reader).
    pub log_group: u16,
    /// Port of the built-in resolver.
    pub resolver_port: u16,
    /// Where the commands run (tests use a scratch namespace).
    pub host: HostNetns,
    /// Kernel features not to use even where the kernel has them: their
    /// fallbacks run instead (tests force each fallback this way, and
    /// `[network] flowtable = false` avoids the flowtable).
    pub avoid: Vec<Feature>,
    /// The NFQUEUE that name checks of domain-authorised flows use (issue
    /// 19), unique among the engines of the namespace; `None`: names are
    /// not checked (`[network] name_check = "off"`).
    pub name_check: Option<u16>,
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
    /// The boxes on namespaces someone else made, by id.
    attached: HashMap<String, Attachment>,
}

impl State {
    /// Commits one batch over the engine's socket.
    fn commit(&mut self, batch: &Batch) -> Result<(), String> {
        self.socket
            .apply(batch.table(), batch.commands())
            .map_err(|e| e.to_string())
    }
}

/// The Linux engine. Changes are serialised: the kernel sees batches in
/// the order of the model.
#[derive(Debug)]
pub struct LinuxEngine {
    config: LinuxConfig,
    /// What the kernel was found to have, and the paths taken for it.
    kernel: KernelFeatures,
    paths: Paths,
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
    /// Whether the name checker is bound to its queue, or asked to leave
    /// it (a test of the checker being down).
    pub(crate) name_checker: crate::name_check::CheckerState,
    /// The boxes' containers, or why there can be none.
    sandboxes: Result<boxfence_sandbox::Sandboxes, String>,
    /// The ctnetlink socket that cuts flows (used under the state lock).
    conntrack: Mutex<Conntrack>,
    /// What the watchdog knows between its checks.
    watch: Mutex<Watch>,
    /// The thread every change runs on.
    changes: Worker,
    /// The thread the watchdog's checks run on: a listing takes seconds
    /// at 1,000 boxes and must not hold up changes.
    checks: Worker,
}

/// The uplinks that exist in `host`, or `None` when it cannot be
/// entered: a flowtable refuses a device that is not there (one that comes
/// later joins at the watchdog's next check, see `follow_uplinks`).
fn present(host: &HostNetns, uplinks: &[String]) -> Option<Vec<String>> {
    let exists = |name: &str| nix::net::if_::if_nametoindex(name).is_ok();
    host.in_netns(|| {
        uplinks
            .iter()
            .filter(|u| exists(u))
            .cloned()
            .collect::<Vec<_>>()
    })
    .ok()
}

impl LinuxEngine {
    /// Sets up the host (forwarding, fail-closed routing, an empty table)
    /// and starts the watchdog that restores a flushed ruleset.
    pub fn start(config: LinuxConfig) -> Result<Arc<Self>, EngineError> {
        let features = KernelFeatures::probe(&config.avoid).map_err(kernel)?;
        features.require()?;
        if config.name_check.is_some() {
            features.require_for_name_check()?;
        }
        let paths = features.paths();
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
            log_group: config.log_group,
            always_blocked: config.always_blocked.intervals(),
            flowtable_uplinks: (paths.forwarding == FastPath::Flowtable)
                .then(|| present(&config.host, &config.uplinks).unwrap_or_default()),
            name_check: config
                .name_check
                .map(|queue| NameCheck::new(queue, paths.queue, config.mark)),
        };
        let link_config = LinkConfig {
            netns_prefix: config.netns_prefix.clone(),
            ifname_prefix: config.ifname_prefix.clone(),
            gateway4: gateways.ipv4,
            gateway6: gateways.ipv6,
        };
        std::fs::create_dir_all(&config.state_dir).map_err(kernel)?;
        let mut ruleset = Ruleset::new(table);
        let open = || {
            let mut socket = config
                .host
                .in_netns(NftSocket::open)
                .map_err(kernel)?
                .map_err(kernel)?;
            socket.set_refresh_mode(paths.refresh);
            socket.set_removal_mode(paths.removal);
            Ok::<_, EngineError>(socket)
        };
        let mut socket = open()?;
        let mut nft = NftWatch::open_in(&config.host).map_err(kernel)?;
        // A table left by an earlier run keeps enforcing the last-applied
        // policies until reconcile replaces it in one transaction.
        if !nft.table_exists(&config.table).map_err(kernel)? {
            let full = ruleset.full();
            socket
                .apply(full.table(), full.commands())
                .map_err(kernel)?;
        }
        let conntrack = Conntrack::open_in(&config.host).map_err(kernel)?;
        let images =
            (config.sandbox.images.clone()).unwrap_or_else(|| config.state_dir.join("images"));
        let sandboxes = boxfence_sandbox::Sandboxes::new(
            config.sandbox.runtime,
            &config.state_dir.join("sandbox"),
            &config.sandbox.init,
            &images,
        )
        .map_err(|e| e.to_string());
        let engine = Arc::new(Self {
            kernel: features,
            paths,
            link_config,
            state: Mutex::new(State {
                ruleset,
                socket,
                links: BTreeMap::new(),
                flows: HashMap::new(),
                generation: 0,
                attached: HashMap::new(),
            }),
            directory: new_directory(),
            // Kept across restarts: the last events per box, and which
            // boxes log their allowed connections.
            flow_log: Arc::new(FlowLog::persistent(&config.state_dir.join("flowlog"))),
            metrics: EngineMetrics::default(),
            resolver: std::sync::OnceLock::new(),
            log_allowed: Mutex::default(),
            new_flow_reader: std::sync::OnceLock::new(),
            name_checker: crate::name_check::CheckerState::default(),
            sandboxes,
            conntrack: Mutex::new(conntrack),
            watch: Mutex::new(Watch::new(nft)),
            changes: Worker::start("boxfence-changes")?,
            checks: Worker::start("boxfence-watchdog")?,
            set_writer: Some(SetWriter::new(config.table.clone(), open()?)),
            config,
        });
        engine
            .routing()
            .install(&engine.config.host)
            .map_err(kernel)?;
        engine.spawn_packet_log().map_err(kernel)?;
        engine.log_allowed_again().map_err(kernel)?;
        if let Some(marks) = engine
            .state
            .lock()
            .ok()
            .and_then(|s| s.ruleset.config().name_check)
        {
            engine.spawn_name_checker(marks).map_err(kernel)?;
        }
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
        let attached = std::mem::take(&mut state.attached);
        for link in std::mem::take(&mut state.links).values() {
            if let Ok(sandboxes) = &self.sandboxes
                && !attached.contains_key(&link.id)
                && let Err(error) = sandboxes.delete(&self.link_config.netns(&link.id))
            {
                errors.push(error.to_string());
            }
            if let Err(error) = self.link_config.delete(host, link) {
                errors.push(error.to_string());
            }
            let _ = std::fs::remove_dir_all(self.config.state_dir.join(&link.id));
        }
        let teardown = state.ruleset.teardown();
        if let Err(error) = state.commit(&teardown) {
            errors.push(error);
        }
        if let Err(error) = self.routing().uninstall(host) {
            errors.push(error.to_string());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Kernel(errors.join("; ")))
        }
    }

    /// What probing found of the kernel's features.
    pub fn kernel_features(&self) -> &KernelFeatures {
        &self.kernel
    }

    /// The path each part of the data plane takes on this kernel.
    pub fn paths(&self) -> Paths {
        self.paths
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
    /// The first box link that `pred` accepts.
    pub(crate) fn link_where(&self, pred: impl Fn(&BoxLink) -> bool) -> Option<BoxLink> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.links.values().find(|link| pred(link)).cloned()
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

    pub(crate) fn log_group(&self) -> u16 {
        self.config.log_group
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
    /// compares what it lists next with the model, not with its last
    /// listing.
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

    /// Runs `f` while holding the engine's lock, so no change (and no
    /// repair) reaches the kernel meanwhile. For tests of failure modes.
    pub fn while_locked<T>(&self, f: impl FnOnce() -> T) -> T {
        let _state = self.lock();
        f()
    }

    /// `policy` as this engine enforces it: names are checked iff its
    /// configuration says so, whatever the caller assumed.
    pub fn as_enforced(&self, policy: &EffectivePolicy) -> EffectivePolicy {
        policy
            .clone()
            .with_name_check(self.config.name_check.is_some())
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

fn kernel(error: impl std::fmt::Display) -> EngineError {
    EngineError::Kernel(error.to_string())
}

/// Runs a data-plane change on the engine's change thread.
async fn change<T: Send + 'static>(
    engine: &Arc<LinuxEngine>,
    work: impl FnOnce(&LinuxEngine) -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    let worker = Arc::clone(engine);
    engine.changes.run(move || work(&worker)).await
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
        if let Some(image) = &machine.image {
            self.0.check_image(image)?;
        }
        let (spec, policy) = (machine.clone(), self.0.as_enforced(policy));
        let link = change(&self.0, move |engine| {
            engine.create_blocking(&spec, &policy)?;
            engine.link(&spec)
        })
        .await?;
        if machine.attachment.is_some() {
            // Its processes are the runtime's: no sandbox.
            return Ok(());
        }
        let engine = Arc::clone(&self.0);
        let shape = machine.clone();
        let started = on_own_thread("boxfence-create", move || {
            engine.start_sandbox(&link, &shape)
        })
        .await;
        if let Err(error) = started {
            // No box without its sandbox: its namespaces and network go too.
            let id = machine.id.clone();
            let _ = change(&self.0, move |engine| {
                let _ = engine.stop_sandbox(&id);
                engine.delete_blocking(&id)
            })
            .await;
            return Err(error);
        }
        Ok(())
    }

    async fn delete_machine(&self, id: &str) -> Result<(), EngineError> {
        let (engine, owned) = (Arc::clone(&self.0), id.to_owned());
        // Its processes end before its network does (an attached box's
        // are the runtime's).
        let stopped = if self.0.is_attached(id) {
            Ok(())
        } else {
            on_own_thread("boxfence-delete", move || engine.stop_sandbox(&owned)).await
        };
        let id = id.to_owned();
        change(&self.0, move |engine| engine.delete_blocking(&id)).await?;
        stopped
    }

    async fn apply(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError> {
        let policies: Vec<_> = policies.iter().map(|p| self.0.as_enforced(p)).collect();
        change(&self.0, move |engine| engine.apply_blocking(&policies)).await
    }

    async fn reconcile(
        &self,
        machines: &[(MachineSpec, EffectivePolicy)],
    ) -> Result<(), EngineError> {
        let (engine, keep) = (
            Arc::clone(&self.0),
            machines
                .iter()
                .map(|(m, _)| m.id.clone())
                .collect::<Vec<_>>(),
        );
        let mut errors = on_own_thread("boxfence-reconcile", move || {
            Ok(engine.remove_stale_sandboxes(&keep))
        })
        .await?;
        let owned: Vec<_> = machines
            .iter()
            .map(|(machine, policy)| (machine.clone(), self.0.as_enforced(policy)))
            .collect();
        change(&self.0, move |engine| engine.reconcile_blocking(&owned)).await?;
        let engine = Arc::clone(&self.0);
        let links: Vec<_> = machines
            .iter()
            .filter(|(machine, _)| machine.attachment.is_none())
            .filter_map(|(machine, _)| Some((self.0.link(machine).ok()?, machine.clone())))
            .collect();
        errors.extend(
            on_own_thread("boxfence-reconcile", move || {
                Ok(engine.ensure_sandboxes(&links))
            })
            .await?,
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Sandbox(errors.join("; ")))
        }
    }

    async fn check_machine(&self, id: &str) -> Result<(), EngineError> {
        let (engine, id) = (Arc::clone(&self.0), id.to_owned());
        // On the watchdog's thread: a reading of the table takes long at
        // 1,000 boxes, and changes must not wait behind it.
        self.0.checks.run(move || engine.check_blocking(&id)).await
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, EngineError> {
        let (id, request) = (id.to_owned(), request.clone());
        let engine = Arc::clone(&self.0);
        // A thread of its own: an exec may last its whole timeout, and
        // the server caps how many run at once, per box, app and host.
        on_own_thread("boxfence-exec", move || engine.exec_blocking(&id, &request)).await
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

    fn health(&self) -> Result<(), Vec<String>> {
        self.0.health()
    }

    fn check_image(&self, image: &str) -> Result<(), EngineError> {
        self.0.check_image(image)
    }

    fn host_report(&self) -> boxfence_policy::HostReport {
        let (engine, host) = (&self.0, &self.0.config.host);
        // Read where the engine works: its uplinks and sysctls are there.
        let mut report = host
            .in_netns(|| crate::host::gather(Ok(&engine.kernel), Some(&engine.config.uplinks)))
            .unwrap_or_else(|error| crate::host::gather(Err(&error.to_string()), None));
        let sandbox = &engine.config.sandbox;
        crate::host::require_sandbox(&mut report, sandbox.runtime, &sandbox.init);
        report
    }
}
