//! A minimal rtnetlink (`NETLINK_ROUTE`) client: makes links, addresses,
//! routes and policy-routing rules the way `ip` does, without spawning it. `ip` dumps every
//! link of the namespace when it starts, so with many boxes on the host
//! each call cost milliseconds; a request here touches only its links.
//!
//! A [`Request`] is one datagram of messages, each with `NLM_F_ACK`. The
//! kernel runs them in order and answers each; unlike an nf_tables batch
//! it is no transaction: a refused message does not stop the ones after
//! it, so callers undo the whole setup on error.

mod message;
mod rule;

use nix::errno::Errno;

pub(crate) use message::{Dev, Request};
pub(crate) use rule::{Action, IpFamily, Rule};

use netlink_packet_route::link::LinkHeader;

use crate::netlink::socket::{Family, Socket, SocketError};

/// `RTM_NEWLINK`: a link, as an answer to `RTM_GETLINK` describes it.
const RTM_NEWLINK: u16 = 16;
/// `RTM_NEWADDR`: an address, as an answer to `RTM_GETADDR` describes it.
const RTM_NEWADDR: u16 = 20;

/// Why an rtnetlink request failed.
#[derive(Debug, thiserror::Error)]
pub enum RtnlError {
    /// The socket failed, or the kernel did not answer every step in
    /// time (then the outcome is unknown).
    #[error("rtnetlink: {0}")]
    Socket(#[from] SocketError),
    /// The kernel refused one step (the first refused, in request order).
    #[error("`{step}` failed: {errno}")]
    Refused {
        /// The step, as the `ip` command that does the same.
        step: String,
        /// The kernel's error.
        errno: Errno,
    },
}

impl RtnlError {
    /// The kernel's error, when it refused a step.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Refused { errno, .. } => Some(*errno),
            Self::Socket(_) => None,
        }
    }

    /// Whether the request went unanswered: it may have taken effect.
    pub fn unanswered(&self) -> bool {
        matches!(self, Self::Socket(SocketError::Timeout(_)))
    }
}

/// A `NETLINK_ROUTE` socket bound for good to the network namespace of
/// the thread that opened it; usable from any thread.
#[derive(Debug)]
pub(crate) struct RtSocket {
    socket: Socket,
}

impl RtSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> Result<Self, RtnlError> {
        Ok(Self {
            socket: Socket::open(Family::Route)?,
        })
    }

    /// Sends the messages `build` writes as one datagram and waits for
    /// every answer; the first step refused, in request order, is the
    /// error.
    pub(crate) fn transact(&mut self, build: impl FnOnce(&mut Request)) -> Result<(), RtnlError> {
        self.steps(build)?.into_iter().collect()
    }

    /// Like [`RtSocket::transact`], but returns every step's outcome, in
    /// order: the kernel runs each step whatever became of the others.
    pub(crate) fn steps(
        &mut self,
        build: impl FnOnce(&mut Request),
    ) -> Result<Vec<Result<(), RtnlError>>, RtnlError> {
        let mut request = Request::new(self.socket.next_seq());
        build(&mut request);
        self.exchange(&request, |_| Ok(()))
    }

    /// The index of the link called `name` (`ENODEV` when there is none).
    pub(crate) fn ifindex(&mut self, name: &str) -> Result<u32, RtnlError> {
        let mut request = Request::new(self.socket.next_seq());
        request.get_link(name);
        let mut ifindex = None;
        let outcomes = self.exchange(&request, |reply| {
            if reply.kind == RTM_NEWLINK {
                // Just the header: a link's attributes are many, and not
                // needed here.
                let header = LinkHeader::parse(reply.payload)
                    .map_err(|_| SocketError::Malformed("short ifinfomsg in RTM_NEWLINK"))?;
                ifindex = Some(header.index);
            }
            Ok(())
        })?;
        outcomes.into_iter().collect::<Result<(), _>>()?;
        ifindex.ok_or(RtnlError::Socket(SocketError::Malformed(
            "no link in the answer to RTM_GETLINK",
        )))
    }

    /// Every address of the namespace, with its link's index.
    pub(crate) fn addresses(&mut self) -> Result<Vec<(u32, std::net::IpAddr)>, RtnlError> {
        use netlink_packet_core::Parseable as _;
        use netlink_packet_route::address::{AddressAttribute, AddressMessage};
        let mut request = Request::new(self.socket.next_seq());
        request.get_addresses();
        let mut found = Vec::new();
        let outcomes = self.exchange(&request, |reply| {
            if reply.kind == RTM_NEWADDR {
                let message = AddressMessage::parse(reply.payload)
                    .map_err(|_| SocketError::Malformed("bad ifaddrmsg in RTM_NEWADDR"))?;
                let address = message.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(ip),
                    _ => None,
                });
                found.extend(address.map(|ip| (message.header.index, *ip)));
            }
            Ok(())
        })?;
        outcomes.into_iter().collect::<Result<(), _>>()?;
        Ok(found)
    }

    /// Sends `request`, waits for all its answers (other replies go to
    /// `each`); returns each step's outcome.
    fn exchange(
        &mut self,
        request: &Request,
        each: impl FnMut(crate::netlink::Received<'_>) -> Result<(), SocketError>,
    ) -> Result<Vec<Result<(), RtnlError>>, RtnlError> {
        let steps = u32::try_from(request.labels().len()).unwrap_or(u32::MAX);
        if steps == 0 {
            return Ok(Vec::new());
        }
        let first = self.socket.reserve(steps);
        debug_assert_eq!(first, request.first_seq());
        let outcomes =
            self.socket
                .exchange(request.bytes(), first..first.wrapping_add(steps), each)?;
        Ok(outcomes
            .into_iter()
            .zip(request.labels())
            .map(|(outcome, step)| {
                outcome.map_err(|errno| RtnlError::Refused {
                    step: step.clone(),
                    errno,
                })
            })
            .collect())
    }
}
