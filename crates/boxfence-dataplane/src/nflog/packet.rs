//! The headers of a logged packet: enough to name its flow.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::conntrack::TrackedFlow;

/// Reads an IPv4 or IPv6 packet (from its IP header on); `None` for
/// anything too short or of another transport.
pub fn parse(packet: &[u8]) -> Option<TrackedFlow> {
    let version = packet.first()? >> 4;
    let (next, src, dst, rest) = match version {
        4 => {
            let header_len = usize::from(packet.first()? & 0x0f) * 4;
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            (
                *packet.get(9)?,
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                packet.get(header_len..)?,
            )
        }
        6 => {
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            // Extension headers are not followed: boxfence's flows carry none.
            (
                *packet.get(6)?,
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                packet.get(40..)?,
            )
        }
        _ => return None,
    };
    let port = |at: usize| {
        rest.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    Some(TrackedFlow::new(next, src, dst, port(0), port(2)))
}

#[cfg(test)]
mod tests {
    use boxfence_policy::Protocol;

    use super::*;
    use crate::conntrack::{TCP, UDP};

    #[test]
    fn tcp_over_ipv4_and_udp_over_ipv6_parse() {
        let mut v4 = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, TCP, 0, 0, 10, 200, 0, 2, 198, 51, 100, 10,
        ];
        v4.extend_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        let flow = parse(&v4).expect("parses");
        assert_eq!(
            (flow.protocol, flow.sport, flow.dport),
            (Protocol::Tcp, Some(40000), Some(80))
        );
        assert_eq!(flow.dst.to_string(), "198.51.100.10");

        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, UDP, 64];
        v6.extend_from_slice(&"fd00:b0f::2".parse::<Ipv6Addr>().expect("ip").octets());
        v6.extend_from_slice(&"2001:db8::10".parse::<Ipv6Addr>().expect("ip").octets());
        v6.extend_from_slice(&[0x30, 0x39, 0x14, 0xe9]);
        let flow = parse(&v6).expect("parses");
        assert_eq!(
            (flow.protocol, flow.sport, flow.dport),
            (Protocol::Udp, Some(12345), Some(5353))
        );
        assert!(parse(&v6[..30]).is_none(), "truncated");
        assert!(parse(&[0x45, 0, 0]).is_none());
    }
}
