//! The error context of the netfilter families that ask and dump over the
//! socket layer (ctnetlink dumps and deletes, nf_tables generation
//! queries): which request failed.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, getsockopt, setsockopt,
    socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::netlink::socket::SocketError;

/// A netfilter netlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum NfnlError {
    /// The socket could not be opened.
    #[error("netfilter netlink socket: {0}")]
    Open(#[source] SocketError),
    /// A request failed or was refused (`request` names it, e.g.
    /// `conntrack dump`).
    #[error("{request}: {source}")]
    Request {
        /// What was asked.
        request: &'static str,
        /// What went wrong.
        source: SocketError,
    },
}

impl NfnlError {
    /// The context for a failure of `request`.
    pub(crate) fn of(request: &'static str) -> impl Fn(SocketError) -> Self {
        move |source| Self::Request { request, source }
    }

    /// [`NfnlError::Request`] for a refusal with `errno`.
    pub(crate) fn refused(request: &'static str, errno: Errno) -> Self {
        Self::Request {
            request,
            source: SocketError::Refused(errno),
        }
    }
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

/// The receive buffer asked for, so a burst of replies is not dropped.
const RCVBUF: usize = 1 << 20;
