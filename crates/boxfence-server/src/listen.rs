//! Serving the API so that no client can take it from the others: each
//! peer address may hold a bounded number of connections, all of them
//! together another bound, and a connection that does not send a whole
//! request head in time (a slowloris, or an idle keep-alive) is closed.
//! Errors of `accept` (out of file descriptors, say) are waited out, never
//! fatal.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// How many connections the API keeps, and for how long it waits for a
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections from one peer address; past it, a new one is
    /// closed at once. Behind a reverse proxy (one address for every
    /// client) raise it.
    pub per_peer: usize,
    /// Open connections in all.
    pub total: usize,
    /// How long a connection may take to send a request's head, counted
    /// from when the server is ready to read one (so also an idle
    /// keep-alive connection's time between requests).
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            per_peer: 256,
            total: 4096,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// How long open requests get to finish on shutdown (an endless flow-log
/// stream would otherwise hold it forever).
const DRAIN: Duration = Duration::from_secs(10);

/// The API's unix socket: a local client (a CNI plugin) is the operator
/// when the kernel says it runs as root or as one of the allowed users or
/// groups (`SO_PEERCRED`, checked on accept), so it needs no token; the
/// socket file's mode keeps everyone else from connecting at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// Where the socket is made (an old one there is replaced).
    pub path: PathBuf,
    /// Users allowed besides root.
    pub uids: Vec<u32>,
    /// Groups allowed; the socket file is `0660`, owned by root and the
    /// first of them (else root's group).
    pub gids: Vec<u32>,
}

impl UnixSocket {
    /// Binds the socket with its mode and owner.
    pub(crate) fn bind(&self) -> std::io::Result<UnixListener> {
        use std::os::unix::fs::PermissionsExt as _;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match std::fs::remove_file(&self.path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        let listener = UnixListener::bind(&self.path)?;
        std::os::unix::fs::chown(
            &self.path,
            Some(0),
            Some(self.gids.first().copied().unwrap_or(0)),
        )?;
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o660))?;
        Ok(listener)
    }

    fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// A connection's peer: an address, or a local user the unix socket let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// A TCP client.
    Ip(IpAddr),
    /// A unix-socket client, by its credentials.
    Local(LocalPeer),
}

/// A unix-socket client the peer-credential check let in; requests on
/// its connection carry it, and it stands in for the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct LocalPeer {
    /// Its user.
    pub(crate) uid: u32,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ip(ip) => ip.fmt(f),
            Self::Local(peer) => write!(f, "local uid {}", peer.uid),
        }
    }
}

/// Where the API's connections come from.
pub(crate) trait Acceptor: Send + Sync {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection allowed in, and its peer.
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<(Self::Stream, Peer)>>;
}

impl Acceptor for TcpListener {
    type Stream = tokio::net::TcpStream;

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<(Self::Stream, Peer)>> {
        self.poll_accept(cx).map_ok(|(stream, peer)| {
            let _ = stream.set_nodelay(true);
            (stream, Peer::Ip(peer.ip()))
        })
    }
}

/// The unix socket's listener with its rule.
pub(crate) struct UnixAcceptor {
    pub(crate) listener: UnixListener,
    pub(crate) socket: UnixSocket,
}

impl Acceptor for UnixAcceptor {
    type Stream = tokio::net::UnixStream;

    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<(Self::Stream, Peer)>> {
        loop {
            let (stream, _) = std::task::ready!(self.listener.poll_accept(cx))?;
            match stream.peer_cred() {
                Ok(cred) if self.socket.allows(cred.uid(), cred.gid()) => {
                    let peer = LocalPeer { uid: cred.uid() };
                    return Poll::Ready(Ok((stream, Peer::Local(peer))));
                }
                // Closed before a byte is read.
                Ok(cred) => tracing::warn!(
                    uid = cred.uid(),
                    gid = cred.gid(),
                    "unix-socket connection refused: not root nor an allowed user or group"
                ),
                Err(error) => tracing::warn!(%error, "unix-socket peer credentials unreadable"),
            }
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown`.
pub(crate) async fn serve(
    listener: impl Acceptor,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = std::future::poll_fn(|cx| listener.poll_next(cx)) => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    back_off(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&open, peer, limits) else {
            // Closed before a byte is read: costs the peer its connect only.
            tracing::debug!(%peer, "connection refused: limit reached");
            continue;
        };
        let service = match peer {
            Peer::Local(local) => router.clone().layer(Extension(local)),
            Peer::Ip(_) => router.clone(),
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still open after {DRAIN:?} of shutdown were dropped");
    }
    Ok(())
}

/// Waits after a failed `accept`: at once for errors of one connection
/// (it went away), longer when the process is out of resources, which
/// closing connections frees.
async fn back_off(error: &std::io::Error) {
    use std::io::ErrorKind;
    let pause = match error.kind() {
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted => {
            return;
        }
        _ => Duration::from_millis(50),
    };
    tracing::warn!(%error, "accepting an API connection failed; retrying");
    tokio::time::sleep(pause).await;
}

/// Connections open now, in all and by peer address.
#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    by_peer: HashMap<Peer, usize>,
}

/// One open connection's place; given back on drop.
struct Slot {
    open: Arc<Mutex<OpenConnections>>,
    peer: Peer,
}

impl Slot {
    fn take(
        open: &Arc<Mutex<OpenConnections>>,
        peer: Peer,
        limits: ConnectionLimits,
    ) -> Option<Self> {
        let mut counts = open.lock().unwrap_or_else(PoisonError::into_inner);
        let of_peer = counts.by_peer.get(&peer).copied().unwrap_or(0);
        if counts.total >= limits.total || of_peer >= limits.per_peer {
            return None;
        }
        counts.total += 1;
        counts.by_peer.insert(peer, of_peer + 1);
        Some(Self {
            open: Arc::clone(open),
            peer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total -= 1;
        if let Some(of_peer) = counts.by_peer.get_mut(&self.peer) {
            *of_peer -= 1;
            if *of_peer == 0 {
                counts.by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_peer_and_in_all_and_given_back() {
        let limits = ConnectionLimits {
            per_peer: 2,
            total: 3,
            header_timeout: Duration::from_secs(1),
        };
        let open = Arc::default();
        let (a, b) = (
            Peer::Ip("127.0.0.2".parse().expect("ip")),
            Peer::Local(LocalPeer { uid: 0 }),
        );
        let first = Slot::take(&open, a, limits).expect("first");
        let _second = Slot::take(&open, a, limits).expect("second");
        assert!(Slot::take(&open, a, limits).is_none(), "per peer");
        let _other = Slot::take(&open, b, limits).expect("another peer");
        assert!(Slot::take(&open, b, limits).is_none(), "in all");
        drop(first);
        assert!(Slot::take(&open, a, limits).is_some(), "given back");
    }
}
