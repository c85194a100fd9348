//! Queries to one upstream server over UDP, on a few shared connected
//! sockets rather than one socket per query (socket, bind, connect,
//! epoll registration and close cost more than the query itself).
//!
//! Spoofing resistance stays where a socket per query had it: every query
//! leaves with a fresh random id, sockets retire after a few hundred
//! queries or a few seconds so source ports keep changing, the kernel
//! delivers to a connected socket only what comes from the server's
//! address, and a reply must carry a pending id *and* echo that query's
//! question.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::answer::question_len;

/// Sockets in use at once per server: queries rotate over them, so their
/// waiter tables (one lock each) split the load.
const SOCKETS: usize = 4;
/// Queries a socket carries before a fresh one (a new random source port)
/// takes its place.
const USES_PER_SOCKET: u32 = 256;
/// A socket also retires after this long, so a quiet resolver changes
/// ports too.
const MAX_AGE: Duration = Duration::from_secs(10);
/// How often an idle reader checks whether its socket is still wanted.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Largest DNS message over UDP we accept from upstream.
const MAX_UDP: usize = 65_535;
/// Bytes of the DNS header.
const HEADER_LEN: usize = 12;

/// One upstream server over UDP.
#[derive(Debug)]
pub(crate) struct UdpUpstream {
    server: SocketAddr,
    slots: [ArcSwapOption<Channel>; SOCKETS],
    next: AtomicU32,
}

impl UdpUpstream {
    pub(crate) fn new(server: SocketAddr) -> Self {
        Self {
            server,
            slots: Default::default(),
            next: AtomicU32::new(0),
        }
    }

    /// Sends `query` and returns the reply to it, with the query's own id.
    /// Must run inside a tokio runtime (the one that serves the replies).
    pub(crate) async fn ask(&self, query: &[u8]) -> std::io::Result<Vec<u8>> {
        self.channel()?.ask(query).await
    }

    /// A socket with uses left, opening a fresh one in place of a retired
    /// one.
    fn channel(&self) -> std::io::Result<Arc<Channel>> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let slot = &self.slots[turn % SOCKETS];
        if let Some(channel) = slot.load_full()
            && channel.take_use()
        {
            return Ok(channel);
        }
        let fresh = Channel::open(self.server)?;
        fresh.take_use();
        slot.store(Some(Arc::clone(&fresh)));
        tokio::spawn(read_replies(Arc::clone(&fresh)));
        Ok(fresh)
    }
}

/// A connected socket and the queries waiting on it.
#[derive(Debug)]
struct Channel {
    socket: UdpSocket,
    uses_left: AtomicU32,
    opened: Instant,
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    by_id: HashMap<u16, Waiter>,
    /// Random ids drawn ahead, so the OS is asked once per batch.
    ids: Vec<u16>,
    /// The reader failed: nobody may wait here any more.
    closed: bool,
}

/// A pending query. It keeps its id until the query is over (answered,
/// failed or timed out), so the id is never reused while a late copy of
/// the reply could still come back.
#[derive(Debug)]
struct Waiter {
    /// The question section as sent.
    question: Vec<u8>,
    /// Taken by the first reply that matches.
    reply: Option<oneshot::Sender<Vec<u8>>>,
}

impl Channel {
    fn open(server: SocketAddr) -> std::io::Result<Arc<Self>> {
        let local: SocketAddr = if server.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        // Port 0: the kernel picks a random ephemeral port.
        let socket = std::net::UdpSocket::bind(local)?;
        socket.connect(server)?;
        socket.set_nonblocking(true)?;
        Ok(Arc::new(Self {
            socket: UdpSocket::from_std(socket)?,
            uses_left: AtomicU32::new(USES_PER_SOCKET),
            opened: Instant::now(),
            waiting: Mutex::default(),
        }))
    }

    /// Counts one query against the socket; false once it has retired.
    fn take_use(&self) -> bool {
        self.opened.elapsed() < MAX_AGE
            && self
                .uses_left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // Held only for map updates that cannot panic halfway.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn ask(self: Arc<Self>, query: &[u8]) -> std::io::Result<Vec<u8>> {
        let malformed = || std::io::Error::other("query without a question");
        let question_end = HEADER_LEN + question_len(query).ok_or_else(malformed)?;
        let (reply, receiver) = oneshot::channel();
        let id = {
            let mut waiting = self.lock();
            if waiting.closed {
                return Err(std::io::Error::other("upstream socket failed"));
            }
            let id = waiting.fresh_id()?;
            let question = query[HEADER_LEN..question_end].to_vec();
            let reply = Some(reply);
            waiting.by_id.insert(id, Waiter { question, reply });
            id
        };
        // Removes the waiter however this ends (answer, error, timeout).
        let _registered = Registered { channel: &self, id };
        let mut outgoing = query.to_vec();
        outgoing[..2].copy_from_slice(&id.to_be_bytes());
        if let Err(error) = self.socket.send(&outgoing).await {
            // A socket that cannot send is not handed out again.
            self.uses_left.store(0, Ordering::Relaxed);
            return Err(error);
        }
        let mut answer = receiver
            .await
            .map_err(|_| std::io::Error::other("upstream socket failed"))?;
        answer[..2].copy_from_slice(&query[..2]);
        Ok(answer)
    }

    /// Hands `reply` to the query it answers; anything else is dropped.
    fn deliver(&self, reply: &[u8]) {
        let Some(&[high, low]) = reply.get(..2) else {
            return;
        };
        let id = u16::from_be_bytes([high, low]);
        let waiter = self
            .lock()
            .by_id
            .get_mut(&id)
            .filter(|waiter| echoes(reply, &waiter.question))
            .and_then(|waiter| waiter.reply.take());
        if let Some(waiter) = waiter {
            let _ = waiter.send(reply.to_vec());
        }
    }

    /// The reader cannot go on: every waiter fails now (and tries the next
    /// upstream) instead of timing out, and no new one may come.
    fn close(&self) {
        self.uses_left.store(0, Ordering::Relaxed);
        let mut waiting = self.lock();
        waiting.closed = true;
        waiting.by_id.clear();
    }
}

impl Waiting {
    /// A random id no pending query of this socket uses.
    fn fresh_id(&mut self) -> std::io::Result<u16> {
        loop {
            if self.ids.is_empty() {
                let mut bytes = [0u8; 64];
                getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
                self.ids = bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect();
            }
            if let Some(id) = self.ids.pop()
                && !self.by_id.contains_key(&id)
            {
                return Ok(id);
            }
        }
    }
}

/// A pending query's registration; dropping it forgets the query.
struct Registered<'a> {
    channel: &'a Channel,
    id: u16,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.channel.lock().by_id.remove(&self.id);
    }
}

/// True when `reply` is a response with one question equal to `question`
/// (the name compared without case: servers may normalise it).
fn echoes(reply: &[u8], question: &[u8]) -> bool {
    let is_response = reply.get(2).is_some_and(|flags| flags & 0x80 != 0);
    let one_question = reply.get(4..6) == Some(&[0, 1]);
    let Some(echoed) = reply.get(HEADER_LEN..HEADER_LEN + question.len()) else {
        return false;
    };
    // The name, then type and class (4 bytes, compared exactly).
    let name_len = question.len().saturating_sub(4);
    is_response
        && one_question
        && echoed[..name_len].eq_ignore_ascii_case(&question[..name_len])
        && echoed[name_len..] == question[name_len..]
}

/// Reads replies for `channel` until it has retired and nobody is left
/// waiting on it (then only this task holds it).
async fn read_replies(channel: Arc<Channel>) {
    let mut buffer = Vec::with_capacity(MAX_UDP);
    loop {
        buffer.clear();
        match tokio::time::timeout(IDLE_CHECK, channel.socket.recv_buf(&mut buffer)).await {
            Ok(Ok(_)) => channel.deliver(&buffer),
            // E.g. ECONNREFUSED: an ICMP error for one of the queries, and
            // nothing says which.
            Ok(Err(_)) => {
                channel.close();
                return;
            }
            Err(_) => {}
        }
        if Arc::strong_count(&channel) == 1 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: u16, flags: u8, name: &[u8]) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.extend_from_slice(&[flags, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(name);
        out.extend_from_slice(&[0, 1, 0, 1]);
        out
    }

    #[test]
    fn a_reply_must_echo_the_question() {
        let query = message(7, 0x01, b"\x03api\x06github\x03com\x00");
        let question = &query[HEADER_LEN..];
        assert!(echoes(
            &message(7, 0x81, b"\x03api\x06github\x03com\x00"),
            question
        ));
        assert!(echoes(
            &message(7, 0x81, b"\x03API\x06GitHub\x03com\x00"),
            question
        ));
        assert!(!echoes(
            &message(7, 0x01, b"\x03api\x06github\x03com\x00"),
            question
        ));
        assert!(!echoes(
            &message(7, 0x81, b"\x03evl\x06github\x03com\x00"),
            question
        ));
        let mut other_type = message(7, 0x81, b"\x03api\x06github\x03com\x00");
        let at = other_type.len() - 3;
        other_type[at] = 28;
        assert!(!echoes(&other_type, question));
        assert!(!echoes(&query[..20], question));
    }

    #[test]
    fn ids_are_random_and_unused() {
        let mut waiting = Waiting::default();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let id = waiting.fresh_id().expect("random");
            let (reply, _) = oneshot::channel();
            let (question, reply) = (Vec::new(), Some(reply));
            assert!(
                waiting
                    .by_id
                    .insert(id, Waiter { question, reply })
                    .is_none()
            );
            seen.insert(id);
        }
        // 1000 draws from 65536 values: sequential or constant ids would
        // not spread like this.
        assert_eq!(seen.len(), 1000);
        assert!(seen.iter().any(|&id| id > 32_768) && seen.iter().any(|&id| id < 32_768));
    }
}
