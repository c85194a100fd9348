//! The resolver's sockets and the life of one query.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use boxfence_policy::AlwaysBlocked;
use hickory_proto::op::{Message, ResponseCode};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::broadcast;

use crate::answer::{Question, TtlLimits, screen};
use crate::decision::{LearnTarget, NameDecision, decide};
use crate::directory::{BoxEntry, Directory};
use crate::histogram::Histogram;
use crate::sockets::{Backoff, bind_tcp, bind_udp};
use crate::supervisor::Health;
use crate::tcp::{Connections, SOCKET_ERROR_FIRST, SOCKET_ERROR_MAX, TcpLimits};
use crate::upstream::Upstreams;

/// Completes once a [`Learner`] has the addresses enforced (or failed to).
pub type Learning = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// Authorises an answer's addresses in the kernel.
pub trait Learner: Send + Sync + 'static {
    /// Adds `addresses` (each kept for its duration) to the sets of
    /// `targets` for the box. The returned future must complete only once
    /// they are enforced, since the box gets the answer right after.
    fn learn(
        &self,
        entry: &BoxEntry,
        targets: &[LearnTarget],
        addresses: &[(IpAddr, Duration)],
    ) -> Learning;
}

/// A query the resolver refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The box (none: the source is not a box).
    pub machine_id: Option<String>,
    /// The source address.
    pub source: IpAddr,
    /// The name asked for.
    pub name: String,
    /// Why.
    pub reason: String,
}

/// How often one answer is decided again because the box's policy changed
/// meanwhile, before it is given up as SERVFAIL.
const MAX_DECISIONS: usize = 3;

/// Why an answer's addresses were not authorised.
enum Unauthorised {
    /// The box's current policy refuses the name.
    Refused(Arc<BoxEntry>, String),
    /// The kernel write failed, or the box kept changing or went away.
    Failed,
}

/// Counters, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Queries received from anywhere.
    pub queries: AtomicU64,
    /// Queries refused locally.
    pub refused: AtomicU64,
    /// Queries whose upstreams all failed.
    pub upstream_errors: AtomicU64,
    /// Time from a query's arrival to its answer (refused or forwarded,
    /// including the kernel set insertion).
    pub latency: Histogram,
    /// TCP connections closed as soon as accepted: their box (or all
    /// boxes) held as many as allowed, or the source is not a box.
    pub tcp_refused: AtomicU64,
    /// Failed `accept`s and `recv_from`s that were waited out (out of file
    /// descriptors, say).
    pub socket_errors: AtomicU64,
    /// Times serving ended and the sockets were bound again.
    pub restarts: AtomicU64,
}

/// How the resolver runs.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Addresses to listen on (UDP and TCP): the boxes' gateway addresses.
    pub listen: Vec<SocketAddr>,
    /// Upstream servers, tried in turn.
    pub upstreams: Vec<SocketAddr>,
    /// How long each upstream gets.
    pub upstream_timeout: Duration,
    /// Always-blocked ranges for rebinding protection (minus exemptions).
    pub always_blocked: Arc<AlwaysBlocked>,
    /// TTL ceiling, floor and grace.
    pub ttl: TtlLimits,
    /// Queries per second each box may send (bursts of twice that); the
    /// rest are refused.
    pub query_rate_per_box: u32,
    /// Caps and deadlines of TCP connections.
    pub tcp: TcpLimits,
}

/// The resolver.
pub struct Resolver {
    pub(crate) directory: Arc<Directory>,
    upstreams: Upstreams,
    learner: Arc<dyn Learner>,
    always_blocked: Arc<AlwaysBlocked>,
    ttl: TtlLimits,
    query_rate_per_box: u32,
    refusals: broadcast::Sender<Refusal>,
    pub(crate) tcp: TcpLimits,
    pub(crate) connections: Arc<Connections>,
    pub(crate) health: Health,
    /// Counters.
    pub stats: Stats,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// A resolver for the boxes of `directory`.
    pub fn new(
        config: &ResolverConfig,
        directory: Arc<Directory>,
        learner: Arc<dyn Learner>,
    ) -> Self {
        Self {
            directory,
            upstreams: Upstreams::new(config.upstreams.clone(), config.upstream_timeout),
            learner,
            always_blocked: Arc::clone(&config.always_blocked),
            ttl: config.ttl,
            query_rate_per_box: config.query_rate_per_box,
            refusals: broadcast::channel(1024).0,
            tcp: config.tcp,
            connections: Arc::default(),
            health: Health::default(),
            stats: Stats::default(),
        }
    }

    /// Refusals as they happen (a slow reader misses some, never blocks).
    pub fn refusals(&self) -> broadcast::Receiver<Refusal> {
        self.refusals.subscribe()
    }

    /// TCP connections open now.
    pub fn tcp_connections(&self) -> usize {
        self.connections.total()
    }

    /// Binds UDP and TCP on every listen address, even before a box link
    /// carries it. Must run inside a tokio runtime.
    pub fn bind(listen: &[SocketAddr]) -> std::io::Result<Vec<(UdpSocket, TcpListener)>> {
        listen
            .iter()
            .map(|&address| {
                let udp = UdpSocket::from_std(bind_udp(address)?)?;
                let tcp = TcpListener::from_std(bind_tcp(address)?)?;
                Ok((udp, tcp))
            })
            .collect()
    }

    /// Serves on sockets from [`bind`](Self::bind) until one of them no
    /// longer works or its task panics (errors that leave a socket usable
    /// are waited out); [`supervise`](Self::supervise) starts over then.
    pub async fn serve(
        self: Arc<Self>,
        sockets: Vec<(UdpSocket, TcpListener)>,
    ) -> std::io::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for (udp, tcp) in sockets {
            tasks.spawn(Arc::clone(&self).serve_udp(udp));
            tasks.spawn(Arc::clone(&self).serve_tcp(tcp));
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(std::io::Error::other)??;
        }
        Ok(())
    }

    /// Receives queries until the socket no longer works; each is answered
    /// by a task of its own. A failed receive that leaves the socket usable
    /// is waited out, never the end.
    async fn serve_udp(self: Arc<Self>, socket: UdpSocket) -> std::io::Result<()> {
        let local = socket.local_addr()?;
        let socket = Arc::new(socket);
        let mut buffer = vec![0u8; 4096];
        let mut backoff = Backoff::new(SOCKET_ERROR_FIRST, SOCKET_ERROR_MAX);
        loop {
            let (n, peer) = match socket.recv_from(&mut buffer).await {
                Ok(received) => received,
                Err(error) => {
                    self.survive(error, "receive on", local, &mut backoff)
                        .await?;
                    continue;
                }
            };
            backoff.reset();
            let query = buffer[..n].to_vec();
            // Weak: once serving ends, the socket closes at once, so it can
            // be bound again while answers are still being worked out.
            let (resolver, socket) = (Arc::clone(&self), Arc::downgrade(&socket));
            tokio::spawn(async move {
                if let Some(answer) = resolver.handle(peer.ip(), &query, false).await
                    && let Some(socket) = Weak::upgrade(&socket)
                {
                    let _ = socket.send_to(&answer, peer).await;
                }
            });
        }
    }

    /// Answers one query from `source`; `None` drops it (malformed).
    pub async fn handle(&self, source: IpAddr, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let started = std::time::Instant::now();
        let answer = self.answer(source, query, tcp).await;
        self.stats.latency.observe(started.elapsed());
        answer
    }

    async fn answer(&self, source: IpAddr, query: &[u8], tcp: bool) -> Option<Vec<u8>> {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let question = Question::parse(query)?;
        let Some(entry) = self.directory.lookup(source) else {
            return self.refuse(&question, None, source, "the resolver answers boxes only");
        };
        if !entry.admit(self.query_rate_per_box) {
            return self.refuse(
                &question,
                Some(&entry),
                source,
                "query rate limit of this box exceeded",
            );
        }
        let name = question.canonical_name();
        if let NameDecision::Refuse(reason) = decide(&entry.policy, &name) {
            return self.refuse(&question, Some(&entry), source, &reason);
        }
        let upstream = match self.upstreams.ask(query, tcp).await {
            Ok(bytes) => bytes,
            Err(_) => {
                self.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
                return question.encode(&question.error(ResponseCode::ServFail));
            }
        };
        let Ok(answer) = Message::from_vec(&upstream) else {
            return question.encode(&question.error(ResponseCode::ServFail));
        };
        let screened = screen(&question, answer, &self.always_blocked, self.ttl);
        if let Err(refusal) = self
            .authorise(entry, source, &name, &screened.learned)
            .await
        {
            return match refusal {
                Unauthorised::Refused(entry, reason) => {
                    self.refuse(&question, Some(&entry), source, &reason)
                }
                Unauthorised::Failed => question.encode(&question.error(ResponseCode::ServFail)),
            };
        }
        let mut bytes = question.encode(&screened.message)?;
        let limit = usize::from(question.message.max_payload().max(512));
        if !tcp && bytes.len() > limit {
            let mut truncated = screened.message.truncate();
            truncated.set_truncated(true);
            bytes = question.encode(&truncated)?;
        }
        Some(bytes)
    }

    /// Has the kernel authorise an answer's `learned` addresses for the
    /// box before it gets the answer: not authorised, not delivered (the
    /// box must never hold an address the kernel would refuse). The
    /// decision is made again under the box's current policy whenever an
    /// update replaced it while the upstream answered or the write ran, so
    /// an answer decided under a removed domain never adds its addresses
    /// once the update is enforced.
    async fn authorise(
        &self,
        mut entry: Arc<BoxEntry>,
        source: IpAddr,
        name: &str,
        learned: &[(IpAddr, Duration)],
    ) -> Result<(), Unauthorised> {
        for _ in 0..MAX_DECISIONS {
            let targets = match decide(&entry.policy, name) {
                NameDecision::Refuse(reason) => return Err(Unauthorised::Refused(entry, reason)),
                NameDecision::Answer(targets) if targets.is_empty() => return Ok(()),
                NameDecision::Answer(targets) => targets,
            };
            // Half the grace: the box's copy of the answer always expires
            // at least that long before the kernel's element.
            let to_write = entry.to_write(name, learned, self.ttl.grace / 2);
            if to_write.is_empty() {
                return Ok(());
            }
            let started = entry.learn(name, &to_write, || {
                self.learner.learn(&entry, &targets, &to_write)
            });
            if let Some(learning) = started {
                if learning.await.is_err() {
                    entry.unlearn(name, &to_write);
                    return Err(Unauthorised::Failed);
                }
                if entry.is_current() {
                    return Ok(());
                }
            }
            entry = self.directory.lookup(source).ok_or(Unauthorised::Failed)?;
        }
        Err(Unauthorised::Failed)
    }

    fn refuse(
        &self,
        question: &Question,
        entry: Option<&BoxEntry>,
        source: IpAddr,
        reason: &str,
    ) -> Option<Vec<u8>> {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        let _ = self.refusals.send(Refusal {
            machine_id: entry.map(|e| e.id.clone()),
            source,
            name: question.canonical_name(),
            reason: reason.to_owned(),
        });
        question.encode(&question.refusal(reason))
    }
}
