//! The error context of the netfilter families that ask and dump over the
//! socket layer (ctnetlink dumps and deletes, nf_tables generation
//! queries): which request failed.

use nix::errno::Errno;

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
