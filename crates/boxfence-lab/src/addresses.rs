//! Every address, port and interface name of the lab, in one place.
//!
//! Everything lives on documentation ranges (RFC 5737, RFC 3849) except the
//! two 104.16.0.0/12 hosts, which the seeds' examples name verbatim; that is
//! safe only because the lab has no link out (DESIGN.md section 4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The lab host's uplink interface (a veth whose peer is in the internet
/// namespace). Interface names are per namespace, so one fixed name serves
/// every lab at once.
pub const UPLINK: &str = "uplink0";
/// The internet namespace's end of the uplink veth.
pub const INTERNET_LINK: &str = "inet0";
/// The internet namespace's interface that carries the server addresses:
/// its loopback, because kernels built without the dummy driver (like the
/// project's machines) cannot make a dummy interface.
pub const SERVER_LINK: &str = "lo";

/// The lab host's IPv4 address on its uplink: what masqueraded box traffic
/// shows as its source to the servers.
pub const LAB_HOST_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The lab host's IPv6 address on its uplink.
pub const LAB_HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);
/// The internet side of the uplink: the lab host's IPv4 default gateway.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The internet side of the uplink: the lab host's IPv6 default gateway.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x254);
/// Prefix length of the IPv4 uplink network (192.0.2.0/24).
pub const UPLINK_PREFIX_V4: u8 = 24;
/// Prefix length of the IPv6 uplink network (2001:db8:ffff::/64).
pub const UPLINK_PREFIX_V6: u8 = 64;

/// The main test server (TEST-NET-2).
pub const SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// Where the lab's DNS server will answer (a later issue starts dnsmasq
/// here); until then it carries the same test servers as the others.
pub const DNS_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
/// A second server on another documentation range (TEST-NET-3), for
/// "this CIDR allowed, that one not" tests.
pub const OTHER_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// Inside both 104.16.0.0/12 and 104.16.120.0/24 (the seeds' denied /24).
pub const CDN_INSIDE_DENIED_V4: Ipv4Addr = Ipv4Addr::new(104, 16, 120, 5);
/// Inside 104.16.0.0/12 but outside 104.16.120.0/24.
pub const CDN_OUTSIDE_DENIED_V4: Ipv4Addr = Ipv4Addr::new(104, 17, 0, 5);
/// The main IPv6 test server.
pub const SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
/// Where the lab's IPv6 DNS server will answer.
pub const DNS_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53);

/// Every address in the internet namespace that runs the test servers.
pub const SERVER_ADDRS: [IpAddr; 7] = [
    IpAddr::V4(SERVER_V4),
    IpAddr::V4(DNS_V4),
    IpAddr::V4(OTHER_V4),
    IpAddr::V4(CDN_INSIDE_DENIED_V4),
    IpAddr::V4(CDN_OUTSIDE_DENIED_V4),
    IpAddr::V6(SERVER_V6),
    IpAddr::V6(DNS_V6),
];

/// Plain HTTP.
pub const HTTP_PORT: u16 = 80;
/// Plain HTTP on a second port, for port-narrowing rules.
pub const HTTP_ALT_PORT: u16 = 8080;
/// HTTPS with the lab's self-signed certificate (`curl -k`, or
/// `--cacert` with [`crate::Lab::tls_cert`]).
pub const HTTPS_PORT: u16 = 443;
/// UDP echo: every datagram comes back unchanged, from the address it was
/// sent to.
pub const UDP_ECHO_PORT: u16 = 5353;
/// UDP echo on HTTP/3's port, as a QUIC server's address would answer.
pub const QUIC_ECHO_PORT: u16 = 443;
/// TCP "hold" server: keeps a connection open and echoes each line, so a
/// test can see an established flow get cut later.
pub const HOLD_PORT: u16 = 9000;
/// Every TCP port the servers listen on, at every address of
/// [`SERVER_ADDRS`].
pub const TCP_PORTS: [u16; 4] = [HTTP_PORT, HTTP_ALT_PORT, HTTPS_PORT, HOLD_PORT];

/// Every address that the lab itself owns: the seal check never treats a
/// root-namespace address equal to one of these as proof of a leak.
pub(crate) fn lab_owned(addr: IpAddr) -> bool {
    SERVER_ADDRS.contains(&addr)
        || addr == IpAddr::V4(LAB_HOST_V4)
        || addr == IpAddr::V6(LAB_HOST_V6)
        || addr == IpAddr::V4(GATEWAY_V4)
        || addr == IpAddr::V6(GATEWAY_V6)
}
