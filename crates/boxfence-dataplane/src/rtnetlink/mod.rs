//! A minimal rtnetlink (`NETLINK_ROUTE`) client: makes links, addresses
//! and routes the way `ip` does, without spawning it. `ip` dumps every
//! link of the namespace when it starts, so with many boxes on the host
//! each call cost milliseconds; a request here touches only its links.
//!
//! A [`Request`] is one datagram of messages, each with `NLM_F_ACK`. The
//! kernel runs them in order and answers each; unlike an nf_tables batch
//! it is no transaction: a refused message does not stop the ones after
//! it, so callers undo the whole setup on error.

mod message;

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

pub(crate) use message::{Dev, Request};

use crate::netlink::{NLMSG_ERROR, messages};
use message::RTM_NEWLINK;

/// How long one request waits for the kernel's answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an rtnetlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    /// A system call on the socket failed (`op` names it).
    #[error("rtnetlink {op}: {errno}")]
    Socket {
        /// The call, e.g. `socket`, `send`, `recv`.
        op: &'static str,
        /// The error it returned.
        errno: Errno,
    },
    /// The kernel refused one step (the first refused, in request order).
    #[error("`{step}` failed: {errno}")]
    Refused {
        /// The step, as the `ip` command that does the same.
        step: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// The kernel did not answer every step in time; the outcome is unknown.
    #[error("no complete rtnetlink reply within {0:?}")]
    Timeout(Duration),
    /// The kernel sent a reply this client cannot parse.
    #[error("malformed rtnetlink reply: {0}")]
    Malformed(&'static str),
}

impl RtnlError {
    /// The kernel's error, when it refused a step.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Refused { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// A `NETLINK_ROUTE` socket bound for good to the network namespace of
/// the thread that opened it; usable from any thread.
#[derive(Debug)]
pub(crate) struct RtSocket {
    fd: OwnedFd,
    /// The next request's first sequence number.
    seq: u32,
    reply: Vec<u8>,
}

impl RtSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, RtnlError> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(socket_error("socket"))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(socket_error("bind"))?;
        let timeout = TimeVal::new(
            i64::try_from(REPLY_TIMEOUT.as_secs()).unwrap_or(i64::MAX),
            0,
        );
        setsockopt(&fd, sockopt::ReceiveTimeout, &timeout)
            .map_err(socket_error("setsockopt SO_RCVTIMEO"))?;
        Ok(Self {
            fd,
            seq: 1,
            reply: vec![0; 32 * 1024],
        })
    }

    /// Sends the messages `build` writes as one datagram and waits for
    /// every answer.
    pub(crate) fn transact(&mut self, build: impl FnOnce(&mut Request)) -> Result<(), RtnlError> {
        let mut request = Request::new(self.seq);
        build(&mut request);
        self.exchange(&request).map(drop)
    }

    /// The index of the link called `name` (`ENODEV` when there is none).
    pub(crate) fn ifindex(&mut self, name: &str) -> Result<u32, RtnlError> {
        let mut request = Request::new(self.seq);
        request.get_link(name);
        self.exchange(&request)?
            .ok_or(RtnlError::Malformed("no link in the answer to RTM_GETLINK"))
    }

    /// Sends `request`, waits for all its answers; returns the index of
    /// the link an answer described, if any did.
    fn exchange(&mut self, request: &Request) -> Result<Option<u32>, RtnlError> {
        let steps = request.labels().len();
        if steps == 0 {
            return Ok(None);
        }
        let first = request.first_seq();
        self.seq = first.wrapping_add(u32::try_from(steps).unwrap_or(u32::MAX));
        let sent = send(self.fd.as_raw_fd(), request.bytes(), MsgFlags::empty())
            .map_err(socket_error("send"))?;
        if sent != request.bytes().len() {
            return Err(RtnlError::Malformed("short send"));
        }
        let mut answered = vec![false; steps];
        let mut remaining = steps;
        let mut refused: Option<(usize, Errno)> = None;
        let mut ifindex = None;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while remaining > 0 {
            if Instant::now() > deadline {
                return Err(RtnlError::Timeout(REPLY_TIMEOUT));
            }
            // MSG_TRUNC: the datagram's real length, to notice truncation.
            let len = match recv(self.fd.as_raw_fd(), &mut self.reply, MsgFlags::MSG_TRUNC) {
                Ok(len) => len,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(RtnlError::Timeout(REPLY_TIMEOUT)),
                Err(errno) => return Err(RtnlError::Socket { op: "recv", errno }),
            };
            if len > self.reply.len() {
                return Err(RtnlError::Malformed("reply larger than the receive buffer"));
            }
            for message in messages(&self.reply[..len]) {
                let message = message.map_err(RtnlError::Malformed)?;
                // Answers to an earlier request that timed out are not ours.
                let index = message.seq.wrapping_sub(first) as usize;
                if index >= steps {
                    continue;
                }
                match message.kind {
                    RTM_NEWLINK => {
                        // ifinfomsg: family, pad, type, then the index.
                        let bytes = message
                            .payload
                            .get(4..8)
                            .ok_or(RtnlError::Malformed("short ifinfomsg in RTM_NEWLINK"))?;
                        ifindex =
                            Some(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
                    }
                    NLMSG_ERROR if !answered[index] => {
                        let code = message
                            .payload
                            .get(..4)
                            .ok_or(RtnlError::Malformed("short NLMSG_ERROR"))?;
                        let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                        answered[index] = true;
                        remaining -= 1;
                        if code != 0 && refused.is_none_or(|(first, _)| index < first) {
                            refused = Some((index, Errno::from_raw(code.saturating_neg())));
                        }
                    }
                    _ => {}
                }
            }
        }
        match refused {
            Some((index, errno)) => Err(RtnlError::Refused {
                step: request.labels()[index].clone(),
                errno,
            }),
            None => Ok(ifindex),
        }
    }
}

fn socket_error(op: &'static str) -> impl Fn(Errno) -> RtnlError {
    move |errno| RtnlError::Socket { op, errno }
}
