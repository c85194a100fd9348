//! DNS over TCP from boxes (RFC 7766). A connection holds a file
//! descriptor, so each box may hold only a few at once and all boxes a
//! bounded number; past either cap a new connection is closed as soon as
//! it is accepted. Every read and write has a deadline, so a connection
//! that sends a length and never the query cannot hold its place.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use crate::server::Resolver;
use crate::sockets::Backoff;

/// Connections one box may hold open at once unless configured otherwise:
/// a stub resolver uses one at a time (after a truncated answer), a busy
/// box a few in parallel.
pub const TCP_CONNECTIONS_PER_BOX: usize = 16;
/// Connections all boxes may hold open at once unless configured
/// otherwise: far below the daemon's open-file limit once raised, so the
/// resolver never runs the daemon out of descriptors.
pub const TCP_CONNECTIONS: usize = 1024;

/// First wait after `accept` or `recv_from` failed with the socket still
/// usable (out of descriptors, say); doubled up to [`SOCKET_ERROR_MAX`].
pub(crate) const SOCKET_ERROR_FIRST: Duration = Duration::from_millis(10);
/// Longest wait between two failed `accept`s or `recv_from`s.
pub(crate) const SOCKET_ERROR_MAX: Duration = Duration::from_millis(100);

/// How much of the resolver TCP connections may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections one box may hold open at once.
    pub per_box: usize,
    /// Connections all boxes may hold open at once.
    pub total: usize,
    /// Time a query's length prefix may take on a new connection, the
    /// query's body once its length came, and an answer to be written.
    pub io_timeout: Duration,
    /// Time a connection may wait for its next query.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    /// Boxes sit on the same host (sub-millisecond round trips), so 3 s
    /// for one message is generous yet frees a stalled connection's place
    /// quickly; 10 s between queries lets a client reuse its connection.
    fn default() -> Self {
        Self {
            per_box: TCP_CONNECTIONS_PER_BOX,
            total: TCP_CONNECTIONS,
            io_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The TCP connections open now, per box and in all.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    per_box: HashMap<String, usize>,
    total: usize,
}

/// A connection's place; freed when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    box_id: String,
}

impl Connections {
    /// A place for one more connection of box `box_id`, unless the box or
    /// all boxes hold as many as `limits` allow.
    pub(crate) fn admit(self: &Arc<Self>, box_id: &str, limits: &TcpLimits) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let of_box = open.per_box.get(box_id).copied().unwrap_or(0);
        if of_box >= limits.per_box || open.total >= limits.total {
            return None;
        }
        open.per_box.insert(box_id.to_owned(), of_box + 1);
        open.total += 1;
        Some(Slot {
            connections: Arc::clone(self),
            box_id: box_id.to_owned(),
        })
    }

    /// Connections open now.
    pub(crate) fn total(&self) -> usize {
        self.open.lock().map(|open| open.total).unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Ok(mut open) = self.connections.open.lock() else {
            return;
        };
        open.total = open.total.saturating_sub(1);
        if let Some(count) = open.per_box.get_mut(&self.box_id) {
            *count -= 1;
            if *count == 0 {
                open.per_box.remove(&self.box_id);
            }
        }
    }
}

impl Resolver {
    /// Accepts connections until the listener no longer works. A failed
    /// `accept` that leaves it usable (EMFILE, ECONNABORTED...) is waited
    /// out, never the end.
    pub(crate) async fn serve_tcp(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        let local = listener.local_addr()?;
        let mut backoff = Backoff::new(SOCKET_ERROR_FIRST, SOCKET_ERROR_MAX);
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    backoff.reset();
                    self.admit(stream, peer);
                }
                Err(error) => {
                    self.survive(error, "accept on", local, &mut backoff)
                        .await?
                }
            }
        }
    }

    /// Serves `stream` if its box has room, else closes it at once. A
    /// source that is not a box has none: the resolver answers boxes only.
    fn admit(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let slot = self
            .directory
            .lookup(peer.ip())
            .and_then(|entry| self.connections.admit(&entry.id, &self.tcp));
        match slot {
            Some(slot) => {
                tokio::spawn(Arc::clone(self).serve_connection(stream, peer.ip(), slot));
            }
            None => {
                self.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                // A reset rather than a close: no state is kept for it.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
        }
    }

    async fn serve_connection(self: Arc<Self>, mut stream: TcpStream, peer: IpAddr, _slot: Slot) {
        let limits = self.tcp;
        // The first query is due at once; later ones may keep it waiting.
        let mut wait = limits.io_timeout;
        loop {
            let Some(query) = read_message(&mut stream, wait, limits.io_timeout).await else {
                return;
            };
            let Some(answer) = self.handle(peer, &query, true).await else {
                return;
            };
            let Ok(len) = u16::try_from(answer.len()) else {
                return;
            };
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            if !matches!(
                timeout(limits.io_timeout, stream.write_all(&framed)).await,
                Ok(Ok(()))
            ) {
                return;
            }
            wait = limits.idle_timeout;
        }
    }
}

/// One length-prefixed message: its length within `length_within`, then
/// the message within `body_within`.
async fn read_message(
    stream: &mut TcpStream,
    length_within: Duration,
    body_within: Duration,
) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    timeout(length_within, stream.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    timeout(body_within, stream.read_exact(&mut message))
        .await
        .ok()?
        .ok()?;
    Some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_and_all_boxes_are_capped_and_closing_frees_a_place() {
        let limits = TcpLimits {
            per_box: 2,
            total: 3,
            ..TcpLimits::default()
        };
        let connections = Arc::new(Connections::default());
        let a1 = connections.admit("a", &limits).expect("first of a");
        let _a2 = connections.admit("a", &limits).expect("second of a");
        assert!(connections.admit("a", &limits).is_none(), "a is at its cap");
        let _b1 = connections.admit("b", &limits).expect("b has room");
        assert!(
            connections.admit("c", &limits).is_none(),
            "all boxes are at the total"
        );
        drop(a1);
        assert_eq!(connections.total(), 2);
        assert!(connections.admit("c", &limits).is_some(), "a place freed");
    }
}
