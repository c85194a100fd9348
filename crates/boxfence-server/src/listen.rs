//! Serving the API so that no client can take it from the others: each
//! peer address may hold a bounded number of connections, all of them
//! together another bound, and a connection that does not send a whole
//! request head in time (a slowloris, or an idle keep-alive) is closed.
//! Errors of `accept` (out of file descriptors, say) are waited out, never
//! fatal.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

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

/// Serves `router` on `listener` within `limits` until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(OpenConnections::default()));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    back_off(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = Slot::take(&open, peer.ip(), limits) else {
            // Closed before a byte is read: costs the peer its connect only.
            tracing::debug!(%peer, "connection refused: limit reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
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
    by_peer: HashMap<IpAddr, usize>,
}

/// One open connection's place; given back on drop.
struct Slot {
    open: Arc<Mutex<OpenConnections>>,
    peer: IpAddr,
}

impl Slot {
    fn take(
        open: &Arc<Mutex<OpenConnections>>,
        peer: IpAddr,
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
        let (a, b): (IpAddr, IpAddr) = (
            "127.0.0.2".parse().expect("ip"),
            "127.0.0.3".parse().expect("ip"),
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
