//! The one netlink socket layer every family uses (nf_tables, ctnetlink,
//! NFLOG, NFQUEUE, rtnetlink): opening in a namespace, buffer sizing, sequence
//! numbers, sending, and the receive-and-acknowledge loop. Families
//! encode and decode their own messages and add their own error context.

use std::ops::Range;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, getsockopt, recv,
    send, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::{NLM_F_ACK, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, Received, Writer, messages};
use crate::HostNetns;

/// How long a request waits for the kernel's answers.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a listener's read returns when nothing arrives, so its
/// thread notices when to stop.
const LISTEN_WAKE: Duration = Duration::from_secs(1);
/// Dumps arrive in datagrams of up to 32 KiB; acknowledgements are small.
const RECV_BUFFER: usize = 64 * 1024;
/// The receive buffer of a request socket, so a burst of acknowledgements
/// is not dropped.
const REQUEST_RCVBUF: usize = 1 << 20;
/// The receive buffer of a listener: a flood must not block the kernel
/// side; what overflows is lost, and the reader is told.
const LISTEN_RCVBUF: usize = 4 << 20;
/// Netlink refuses a datagram larger than the send buffer less this.
const SNDBUF_SPARE: usize = 32;

/// Which netlink family a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `NETLINK_ROUTE`: links, addresses, routes, rules.
    Route,
    /// `NETLINK_NETFILTER`: nf_tables, ctnetlink, NFLOG.
    Netfilter,
}

/// A netlink socket operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A system call on the socket failed (`op` names it).
    #[error("netlink {op}: {errno}")]
    Call {
        /// The call, e.g. `socket`, `send`, `recv`.
        op: &'static str,
        /// The error it returned.
        errno: Errno,
    },
    /// The socket could not be opened in the given network namespace.
    #[error("cannot enter the network namespace: {0}")]
    Namespace(String),
    /// The kernel refused the request (or aborted the dump).
    #[error("refused by the kernel: {0}")]
    Refused(Errno),
    /// The kernel did not answer every message in time; the outcome of
    /// those unanswered is unknown.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// A reply did not fit the receive buffer: part of it is lost.
    #[error("a reply of {len} bytes was cut to the receive buffer's {buffer}")]
    Truncated {
        /// The datagram's real length.
        len: usize,
        /// The buffer's length.
        buffer: usize,
    },
    /// A request does not fit the send buffer, even grown.
    #[error("a request of {0} bytes does not fit the netlink send buffer")]
    TooLarge(usize),
    /// The kernel sent a reply this client cannot parse.
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
}

impl SocketError {
    /// The kernel's error, when it refused the request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Refused(errno) => Some(*errno),
            _ => None,
        }
    }
}

fn call(op: &'static str) -> impl Fn(Errno) -> SocketError {
    move |errno| SocketError::Call { op, errno }
}

/// A netlink socket bound for good to the network namespace of the thread
/// that opened it; usable from any thread.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    /// The next sequence number to hand out.
    seq: u32,
    /// The kernel's `sk_sndbuf`.
    sndbuf: usize,
    buffer: Vec<u8>,
    /// The receive timeout set on the socket.
    timeout: Duration,
}

impl Socket {
    /// A socket for requests in the calling thread's network namespace:
    /// answers are awaited for [`REPLY_TIMEOUT`].
    pub(crate) fn open(family: Family) -> Result<Self, SocketError> {
        Self::bound(family, 0, REPLY_TIMEOUT, REQUEST_RCVBUF)
    }

    /// [`Socket::open`] in `host` (the socket stays there).
    pub(crate) fn open_in(family: Family, host: &HostNetns) -> Result<Self, SocketError> {
        host.in_netns(|| Self::open(family))
            .map_err(|error| SocketError::Namespace(error.to_string()))?
    }

    /// A socket that listens to the multicast `groups` (a bitmask of
    /// groups 1 to 32, 0 for none: NFLOG binds its group by request) in
    /// the calling thread's network namespace, with a large receive
    /// buffer; [`Socket::listen`] returns at least every second.
    pub(crate) fn listener(family: Family, groups: u32) -> Result<Self, SocketError> {
        Self::bound(family, groups, LISTEN_WAKE, LISTEN_RCVBUF)
    }

    fn bound(
        family: Family,
        groups: u32,
        timeout: Duration,
        rcvbuf: usize,
    ) -> Result<Self, SocketError> {
        let protocol = match family {
            Family::Route => SockProtocol::NetlinkRoute,
            Family::Netfilter => SockProtocol::NetlinkNetFilter,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            protocol,
        )
        .map_err(call("socket"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups)).map_err(call("bind"))?;
        let wake = TimeVal::new(
            i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            i64::from(timeout.subsec_micros()),
        );
        setsockopt(&fd, sockopt::ReceiveTimeout, &wake).map_err(call("setsockopt SO_RCVTIMEO"))?;
        // Best effort: past `rmem_max` needs CAP_NET_ADMIN.
        if setsockopt(&fd, sockopt::RcvBufForce, &rcvbuf).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &rcvbuf);
        }
        let sndbuf = getsockopt(&fd, sockopt::SndBuf).map_err(call("getsockopt SO_SNDBUF"))?;
        Ok(Self {
            fd,
            seq: 1,
            sndbuf,
            buffer: vec![0; RECV_BUFFER],
            timeout,
        })
    }

    /// The sequence number [`Socket::reserve`] returns next: messages are
    /// numbered from it while they are written, then reserved.
    pub(crate) fn next_seq(&self) -> u32 {
        self.seq
    }

    /// Reserves `count` consecutive sequence numbers; returns the first.
    pub(crate) fn reserve(&mut self, count: u32) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(count);
        first
    }

    /// The largest datagram the socket sends without growing its buffer.
    pub(crate) fn max_datagram(&self) -> usize {
        self.sndbuf.saturating_sub(SNDBUF_SPARE)
    }

    /// Makes the receive buffer hold replies of `len` bytes.
    pub(crate) fn expect_replies(&mut self, len: usize) {
        if self.buffer.len() < len {
            self.buffer.resize(len, 0);
        }
    }

    /// Sends `datagram` whole, growing the send buffer first when it is
    /// too small (past `wmem_max` with `CAP_NET_ADMIN`, as nft does).
    pub(crate) fn send(&mut self, datagram: &[u8]) -> Result<(), SocketError> {
        self.fit_send_buffer(datagram.len())?;
        let sent = send(self.fd.as_raw_fd(), datagram, MsgFlags::empty()).map_err(call("send"))?;
        if sent != datagram.len() {
            return Err(SocketError::Malformed("short send"));
        }
        Ok(())
    }

    fn fit_send_buffer(&mut self, len: usize) -> Result<(), SocketError> {
        if len + SNDBUF_SPARE <= self.sndbuf {
            return Ok(());
        }
        // The kernel doubles the value asked for.
        let want = len + 4096;
        if setsockopt(&self.fd, sockopt::SndBufForce, &want).is_err() {
            let _ = setsockopt(&self.fd, sockopt::SndBuf, &want);
        }
        self.sndbuf =
            getsockopt(&self.fd, sockopt::SndBuf).map_err(call("getsockopt SO_SNDBUF"))?;
        if len + SNDBUF_SPARE > self.sndbuf {
            return Err(SocketError::TooLarge(len));
        }
        Ok(())
    }

    /// Reads reply datagrams into `each` until it returns a value (or an
    /// error), within the socket's timeout; a failure of the socket
    /// becomes the caller's error through `lost`.
    pub(crate) fn receive<T, E>(
        &mut self,
        lost: impl Fn(SocketError) -> E,
        mut each: impl FnMut(&[u8]) -> Result<Option<T>, E>,
    ) -> Result<T, E> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if Instant::now() > deadline {
                return Err(lost(SocketError::Timeout(self.timeout)));
            }
            let len = match self.read().map_err(&lost)? {
                Some(len) => len,
                None => return Err(lost(SocketError::Timeout(self.timeout))),
            };
            if let Some(value) = each(&self.buffer[..len])? {
                return Ok(value);
            }
        }
    }

    /// One datagram's length, or `None` when the timeout passed first.
    fn read(&mut self) -> Result<Option<usize>, SocketError> {
        loop {
            // MSG_TRUNC: the datagram's real length, to notice truncation.
            return match recv(self.fd.as_raw_fd(), &mut self.buffer, MsgFlags::MSG_TRUNC) {
                Ok(len) if len > self.buffer.len() => Err(SocketError::Truncated {
                    len,
                    buffer: self.buffer.len(),
                }),
                Ok(len) => Ok(Some(len)),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => Ok(None),
                Err(errno) => Err(SocketError::Call { op: "recv", errno }),
            };
        }
    }

    /// Sends `datagram`, whose messages carry the sequence numbers `seqs`
    /// (from [`Socket::reserve`]), and reads until each is answered: by
    /// `NLMSG_DONE` (a dump) or by `NLMSG_ERROR` (an acknowledgement or an
    /// error). Every other reply to them goes to `each`. Returns each
    /// message's outcome, in order.
    pub(crate) fn exchange(
        &mut self,
        datagram: &[u8],
        seqs: Range<u32>,
        mut each: impl FnMut(Received<'_>) -> Result<(), SocketError>,
    ) -> Result<Vec<Result<(), Errno>>, SocketError> {
        self.send(datagram)?;
        let count = seqs.end.wrapping_sub(seqs.start) as usize;
        let mut outcomes: Vec<Option<Result<(), Errno>>> = vec![None; count];
        let mut remaining = count;
        if remaining == 0 {
            return Ok(Vec::new());
        }
        self.receive(std::convert::identity, |datagram| {
            for message in messages(datagram) {
                let message = message.map_err(SocketError::Malformed)?;
                // Late answers to an earlier, timed-out exchange are not ours.
                let index = message.seq.wrapping_sub(seqs.start) as usize;
                if index >= count {
                    continue;
                }
                let outcome = match message.kind {
                    NLMSG_ERROR | NLMSG_DONE => status(message.payload)?,
                    _ => {
                        each(message)?;
                        continue;
                    }
                };
                if outcomes[index].is_none() {
                    remaining -= 1;
                }
                outcomes[index] = Some(outcome);
            }
            Ok((remaining == 0).then_some(()))
        })?;
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Sends the one message `build` writes for a sequence number (a
    /// request with `NLM_F_ACK`, or a dump) and hands every reply but the
    /// final status to `each`. A refusal is [`SocketError::Refused`].
    pub(crate) fn request(
        &mut self,
        build: impl FnOnce(u32) -> Vec<u8>,
        each: impl FnMut(Received<'_>) -> Result<(), SocketError>,
    ) -> Result<(), SocketError> {
        let seq = self.reserve(1);
        let outcomes = self.exchange(&build(seq), seq..seq.wrapping_add(1), each)?;
        match outcomes.into_iter().next() {
            Some(Ok(())) => Ok(()),
            Some(Err(errno)) => Err(SocketError::Refused(errno)),
            None => Err(SocketError::Malformed("no answer")),
        }
    }

    /// Sends one netfilter configuration message `kind` for `res_id` (an
    /// NFLOG group, an NFQUEUE number) with one attribute, and waits for
    /// the kernel's acknowledgement.
    pub(crate) fn configure(
        &mut self,
        kind: u16,
        res_id: u16,
        attribute: u16,
        payload: &[u8],
    ) -> Result<(), SocketError> {
        let build = |seq| {
            let mut writer = Writer::with_capacity(32);
            let start = writer.begin_message(kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0, res_id);
            writer.put(attribute, payload);
            writer.end_message(start);
            writer.into_bytes()
        };
        self.request(build, |_| Ok(()))
    }

    /// Waits (up to a second, see [`Socket::listener`]) for the next
    /// datagram of a listener and returns its messages; nothing when none
    /// came, or when the receive buffer overflowed (`ENOBUFS`: what the
    /// kernel could not queue is lost; the socket goes on), or when the
    /// datagram did not fit the buffer (lost too).
    pub(crate) fn listen(
        &mut self,
    ) -> Result<impl Iterator<Item = Received<'_>> + '_, SocketError> {
        let len = match self.read() {
            Ok(len) => len.unwrap_or(0),
            Err(
                SocketError::Call {
                    errno: Errno::ENOBUFS,
                    ..
                }
                | SocketError::Truncated { .. },
            ) => 0,
            Err(error) => return Err(error),
        };
        Ok(messages(&self.buffer[..len]).flatten())
    }
}

/// The status code that starts `NLMSG_ERROR` and `NLMSG_DONE` payloads
/// (0 or a negative errno).
fn status(payload: &[u8]) -> Result<Result<(), Errno>, SocketError> {
    let code = payload
        .get(..4)
        .and_then(|bytes| bytes.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or(SocketError::Malformed("short status code"))?;
    Ok(match code {
        0 => Ok(()),
        code => Err(Errno::from_raw(code.saturating_neg())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, Writer};
    use crate::testing::ScratchNetns;

    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;

    #[test]
    fn status_codes_are_negative_errnos() {
        assert_eq!(status(&0i32.to_ne_bytes()).ok(), Some(Ok(())));
        assert_eq!(
            status(&(-2i32).to_ne_bytes()).ok(),
            Some(Err(Errno::ENOENT))
        );
        assert!(status(&[0, 0]).is_err());
    }

    /// `ip link show [name]`: a dump without a name.
    fn get_link(writer: &mut Writer, seq: u32, name: Option<&str>, flags: u16) {
        let start = writer.begin_header(RTM_GETLINK, NLM_F_REQUEST | flags, seq);
        writer.put_raw(&[0; 16]); // ifinfomsg: any family, any index
        if let Some(name) = name {
            writer.put_strz(3, name); // IFLA_IFNAME
        }
        writer.end_message(start);
    }

    fn links(socket: &mut Socket) -> Result<usize, SocketError> {
        let mut seen = 0;
        socket.request(
            |seq| {
                let mut writer = Writer::with_capacity(32);
                get_link(&mut writer, seq, None, NLM_F_DUMP);
                writer.into_bytes()
            },
            |reply| {
                seen += usize::from(reply.kind == RTM_NEWLINK);
                Ok(())
            },
        )?;
        Ok(seen)
    }

    #[test]
    fn each_message_of_a_datagram_gets_its_own_outcome_and_dumps_end() {
        let Some(netns) = ScratchNetns::new("nlsocket") else {
            return;
        };
        let mut socket = Socket::open_in(Family::Route, &netns.host()).expect("open");
        // A fresh namespace has exactly one link: lo.
        assert_eq!(links(&mut socket).expect("dump"), 1);
        let first = socket.reserve(4);
        let mut writer = Writer::with_capacity(256);
        // The first is outside the range asked about, as an answer to an
        // earlier exchange that timed out would be: it is not ours.
        for (offset, name) in (0..).zip(["lo", "lo", "nothere", "lo"]) {
            get_link(&mut writer, first + offset, Some(name), NLM_F_ACK);
        }
        let mut answers = Vec::new();
        let outcomes = socket
            .exchange(writer.bytes(), first + 1..first + 4, |reply| {
                answers.push(reply.seq);
                Ok(())
            })
            .expect("exchange");
        assert_eq!(outcomes, vec![Ok(()), Err(Errno::ENODEV), Ok(())]);
        assert_eq!(answers, vec![first + 1, first + 3]);
        // The socket is in step for the next request.
        assert_eq!(links(&mut socket).expect("dump again"), 1);
    }

    #[test]
    fn a_reply_larger_than_the_buffer_is_an_error_not_a_short_answer() {
        let Some(netns) = ScratchNetns::new("nltrunc") else {
            return;
        };
        let mut socket = Socket::open_in(Family::Route, &netns.host()).expect("open");
        socket.buffer.truncate(64);
        let error = links(&mut socket).expect_err("truncated");
        assert!(
            matches!(error, SocketError::Truncated { len, buffer: 64 } if len > 64),
            "{error}"
        );
    }

    #[test]
    fn an_unanswered_request_times_out() {
        let Some(netns) = ScratchNetns::new("nltimeout") else {
            return;
        };
        let wait = Duration::from_millis(200);
        let mut socket = netns
            .run_inside(|| Socket::bound(Family::Route, 0, wait, REQUEST_RCVBUF).expect("open"));
        // No NLM_F_ACK: the kernel answers a lookup that succeeds and says
        // nothing at all about this one.
        let seq = socket.reserve(1);
        let mut writer = Writer::with_capacity(64);
        let start = writer.begin_header(RTM_NEWLINK, NLM_F_REQUEST, seq);
        writer.put_raw(&[0; 16]);
        writer.put_strz(3, "lo");
        writer.end_message(start);
        let started = Instant::now();
        let error = socket
            .exchange(writer.bytes(), seq..seq + 1, |_| Ok(()))
            .expect_err("no answer");
        assert!(
            matches!(error, SocketError::Timeout(w) if w == wait),
            "{error}"
        );
        // Usually 200 ms; a stall would be the bug this bounds.
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
