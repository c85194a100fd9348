//! Reading the kernel's log of denied packets (NFLOG over netlink).
//!
//! The ruleset's deny chains log each denied packet, rate-limited, to one
//! NFLOG group with a prefix naming the layer that denied it. This reads
//! those messages in the daemon, without a process per packet.

mod packet;

use std::ffi::CStr;

use crate::netlink::socket::{Family, Socket, SocketError};
use crate::netlink::{self, NFGENMSG_LEN};

pub use packet::parse;

use crate::conntrack::TrackedFlow;

/// Netfilter's netlink subsystem of the packet log.
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = 0;
const NFULNL_MSG_CONFIG: u16 = 1;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
/// Bytes of each packet copied to us: IP and transport headers.
const COPY_RANGE: u32 = 128;

/// Why the packet log cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum NflogError {
    /// The socket could not be opened or read.
    #[error("nflog: {0}")]
    Socket(#[from] SocketError),
    /// The kernel refused (e.g. the group is taken) or did not answer a
    /// configuration step.
    #[error("nflog {step} of group {group}: {source}")]
    Configure {
        /// The step, e.g. `bind`.
        step: &'static str,
        /// The group.
        group: u16,
        /// What went wrong.
        source: SocketError,
    },
}

/// One denied packet as the kernel logged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPacket {
    /// The rule's log prefix (names the layer).
    pub prefix: String,
    /// Interface it came in on.
    pub indev: Option<String>,
    /// Interface it was going out of.
    pub outdev: Option<String>,
    /// Its flow, when it is TCP, UDP or ICMP over IP.
    pub flow: Option<TrackedFlow>,
}

/// A socket bound to one NFLOG group, in the namespace of the thread that
/// opened it.
#[derive(Debug)]
pub struct NflogReader {
    socket: Socket,
}

impl NflogReader {
    /// Binds `group` (copying packet headers) in the calling thread's
    /// network namespace.
    pub fn open(group: u16) -> Result<Self, NflogError> {
        // A flood must not block the kernel side: a listener's large
        // buffer, and what overflows is lost.
        let mut reader = Self {
            socket: Socket::listener(Family::Netfilter, 0)?,
        };
        reader.configure(
            group,
            "bind",
            NFULA_CFG_CMD,
            &[NFULNL_CFG_CMD_BIND, 0, 0, 0],
        )?;
        let mut mode = COPY_RANGE.to_be_bytes().to_vec();
        mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0, 0, 0]);
        reader.configure(group, "copy mode", NFULA_CFG_MODE, &mode)?;
        // Deliver each packet at once: the kernel otherwise batches up to
        // 100 of them or a second, and an event should be live.
        reader.configure(
            group,
            "queue threshold",
            NFULA_CFG_QTHRESH,
            &1u32.to_be_bytes(),
        )?;
        reader.configure(
            group,
            "flush timeout",
            NFULA_CFG_TIMEOUT,
            &1u32.to_be_bytes(),
        )?;
        Ok(reader)
    }

    fn configure(
        &mut self,
        group: u16,
        step: &'static str,
        attribute: u16,
        payload: &[u8],
    ) -> Result<(), NflogError> {
        let kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
        self.socket
            .configure(kind, group, attribute, payload)
            .map_err(|source| NflogError::Configure {
                step,
                group,
                source,
            })
    }

    /// Waits (at most a second) for the next datagram and returns the
    /// packets in it; a timeout or an overflowed socket (a flood) returns
    /// `Ok` with nothing.
    pub fn read(&mut self) -> Result<Vec<LoggedPacket>, NflogError> {
        let packet_kind = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
        Ok(self
            .socket
            .listen()?
            .filter(|message| message.kind == packet_kind)
            .map(|message| logged_packet(message.payload.get(NFGENMSG_LEN..).unwrap_or_default()))
            .collect())
    }
}

/// Reads the attributes of one NFULNL_MSG_PACKET (after its nfgenmsg).
fn logged_packet(attributes: &[u8]) -> LoggedPacket {
    let mut packet = LoggedPacket {
        prefix: String::new(),
        indev: None,
        outdev: None,
        flow: None,
    };
    for (kind, value) in netlink::attributes(attributes) {
        let index = || {
            value
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match kind {
            NFULA_PREFIX => {
                packet.prefix = CStr::from_bytes_until_nul(value).map_or_else(
                    |_| String::from_utf8_lossy(value).into_owned(),
                    |c| c.to_string_lossy().into_owned(),
                );
            }
            NFULA_IFINDEX_INDEV => packet.indev = index().and_then(interface_name),
            NFULA_IFINDEX_OUTDEV => packet.outdev = index().and_then(interface_name),
            NFULA_PAYLOAD => packet.flow = parse(value),
            _ => {}
        }
    }
    packet
}

fn interface_name(index: u32) -> Option<String> {
    nix::net::if_::if_indextoname(index)
        .ok()
        .map(|name| name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScratchNetns;

    #[test]
    fn logged_packets_arrive_with_their_prefix_and_flow() {
        let Some(netns) = ScratchNetns::new("nflog") else {
            return;
        };
        let host = netns.host();
        host.run("ip", &["link", "set", "lo", "up"], None)
            .expect("lo up");
        host.nft(
            "table inet t {\n chain out {\n type filter hook output priority filter; policy accept;\n \
             udp dport 9999 log prefix \"boxfence app_policy \" group 7\n }\n}\n",
        )
        .expect("ruleset");
        let packets = host
            .in_netns(|| {
                let mut reader = NflogReader::open(7).expect("bind group 7");
                let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
                socket.send_to(b"x", "127.0.0.5:9999").expect("send");
                reader.read().expect("read")
            })
            .expect("in namespace");
        let packet = packets.first().expect("one packet logged");
        assert_eq!(packet.prefix, "boxfence app_policy ");
        assert_eq!(packet.outdev.as_deref(), Some("lo"));
        let flow = packet.flow.expect("flow parsed");
        assert_eq!(
            (flow.protocol, flow.dport),
            (boxfence_policy::Protocol::Udp, Some(9999))
        );
        assert_eq!(flow.dst.to_string(), "127.0.0.5");
    }
}
