//! New-connection events from the kernel's connection tracking (ctnetlink):
//! only flows the ruleset let through get a confirmed entry, so each event
//! is an allowed new connection, with no rule added to the packet path.

use crate::conntrack::{IPCTNL_MSG_CT_NEW, TrackedFlow, new_flow};
use crate::netlink::socket::{Family, Socket, SocketError};

/// Multicast group of new conntrack entries (NFNLGRP_CONNTRACK_NEW).
const GROUP_NEW: u32 = 1;

/// A socket subscribed to new conntrack entries of the calling thread's
/// network namespace.
#[derive(Debug)]
pub struct NewFlowEvents {
    socket: Socket,
}

impl NewFlowEvents {
    /// Subscribes; reads wake up at least every second.
    pub fn open() -> Result<Self, SocketError> {
        Ok(Self {
            socket: Socket::listener(Family::Netfilter, 1 << (GROUP_NEW - 1))?,
        })
    }

    /// The new flows of the next datagram (none on timeout or overflow).
    pub fn read(&mut self) -> Result<Vec<TrackedFlow>, SocketError> {
        Ok(self
            .socket
            .listen()?
            .filter(|message| message.kind == IPCTNL_MSG_CT_NEW)
            .filter_map(|message| new_flow(message.payload))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScratchNetns;
    use boxfence_policy::Protocol;

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
