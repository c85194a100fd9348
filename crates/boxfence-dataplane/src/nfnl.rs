//! Requests and dumps over a `NETLINK_NETFILTER` socket owned in-process
//! (ctnetlink dumps and deletes, nf_tables generation queries): no tool
//! is spawned and no socket is opened per call.

use std::ops::Range;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, getsockopt, recv,
    send, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::HostNetns;
use crate::netlink::{NLMSG_DONE, NLMSG_ERROR, Received, messages};

/// How long one exchange waits for the kernel's answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Dumps arrive in datagrams of up to 32 KiB; acknowledgements are small.
const RECV_BUFFER: usize = 64 * 1024;
/// The receive buffer asked for, so a burst of replies is not dropped.
const RCVBUF: usize = 1 << 20;

/// A netfilter netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum NfnlError {
    /// A system call on the netlink socket failed (`op` names it).
    #[error("netlink {op}: {errno}")]
    Socket {
        /// The call, e.g. `socket`, `send`, `recv`.
        op: &'static str,
        /// The error it returned.
        errno: Errno,
    },
    /// The kernel refused a request (or aborted a dump).
    #[error("{request} refused by the kernel: {errno}")]
    Refused {
        /// What was asked, e.g. `conntrack dump`.
        request: &'static str,
        /// The kernel's error.
        errno: Errno,
    },
    /// The kernel did not answer every message in time.
    #[error("no complete answer to {request} within {REPLY_TIMEOUT:?}")]
    Timeout {
        /// What was asked.
        request: &'static str,
    },
    /// The kernel sent a reply this client cannot parse.
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
    /// The socket could not be opened in the host's network namespace.
    #[error("cannot enter the host network namespace: {0}")]
    Namespace(String),
}

/// Opens a `NETLINK_NETFILTER` socket bound in the calling thread's
/// network namespace, with a receive timeout and a large receive buffer
/// (best effort: a burst of acknowledgements must not be dropped); returns
/// it and its send buffer size. An error names the failed call.
pub(crate) fn open_socket(timeout: Duration) -> Result<(OwnedFd, usize), (&'static str, Errno)> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|errno| ("socket", errno))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|errno| ("bind", errno))?;
    let timeout = TimeVal::new(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX), 0);
    setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
        .map_err(|errno| ("setsockopt SO_RCVTIMEO", errno))?;
    if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &RCVBUF);
    }
    let sndbuf =
        getsockopt(&fd, sockopt::SndBuf).map_err(|errno| ("getsockopt SO_SNDBUF", errno))?;
    Ok((fd, sndbuf))
}

/// A `NETLINK_NETFILTER` socket bound to the network namespace of the
/// thread that opened it, for good.
#[derive(Debug)]
pub(crate) struct NfnlSocket {
    fd: OwnedFd,
    seq: u32,
    sndbuf: usize,
    buffer: Vec<u8>,
}

impl NfnlSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, NfnlError> {
        let (fd, sndbuf) =
            open_socket(REPLY_TIMEOUT).map_err(|(op, errno)| NfnlError::Socket { op, errno })?;
        Ok(Self {
            fd,
            seq: 1,
            sndbuf,
            buffer: vec![0; RECV_BUFFER],
        })
    }

    /// Opens one in `host` (the socket stays there).
    pub(crate) fn open_in(host: &HostNetns) -> Result<Self, NfnlError> {
        host.in_netns(Self::open)
            .map_err(|error| NfnlError::Namespace(error.to_string()))?
    }

    /// Reserves `count` consecutive sequence numbers; returns the first.
    pub(crate) fn reserve(&mut self, count: u32) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(count);
        first
    }

    /// The largest datagram the socket sends (netlink wants 32 bytes spare).
    pub(crate) fn max_datagram(&self) -> usize {
        self.sndbuf.saturating_sub(32)
    }

    /// Sends `datagram`, whose messages carry the sequence numbers `seqs`,
    /// and reads until each is answered: by `NLMSG_DONE` (a dump) or by
    /// `NLMSG_ERROR` (an acknowledgement or an error). Every other reply
    /// to them goes to `each`. Returns each message's outcome, in order.
    pub(crate) fn exchange(
        &mut self,
        request: &'static str,
        datagram: &[u8],
        seqs: Range<u32>,
        mut each: impl FnMut(Received<'_>) -> Result<(), NfnlError>,
    ) -> Result<Vec<Result<(), Errno>>, NfnlError> {
        let sent =
            send(self.fd.as_raw_fd(), datagram, MsgFlags::empty()).map_err(socket_error("send"))?;
        if sent != datagram.len() {
            return Err(NfnlError::Malformed("short send"));
        }
        let count = seqs.end.wrapping_sub(seqs.start) as usize;
        let mut outcomes: Vec<Option<Result<(), Errno>>> = vec![None; count];
        let mut remaining = count;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while remaining > 0 {
            if Instant::now() > deadline {
                return Err(NfnlError::Timeout { request });
            }
            // MSG_TRUNC: the datagram's real length, to notice truncation.
            let len = match recv(self.fd.as_raw_fd(), &mut self.buffer, MsgFlags::MSG_TRUNC) {
                Ok(len) => len,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(NfnlError::Timeout { request }),
                Err(errno) => return Err(NfnlError::Socket { op: "recv", errno }),
            };
            if len > self.buffer.len() {
                return Err(NfnlError::Malformed("reply larger than the receive buffer"));
            }
            for message in messages(&self.buffer[..len]) {
                let message = message.map_err(NfnlError::Malformed)?;
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
        }
        Ok(outcomes.into_iter().flatten().collect())
    }
}

/// The status code that starts `NLMSG_ERROR` and `NLMSG_DONE` payloads
/// (0 or a negative errno).
fn status(payload: &[u8]) -> Result<Result<(), Errno>, NfnlError> {
    let code = payload
        .get(..4)
        .and_then(|bytes| bytes.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or(NfnlError::Malformed("short status code"))?;
    Ok(match code {
        0 => Ok(()),
        code => Err(Errno::from_raw(code.saturating_neg())),
    })
}

fn socket_error(op: &'static str) -> impl Fn(Errno) -> NfnlError {
    move |errno| NfnlError::Socket { op, errno }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_negative_errnos() {
        assert_eq!(status(&0i32.to_ne_bytes()).ok(), Some(Ok(())));
        assert_eq!(
            status(&(-2i32).to_ne_bytes()).ok(),
            Some(Err(Errno::ENOENT))
        );
        assert!(status(&[0, 0]).is_err());
    }
}
