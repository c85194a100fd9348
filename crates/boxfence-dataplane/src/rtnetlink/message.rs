//! rtnetlink requests: the messages `ip link`, `ip addr` and `ip route`
//! send, written back to back into one datagram. Every message asks for
//! an acknowledgement and carries a label, in `ip`'s words, that names
//! it when the kernel refuses it.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::Emitable as _;
use netlink_packet_route::rule::RuleMessage;

use super::rule::{IpFamily, Rule};
use crate::netlink::{NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, Start, Writer};

pub(super) const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;

const NLM_F_EXCL: u16 = 0x200;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IFF_UP: u32 = 0x1;

const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
/// In `IFLA_AF_SPEC` → `AF_INET`: the device's `net.ipv4.conf` values,
/// each an attribute whose type is the `IPV4_DEVCONF_*` index.
const IFLA_INET_CONF: u16 = 1;
const IPV4_DEVCONF_SRC_VMARK: u16 = 24;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RT_TABLE_MAIN: u8 = 254;
/// What `ip route add` marks its routes with.
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;

/// A link a message is about: by index, or by name where the kernel
/// allows that (link changes; addresses and routes need the index).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dev<'a> {
    index: u32,
    name: &'a str,
}

impl<'a> Dev<'a> {
    /// The link with this index (the name is for labels).
    pub(crate) fn new(index: u32, name: &'a str) -> Self {
        Self { index, name }
    }

    /// The link the kernel looks up by `name`.
    pub(crate) fn named(name: &'a str) -> Self {
        Self { index: 0, name }
    }
}

/// The messages of one datagram, numbered from `first_seq`.
#[derive(Debug)]
pub(crate) struct Request {
    writer: Writer,
    first_seq: u32,
    labels: Vec<String>,
}

impl Request {
    pub(super) fn new(first_seq: u32) -> Self {
        Self {
            writer: Writer::with_capacity(1024),
            first_seq,
            labels: Vec::new(),
        }
    }

    pub(super) fn first_seq(&self) -> u32 {
        self.first_seq
    }

    pub(super) fn labels(&self) -> &[String] {
        &self.labels
    }

    pub(super) fn bytes(&self) -> &[u8] {
        self.writer.bytes()
    }

    /// `ip link add <name> type veth peer name <peer> netns <netns>`:
    /// the peer is made right in the namespace open at `netns_fd`.
    pub(crate) fn add_veth(&mut self, name: &str, peer: &str, netns_fd: RawFd, netns: &str) {
        let label = format!("link add {name} type veth peer name {peer} netns {netns}");
        let start = self.begin(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, label);
        self.link_header(Dev::named(name), 0);
        let info = self.writer.begin_nested(IFLA_LINKINFO);
        self.writer.put_strz(IFLA_INFO_KIND, "veth");
        let data = self.writer.begin_nested(IFLA_INFO_DATA);
        let peer_info = self.writer.begin_nested(VETH_INFO_PEER);
        self.link_header(Dev::named(peer), 0);
        // An open descriptor is a valid u32; the caller keeps it open
        // until the request is answered.
        self.writer.put(
            IFLA_NET_NS_FD,
            &u32::try_from(netns_fd).unwrap_or(u32::MAX).to_ne_bytes(),
        );
        self.writer.end_nested(peer_info);
        self.writer.end_nested(data);
        self.writer.end_nested(info);
        self.writer.end_message(start);
    }

    /// `ip link set <dev> up`.
    pub(crate) fn set_up(&mut self, dev: Dev<'_>) {
        let start = self.begin(RTM_NEWLINK, 0, format!("link set {} up", dev.name));
        self.link_header(dev, IFF_UP);
        self.writer.end_message(start);
    }

    /// `ip link set <dev> addrgenmode none`: no IPv6 link-local address.
    pub(crate) fn set_addrgenmode_none(&mut self, dev: Dev<'_>) {
        let label = format!("link set {} addrgenmode none", dev.name);
        let start = self.begin(RTM_NEWLINK, 0, label);
        self.link_header(dev, 0);
        let spec = self.writer.begin_nested(IFLA_AF_SPEC);
        let inet6 = self.writer.begin_nested(u16::from(AF_INET6));
        self.writer
            .put(IFLA_INET6_ADDR_GEN_MODE, &[IN6_ADDR_GEN_MODE_NONE]);
        self.writer.end_nested(inet6);
        self.writer.end_nested(spec);
        self.writer.end_message(start);
    }

    /// `sysctl net.ipv4.conf.<dev>.src_valid_mark=1`, through the link's
    /// `IFLA_INET_CONF` (the same per-device value, without /proc).
    pub(crate) fn set_src_valid_mark(&mut self, dev: Dev<'_>) {
        let label = format!("sysctl net.ipv4.conf.{}.src_valid_mark=1", dev.name);
        let start = self.begin(RTM_NEWLINK, 0, label);
        self.link_header(dev, 0);
        let spec = self.writer.begin_nested(IFLA_AF_SPEC);
        let inet = self.writer.begin_nested(u16::from(AF_INET));
        let conf = self.writer.begin_nested(IFLA_INET_CONF);
        self.writer.put(IPV4_DEVCONF_SRC_VMARK, &1u32.to_ne_bytes());
        self.writer.end_nested(conf);
        self.writer.end_nested(inet);
        self.writer.end_nested(spec);
        self.writer.end_message(start);
    }

    /// `ip link del <name>`.
    pub(crate) fn del_link(&mut self, name: &str) {
        let start = self.begin(RTM_DELLINK, 0, format!("link del {name}"));
        self.link_header(Dev::named(name), 0);
        self.writer.end_message(start);
    }

    /// `ip link show <name>`: the answer carries the link's index.
    pub(crate) fn get_link(&mut self, name: &str) {
        let start = self.begin(RTM_GETLINK, 0, format!("link show {name}"));
        self.link_header(Dev::named(name), 0);
        self.writer.end_message(start);
    }

    /// `ip addr add <addr>/<32|128> dev <dev> [nodad]`.
    pub(crate) fn add_address(&mut self, dev: Dev<'_>, addr: IpAddr, nodad: bool) {
        let (family, bits, octets) = parts(addr);
        let flags = if nodad { IFA_F_NODAD } else { 0 };
        let label = format!(
            "addr add {addr}/{bits} dev {}{}",
            dev.name,
            if nodad { " nodad" } else { "" }
        );
        let start = self.begin(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, label);
        // ifaddrmsg: family, prefix length, flags (low byte), scope, index.
        self.writer
            .put_raw(&[family, bits, flags as u8, RT_SCOPE_UNIVERSE]);
        self.writer.put_raw(&dev.index.to_ne_bytes());
        self.writer.put(IFA_LOCAL, &octets);
        self.writer.put(IFA_ADDRESS, &octets);
        self.writer.put(IFA_FLAGS, &flags.to_ne_bytes());
        self.writer.end_message(start);
    }

    /// `ip route add <dst>/<32|128> dev <dev>`.
    pub(crate) fn add_host_route(&mut self, dst: IpAddr, dev: Dev<'_>) {
        let (family, bits, octets) = parts(dst);
        let label = format!("route add {dst}/{bits} dev {}", dev.name);
        // `ip` gives IPv4 routes without a gateway link scope.
        let scope = if family == AF_INET {
            RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        };
        let start = self.begin_route(family, bits, scope, label);
        self.writer.put(RTA_DST, &octets);
        self.writer.put(RTA_OIF, &dev.index.to_ne_bytes());
        self.writer.end_message(start);
    }

    /// `ip route add default via <via> dev <dev> src <src>`.
    pub(crate) fn add_default_route(&mut self, via: IpAddr, dev: Dev<'_>, src: IpAddr) {
        let (family, _, gateway) = parts(via);
        let label = format!("route add default via {via} dev {} src {src}", dev.name);
        let start = self.begin_route(family, 0, RT_SCOPE_UNIVERSE, label);
        self.writer.put(RTA_GATEWAY, &gateway);
        self.writer.put(RTA_OIF, &dev.index.to_ne_bytes());
        self.writer.put(RTA_PREFSRC, &parts(src).2);
        self.writer.end_message(start);
    }

    /// `ip -4|-6 rule add <rule>`; a rule that is there already is
    /// refused (`EEXIST`).
    pub(crate) fn add_rule(&mut self, rule: &Rule) {
        let label = format!("{} rule add {rule}", rule.family.flag());
        self.rule(
            RTM_NEWRULE,
            NLM_F_CREATE | NLM_F_EXCL,
            label,
            &rule.message(),
        );
    }

    /// `ip -4|-6 rule del <rule>`: removes a rule equal to this one only.
    pub(crate) fn del_rule(&mut self, rule: &Rule) {
        let label = format!("{} rule del {rule}", rule.family.flag());
        self.rule(RTM_DELRULE, 0, label, &rule.message());
    }

    /// `ip -4|-6 rule del pref <pref>`: removes the first rule with that
    /// preference, whatever it does (`ENOENT` when there is none).
    pub(crate) fn del_rule_pref(&mut self, family: IpFamily, pref: u32) {
        let label = format!("{} rule del pref {pref}", family.flag());
        self.rule(RTM_DELRULE, 0, label, &family.pref_message(pref));
    }

    fn rule(&mut self, kind: u16, flags: u16, label: String, message: &RuleMessage) {
        let start = self.begin(kind, flags, label);
        let mut bytes = vec![0; message.buffer_len()];
        message.emit(&mut bytes);
        self.writer.put_raw(&bytes);
        self.writer.end_message(start);
    }

    fn begin(&mut self, kind: u16, flags: u16, label: String) -> Start {
        let seq = self
            .first_seq
            .wrapping_add(u32::try_from(self.labels.len()).unwrap_or(u32::MAX));
        self.labels.push(label);
        self.writer
            .begin_header(kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq)
    }

    fn begin_route(&mut self, family: u8, dst_len: u8, scope: u8, label: String) -> Start {
        let start = self.begin(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, label);
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
        // type, flags.
        self.writer.put_raw(&[
            family,
            dst_len,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            scope,
            RTN_UNICAST,
        ]);
        self.writer.put_raw(&0u32.to_ne_bytes());
        start
    }

    /// `ifinfomsg` setting `flags` (and changing just those); a link
    /// without index is named by `IFLA_IFNAME`.
    fn link_header(&mut self, dev: Dev<'_>, flags: u32) {
        self.writer.put_raw(&[AF_UNSPEC, 0, 0, 0]);
        self.writer.put_raw(&dev.index.to_ne_bytes());
        self.writer.put_raw(&flags.to_ne_bytes());
        self.writer.put_raw(&flags.to_ne_bytes()); // change: just these
        if dev.index == 0 {
            self.writer.put_strz(IFLA_IFNAME, dev.name);
        }
    }
}

/// Family, host prefix length and address bytes.
fn parts(addr: IpAddr) -> (u8, u8, Vec<u8>) {
    match addr {
        IpAddr::V4(v4) => (AF_INET, 32, v4.octets().to_vec()),
        IpAddr::V6(v6) => (AF_INET6, 128, v6.octets().to_vec()),
    }
}
