//! New-connection events from the kernel's connection tracking (ctnetlink):
//! only flows the ruleset let through get a confirmed entry, so each event
//! is an allowed new connection, with no rule added to the packet path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd as _, OwnedFd};

use boxfence_policy::Protocol;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, setsockopt,
    socket, sockopt,
};

use crate::conntrack::TrackedFlow;
use crate::netlink::{self, NFGENMSG_LEN, messages};

/// Multicast group of new conntrack entries (NFNLGRP_CONNTRACK_NEW).
const GROUP_NEW: u32 = 1;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// A socket subscribed to new conntrack entries of the calling thread's
/// network namespace.
#[derive(Debug)]
pub struct NewFlowEvents {
    fd: OwnedFd,
    buffer: Vec<u8>,
}

impl NewFlowEvents {
    /// Subscribes; reads wake up at least every second.
    pub fn open() -> Result<Self, nix::Error> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 1 << (GROUP_NEW - 1)))?;
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(4 << 20));
        let _ = setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(1, 0),
        );
        Ok(Self {
            fd,
            buffer: vec![0; 1 << 16],
        })
    }

    /// The new flows of the next datagram (none on timeout or overflow).
    pub fn read(&mut self) -> Result<Vec<TrackedFlow>, nix::Error> {
        let n = match recv(self.fd.as_raw_fd(), &mut self.buffer, MsgFlags::empty()) {
            Ok(n) => n,
            Err(nix::Error::ENOBUFS | nix::Error::EAGAIN) => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
        Ok(messages(&self.buffer[..n])
            .flatten()
            .filter(|message| message.kind == kind)
            .filter_map(|message| original_tuple(message.payload.get(NFGENMSG_LEN..)?))
            .collect())
    }
}

/// The original-direction tuple of a conntrack message.
fn original_tuple(attributes: &[u8]) -> Option<TrackedFlow> {
    let (_, tuple) = netlink::attributes(attributes).find(|(kind, _)| *kind == CTA_TUPLE_ORIG)?;
    let (mut src, mut dst, mut protocol, mut sport, mut dport) = (None, None, None, None, None);
    for (kind, value) in netlink::attributes(tuple) {
        match kind {
            CTA_TUPLE_IP => {
                for (kind, address) in netlink::attributes(value) {
                    let ip = match address.len() {
                        4 => <[u8; 4]>::try_from(address)
                            .ok()
                            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
                        16 => <[u8; 16]>::try_from(address)
                            .ok()
                            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
                        _ => None,
                    };
                    match kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => src = ip,
                        CTA_IP_V4_DST | CTA_IP_V6_DST => dst = ip,
                        _ => {}
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (kind, field) in netlink::attributes(value) {
                    let port = || <[u8; 2]>::try_from(field).ok().map(u16::from_be_bytes);
                    match kind {
                        CTA_PROTO_NUM => {
                            protocol = match field.first() {
                                Some(6) => Some(Protocol::Tcp),
                                Some(17) => Some(Protocol::Udp),
                                Some(1 | 58) => Some(Protocol::Icmp),
                                _ => None,
                            };
                        }
                        CTA_PROTO_SRC_PORT => sport = port(),
                        CTA_PROTO_DST_PORT => dport = port(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let protocol = protocol?;
    let ports = protocol != Protocol::Icmp;
    Some(TrackedFlow {
        protocol,
        src: src?,
        dst: dst?,
        sport: sport.filter(|_| ports),
        dport: dport.filter(|_| ports),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScratchNetns;

    #[test]
    fn a_new_connection_is_reported_with_its_tuple() {
        let Some(netns) = ScratchNetns::new("ctevents") else {
            return;
        };
        let host = netns.host();
        host.run("ip", &["link", "set", "lo", "up"], None)
            .expect("lo up");
        // Connection tracking runs once a ruleset uses it.
        host.nft("table inet t {\n chain out {\n type filter hook output priority filter; policy accept;\n ct state new counter\n }\n}\n")
            .expect("ruleset");
        let flows = host
            .in_netns(|| {
                let mut events = NewFlowEvents::open().expect("subscribe");
                let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
                socket.send_to(b"x", "127.0.0.7:4242").expect("send");
                let mut seen = Vec::new();
                for _ in 0..3 {
                    seen.extend(events.read().expect("read"));
                    if !seen.is_empty() {
                        break;
                    }
                }
                seen
            })
            .expect("in namespace");
        let flow = flows
            .iter()
            .find(|f| f.dport == Some(4242))
            .expect("the new UDP flow");
        assert_eq!(flow.protocol, Protocol::Udp);
        assert_eq!(flow.dst.to_string(), "127.0.0.7");
    }
}
