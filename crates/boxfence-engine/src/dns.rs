//! The engine's side of the built-in resolver: it keeps the resolver's
//! directory of boxes in step with the kernel, writes learned addresses
//! into the kernel sets over netlink (no process per answer), and drops
//! learned addresses a new policy no longer authorises.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use boxfence_dataplane::nft_netlink::{ElementKey, SetElement};
use boxfence_dataplane::ruleset::{BoxLink, box_learned_set, rule_learned_set};
use boxfence_policy::EffectivePolicy;
use boxfence_resolver::answer::TtlLimits;
use boxfence_resolver::decision::{LearnTarget, NameDecision, decide};
use boxfence_resolver::directory::{BoxEntry, Directory};
use boxfence_resolver::{Learner, Learning, Resolver, ResolverConfig, TcpLimits};

use crate::EngineError;
use crate::linux::LinuxEngine;
pub(crate) use crate::set_writer::SetWriter;

/// Queries per second each box may send to the resolver unless the
/// daemon's configuration says otherwise (bursts of twice that). Above what
/// one busy box needs (a parallel build or `npm install` asks A and AAAA
/// for every name, and boxes have no cache of their own); refusing beyond
/// it is cheap.
pub const QUERY_RATE_PER_BOX: u32 = 2000;

/// The set elements that authorise `addresses` for box `id` (host-side
/// interface `ifname`) through `targets`.
fn elements(
    (id, ifname): (&str, &str),
    targets: &[LearnTarget],
    addresses: &[(IpAddr, Option<Duration>)],
) -> Vec<SetElement> {
    let mut out = Vec::new();
    for target in targets {
        for &(ip, keep) in addresses {
            let (set, key) = match (target, ip) {
                (LearnTarget::Box, IpAddr::V4(v4)) => {
                    (box_learned_set(id, false), ElementKey::Ipv4(v4))
                }
                (LearnTarget::Box, IpAddr::V6(v6)) => {
                    (box_learned_set(id, true), ElementKey::Ipv6(v6))
                }
                (
                    LearnTarget::AppRule {
                        fingerprint,
                        rule_index,
                    },
                    IpAddr::V4(v4),
                ) => (
                    rule_learned_set(*fingerprint, *rule_index, false),
                    ElementKey::IfnameIpv4(ifname.to_owned(), v4),
                ),
                (
                    LearnTarget::AppRule {
                        fingerprint,
                        rule_index,
                    },
                    IpAddr::V6(v6),
                ) => (
                    rule_learned_set(*fingerprint, *rule_index, true),
                    ElementKey::IfnameIpv6(ifname.to_owned(), v6),
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
    ) -> Learning {
        let Some(writer) = self.set_writer() else {
            return Box::pin(std::future::ready(Err(
                "no netlink socket to the table".to_owned()
            )));
        };
        let addresses: Vec<(IpAddr, Option<Duration>)> = addresses
            .iter()
            .map(|(ip, keep)| (*ip, Some(*keep)))
            .collect();
        let written = writer.add(elements((&entry.id, &entry.ifname), targets, &addresses));
        Box::pin(async move {
            written
                .await
                .unwrap_or_else(|_| Err("set writer stopped".to_owned()))
        })
    }
}

impl LinuxEngine {
    /// Registers or updates boxes in the resolver's directory, and removes
    /// from the box layer's learned set the addresses of names its new
    /// policy no longer allows. An answer decided under the old policy
    /// either wrote before the switch (and is removed here: its write was
    /// queued first) or writes nothing, so once this returns no address
    /// the new policy refuses is authorised.
    pub(crate) fn publish(&self, boxes: &[(BoxLink, &EffectivePolicy)]) -> Result<(), EngineError> {
        let directory = self.directory();
        let mut stale = Vec::new();
        for (link, policy) in boxes {
            let addresses = [IpAddr::V4(link.ipv4), IpAddr::V6(link.ipv6)];
            let entry = BoxEntry::new(link.id.clone(), link.ifname.clone(), (*policy).clone());
            let answered = |name: &str| matches!(decide(policy, name), NameDecision::Answer(_));
            let learned = directory.insert(&addresses, entry, answered);
            for (ip, name) in learned {
                let still = matches!(decide(policy, &name), NameDecision::Answer(t) if t.contains(&LearnTarget::Box));
                if !still {
                    let target = [LearnTarget::Box];
                    stale.extend(elements((&link.id, &link.ifname), &target, &[(ip, None)]));
                }
            }
        }
        if let Some(writer) = self.set_writer() {
            writer.write(stale, false).map_err(EngineError::Kernel)?;
        }
        Ok(())
    }

    /// What of the engine's own services does not work now, each named:
    /// the resolver while it is not serving. Parts the engine does not run
    /// (no resolver was spawned) are not counted.
    pub fn health(&self) -> Result<(), Vec<String>> {
        match self.resolver().map(|resolver| resolver.health()) {
            Some(Err(why)) => Err(vec![format!("resolver: {why}")]),
            _ => Ok(()),
        }
    }

    /// The domain that authorised an open flow's address for the box,
    /// also after the address expired: open connections outlive the
    /// expiry, so a later update judges them by what it changed.
    pub(crate) fn authorised_by(&self, link: &BoxLink, ip: IpAddr) -> Option<String> {
        self.directory()
            .lookup(IpAddr::V4(link.ipv4))?
            .authorised_by(ip)
    }

    /// Starts the built-in resolver on its own thread inside the host
    /// namespace, listening on the boxes' gateway addresses; each box may
    /// send it `query_rate_per_box` queries per second and hold TCP
    /// connections within `tcp`. It is restarted whenever it stops serving
    /// (see [`health`](Self::health)).
    pub fn spawn_resolver(
        self: &Arc<Self>,
        upstreams: Vec<SocketAddr>,
        upstream_timeout: Duration,
        ttl: TtlLimits,
        query_rate_per_box: u32,
        tcp: TcpLimits,
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
            query_rate_per_box,
            tcp,
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
                tokio::spawn(record_refusals(serving.refusals(), engine));
                let supervised = serving.supervise(config.listen, sockets);
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    () = supervised => {}
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

/// Hands the resolver's refusals to the engine's flow log.
async fn record_refusals(
    mut refusals: tokio::sync::broadcast::Receiver<boxfence_resolver::Refusal>,
    engine: std::sync::Weak<LinuxEngine>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match refusals.recv().await {
            Ok(refusal) => {
                if let Some(engine) = engine.upgrade() {
                    engine.record_refusal(&refusal);
                }
            }
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
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
