//! A queued TCP segment: its flow, sequence number and payload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IANA protocol number of TCP.
const TCP: u8 = 6;

/// One TCP segment of a queued packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number of its first payload byte.
    pub seq: u32,
    /// The bytes it carries.
    pub payload: &'a [u8],
}

/// Reads a TCP segment over IPv4 or IPv6 (from the IP header on); `None`
/// for anything else, truncated, or with IPv6 extension headers (boxfence
/// queues none: a box's flows carry none that it would need to read).
pub fn parse_segment(packet: &[u8]) -> Option<Segment<'_>> {
    let version = packet.first()? >> 4;
    let (protocol, src, dst, transport) = match version {
        4 => {
            let header_len = usize::from(packet.first()? & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            (
                *packet.get(9)?,
                IpAddr::V4(Ipv4Addr::from(src)),
                IpAddr::V4(Ipv4Addr::from(dst)),
                packet.get(header_len..total.min(packet.len()))?,
            )
        }
        6 => {
            let len = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            (
                *packet.get(6)?,
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                packet.get(40..(40 + len).min(packet.len()))?,
            )
        }
        _ => return None,
    };
    if protocol != TCP {
        return None;
    }
    let word = |at: usize| {
        Some(u16::from_be_bytes([
            *transport.get(at)?,
            *transport.get(at + 1)?,
        ]))
    };
    let seq = u32::from_be_bytes(transport.get(4..8)?.try_into().ok()?);
    let data_offset = usize::from(transport.get(12)? >> 4) * 4;
    Some(Segment {
        src,
        dst,
        sport: word(0)?,
        dport: word(2)?,
        seq,
        payload: transport.get(data_offset..)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(payload: &[u8]) -> Vec<u8> {
        let mut segment = vec![
            0x9c, 0x40, 0x01, 0xbb, 0, 0, 0x10, 0, 0, 0, 0, 0, 0x50, 0x18,
        ];
        segment.extend_from_slice(&[0; 6]);
        segment.extend_from_slice(payload);
        segment
    }

    #[test]
    fn ipv4_and_ipv6_segments_give_their_flow_and_payload() {
        let body = tcp(b"GET /");
        let total = u16::try_from(20 + body.len()).expect("small");
        let mut v4 = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, TCP, 0, 0, 10, 200, 0, 2, 203, 0, 113, 10,
        ];
        v4[2..4].copy_from_slice(&total.to_be_bytes());
        v4.extend_from_slice(&body);
        // Ethernet padding past the IP length is not payload.
        v4.extend_from_slice(&[0; 6]);
        let segment = parse_segment(&v4).expect("parses");
        assert_eq!(
            (segment.sport, segment.dport, segment.seq),
            (40000, 443, 0x1000)
        );
        assert_eq!(segment.payload, b"GET /");
        assert_eq!(segment.dst.to_string(), "203.0.113.10");

        let mut v6 = vec![0x60, 0, 0, 0, 0, 0, TCP, 64];
        v6[4..6].copy_from_slice(&u16::try_from(body.len()).expect("small").to_be_bytes());
        v6.extend_from_slice(&"fd00:b0f::2".parse::<Ipv6Addr>().expect("ip").octets());
        v6.extend_from_slice(&"2001:db8::10".parse::<Ipv6Addr>().expect("ip").octets());
        v6.extend_from_slice(&body);
        let segment = parse_segment(&v6).expect("parses");
        assert_eq!(segment.payload, b"GET /");
        assert!(parse_segment(&v6[..45]).is_none(), "truncated");
        let mut udp = v4.clone();
        udp[9] = 17;
        assert!(parse_segment(&udp).is_none());
    }
}
