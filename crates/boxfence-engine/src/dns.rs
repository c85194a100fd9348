//! The engine's side of the built-in resolver: it keeps the resolver's
//! directory of boxes in step with the kernel, writes learned addresses
//! into the kernel sets over netlink (no process per answer), and drops
//! learned addresses a new policy no longer authorises.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxfence_dataplane::nft_netlink::{ElementKey, NftSocket, SetElement};
use boxfence_dataplane::ruleset::{BoxLink, box_learned_set, rule_learned_set};
use boxfence_policy::EffectivePolicy;
use boxfence_resolver::answer::TtlLimits;
use boxfence_resolver::decision::{LearnTarget, NameDecision, decide};
use boxfence_resolver::directory::{BoxEntry, Directory};
use boxfence_resolver::{Learner, Resolver, ResolverConfig};

use crate::EngineError;
use crate::linux::LinuxEngine;

/// Queries per second each box may send to the resolver.
pub const QUERY_RATE_PER_BOX: u32 = 2000;

/// Writes learned addresses into the engine's table.
pub(crate) struct SetWriter {
    table: String,
    /// One socket: the kernel serialises nf_tables transactions of a
    /// namespace anyway.
    socket: Mutex<NftSocket>,
}

impl std::fmt::Debug for SetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetWriter")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl SetWriter {
    pub(crate) fn new(table: String, socket: NftSocket) -> Self {
        Self {
            table,
            socket: Mutex::new(socket),
        }
    }

    fn write(&self, elements: &[SetElement], add: bool) -> Result<(), String> {
        if elements.is_empty() {
            return Ok(());
        }
        let mut socket = self
            .socket
            .lock()
            .map_err(|_| "netlink socket poisoned".to_owned())?;
        // Removal tolerates elements already gone (expired): destroy,
        // not delete (Linux 6.3+).
        let result = if add {
            socket.add_elements(&self.table, elements)
        } else {
            socket.destroy_elements(&self.table, elements)
        };
        result.map_err(|e| e.to_string())
    }
}

/// The set elements that authorise `addresses` for the box through
/// `targets`.
fn elements(
    entry: &BoxEntry,
    targets: &[LearnTarget],
    addresses: &[(IpAddr, Option<Duration>)],
) -> Vec<SetElement> {
    let mut out = Vec::new();
    for target in targets {
        for &(ip, keep) in addresses {
            let (set, key) = match (target, ip) {
                (LearnTarget::Box, IpAddr::V4(v4)) => {
                    (box_learned_set(&entry.id, false), ElementKey::Ipv4(v4))
                }
                (LearnTarget::Box, IpAddr::V6(v6)) => {
                    (box_learned_set(&entry.id, true), ElementKey::Ipv6(v6))
                }
                (
                    LearnTarget::AppRule {
                        fingerprint,
                        rule_index,
                    },
                    IpAddr::V4(v4),
                ) => (
                    rule_learned_set(*fingerprint, *rule_index, false),
                    ElementKey::IfnameIpv4(entry.ifname.clone(), v4),
                ),
                (
                    LearnTarget::AppRule {
                        fingerprint,
                        rule_index,
                    },
                    IpAddr::V6(v6),
                ) => (
                    rule_learned_set(*fingerprint, *rule_index, true),
                    ElementKey::IfnameIpv6(entry.ifname.clone(), v6),
                ),
            };
            out.push(SetElement::new(set, key, keep));
        }
    }
    out
}

impl Learner for LinuxEngine {
    fn learn(
        &self,
        entry: &BoxEntry,
        targets: &[LearnTarget],
        addresses: &[(IpAddr, Duration)],
    ) -> Result<(), String> {
        let writer = self.set_writer().ok_or("no netlink socket to the table")?;
        let addresses: Vec<(IpAddr, Option<Duration>)> = addresses
            .iter()
            .map(|(ip, keep)| (*ip, Some(*keep)))
            .collect();
        writer.write(&elements(entry, targets, &addresses), true)
    }
}

impl LinuxEngine {
    /// Registers or updates boxes in the resolver's directory, and removes
    /// from the box layer's learned set the addresses of names its new
    /// policy no longer allows.
    pub(crate) fn publish(&self, boxes: &[(BoxLink, &EffectivePolicy)]) -> Result<(), EngineError> {
        let directory = self.directory();
        let mut stale = Vec::new();
        for (link, policy) in boxes {
            let addresses = [IpAddr::V4(link.ipv4), IpAddr::V6(link.ipv6)];
            if let Some(previous) = directory.lookup(addresses[0]) {
                for (ip, name) in previous.learned() {
                    let still = matches!(decide(policy, &name), NameDecision::Answer(t) if t.contains(&LearnTarget::Box));
                    if !still {
                        stale.extend(elements(&previous, &[LearnTarget::Box], &[(ip, None)]));
                    }
                }
            }
            let entry = BoxEntry::new(
                link.id.clone(),
                link.ifname.clone(),
                (*policy).clone(),
                QUERY_RATE_PER_BOX,
            );
            directory.insert(&addresses, entry);
        }
        if let Some(writer) = self.set_writer() {
            writer.write(&stale, false).map_err(EngineError::Kernel)?;
        }
        Ok(())
    }

    /// The domain an open flow's address was learned from, for the box.
    pub(crate) fn domain_of(&self, link: &BoxLink, ip: IpAddr) -> Option<String> {
        self.directory()
            .lookup(IpAddr::V4(link.ipv4))?
            .domain_of(ip)
    }

    /// Starts the built-in resolver on its own thread inside the host
    /// namespace, listening on the boxes' gateway addresses.
    pub fn spawn_resolver(
        self: &Arc<Self>,
        upstreams: Vec<SocketAddr>,
        upstream_timeout: Duration,
        ttl: TtlLimits,
    ) -> Result<ResolverHandle, EngineError> {
        let gateways = self.pool().gateways();
        let port = self.resolver_port();
        let config = ResolverConfig {
            listen: vec![
                SocketAddr::new(gateways.ipv4.into(), port),
                SocketAddr::new(gateways.ipv6.into(), port),
            ],
            upstreams,
            upstream_timeout,
            always_blocked: self.always_blocked(),
            ttl,
        };
        let learner: Arc<dyn Learner> = Arc::<Self>::clone(self);
        let resolver = Arc::new(Resolver::new(&config, self.directory(), learner));
        self.set_resolver(Arc::clone(&resolver));
        let host = self.host().clone();
        let serving = Arc::clone(&resolver);
        let engine = Arc::downgrade(self);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let started = host.enter().map_err(|e| e.to_string()).and_then(|()| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
            });
            let runtime = match started {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            runtime.block_on(async move {
                let sockets = match Resolver::bind(&config.listen) {
                    Ok(sockets) => sockets,
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("resolver cannot listen: {error}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut refusals = serving.refusals();
                let recording = async {
                    loop {
                        match refusals.recv().await {
                            Ok(refusal) => {
                                if let Some(engine) = engine.upgrade() {
                                    engine.record_refusal(&refusal);
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                };
                tokio::select! {
                    _ = recording => {}
                    result = serving.serve(sockets) => {
                        if let Err(error) = result {
                            eprintln!("boxfence resolver stopped: {error}");
                        }
                    }
                    _ = stopped => {}
                }
            });
        });
        ready_rx
            .recv()
            .map_err(|_| EngineError::Kernel("resolver thread died".into()))?
            .map_err(EngineError::Kernel)?;
        Ok(ResolverHandle {
            resolver,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A running resolver; dropping it stops it and closes its sockets.
#[derive(Debug)]
pub struct ResolverHandle {
    /// The resolver (counters, refusal events).
    pub resolver: Arc<Resolver>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ResolverHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A fresh directory for an engine.
pub(crate) fn new_directory() -> Arc<Directory> {
    Arc::new(Directory::default())
}
