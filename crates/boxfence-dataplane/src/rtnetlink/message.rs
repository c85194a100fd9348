//! rtnetlink requests: the messages `ip link`, `ip addr`, `ip route` and
//! `ip rule` send, encoded by netlink-packet-route and written back to
//! back into one datagram. Every message asks for an acknowledgement and
//! carries a label, in `ip`'s words, that names it when the kernel
//! refuses it.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::Emitable as _;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InetDevConf, InfoData, InfoKind,
    InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::rule::{IpFamily, Rule};
use crate::netlink::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, Writer};

const NLM_F_EXCL: u16 = 0x200;

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

    /// A link message about this link: by index, or by `IFLA_IFNAME`.
    fn message(self) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = self.index;
        if self.index == 0 {
            message
                .attributes
                .push(LinkAttribute::IfName(self.name.to_owned()));
        }
        message
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

    /// `ip link add <name> type veth peer name <peer> netns <netns>
    /// [address <mac>]`: the peer is made right in the namespace open at
    /// `netns_fd`, with `mac` when given (else a random one).
    pub(crate) fn add_veth(
        &mut self,
        name: &str,
        (peer, mac): (&str, Option<[u8; 6]>),
        netns_fd: RawFd,
        netns: &str,
    ) {
        let label = format!("link add {name} type veth peer name {peer} netns {netns}");
        // The caller keeps the descriptor open until the request is
        // answered.
        let mut peer = Dev::named(peer).message();
        peer.attributes.push(LinkAttribute::NetNsFd(netns_fd));
        if let Some(mac) = mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut link = Dev::named(name).message();
        link.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.push(
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
            label,
        );
    }

    /// `ip link set <dev> up`.
    pub(crate) fn set_up(&mut self, dev: Dev<'_>) {
        let mut link = dev.message();
        // Changes just this flag.
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        let label = format!("link set {} up", dev.name);
        self.push(RouteNetlinkMessage::NewLink(link), 0, label);
    }

    /// `ip link set <dev> addrgenmode none`: no IPv6 link-local address.
    pub(crate) fn set_addrgenmode_none(&mut self, dev: Dev<'_>) {
        let mut link = dev.message();
        link.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        let label = format!("link set {} addrgenmode none", dev.name);
        self.push(RouteNetlinkMessage::NewLink(link), 0, label);
    }

    /// `sysctl net.ipv4.conf.<dev>.src_valid_mark=1`, through the link's
    /// `IFLA_INET_CONF` (the same per-device value, without /proc).
    pub(crate) fn set_src_valid_mark(&mut self, dev: Dev<'_>) {
        // A request carries only the values that are not 0: this one.
        let mut conf = InetDevConf::default();
        conf.src_vmark = 1;
        let mut link = dev.message();
        link.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(conf),
            ])]));
        let label = format!("sysctl net.ipv4.conf.{}.src_valid_mark=1", dev.name);
        self.push(RouteNetlinkMessage::NewLink(link), 0, label);
    }

    /// `ip link del <name>`.
    pub(crate) fn del_link(&mut self, name: &str) {
        let label = format!("link del {name}");
        self.push(
            RouteNetlinkMessage::DelLink(Dev::named(name).message()),
            0,
            label,
        );
    }

    /// `ip link show <name>`: the answer carries the link's index.
    pub(crate) fn get_link(&mut self, name: &str) {
        let label = format!("link show {name}");
        self.push(
            RouteNetlinkMessage::GetLink(Dev::named(name).message()),
            0,
            label,
        );
    }

    /// `ip addr show`: every address of the namespace.
    pub(crate) fn get_addresses(&mut self) {
        self.push(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            "addr show".to_owned(),
        );
    }

    /// `ip addr add <addr>/<32|128> dev <dev> [nodad]`.
    pub(crate) fn add_address(&mut self, dev: Dev<'_>, addr: IpAddr, nodad: bool) {
        let (family, bits) = family(addr);
        let label = format!(
            "addr add {addr}/{bits} dev {}{}",
            dev.name,
            if nodad { " nodad" } else { "" }
        );
        let mut message = AddressMessage::default();
        message.header.family = family;
        message.header.prefix_len = bits;
        message.header.index = dev.index;
        let mut flags = AddressFlags::empty();
        if nodad {
            flags |= AddressFlags::Nodad;
            message.header.flags = AddressHeaderFlags::Nodad;
        }
        message.attributes.extend([
            AddressAttribute::Local(addr),
            AddressAttribute::Address(addr),
            AddressAttribute::Flags(flags),
        ]);
        self.push(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
            label,
        );
    }

    /// `ip route add <dst>/<32|128> dev <dev>`.
    pub(crate) fn add_host_route(&mut self, dst: IpAddr, dev: Dev<'_>) {
        let (family, bits) = family(dst);
        let label = format!("route add {dst}/{bits} dev {}", dev.name);
        // `ip` gives IPv4 routes without a gateway link scope.
        let scope = if dst.is_ipv4() {
            RouteScope::Link
        } else {
            RouteScope::Universe
        };
        let mut route = route(family, bits, scope);
        route.attributes.extend([
            RouteAttribute::Destination(address(dst)),
            RouteAttribute::Oif(dev.index),
        ]);
        self.push(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
            label,
        );
    }

    /// `ip route add default via <via> dev <dev> src <src>`.
    pub(crate) fn add_default_route(&mut self, via: IpAddr, dev: Dev<'_>, src: IpAddr) {
        let label = format!("route add default via {via} dev {} src {src}", dev.name);
        let mut route = route(family(via).0, 0, RouteScope::Universe);
        route.attributes.extend([
            RouteAttribute::Gateway(address(via)),
            RouteAttribute::Oif(dev.index),
            RouteAttribute::PrefSource(address(src)),
        ]);
        self.push(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
            label,
        );
    }

    /// `ip -4|-6 rule add <rule>`; a rule that is there already is
    /// refused (`EEXIST`).
    pub(crate) fn add_rule(&mut self, rule: &Rule) {
        let label = format!("{} rule add {rule}", rule.family.flag());
        self.push(
            RouteNetlinkMessage::NewRule(rule.message()),
            NLM_F_CREATE | NLM_F_EXCL,
            label,
        );
    }

    /// `ip -4|-6 rule del <rule>`: removes a rule equal to this one only.
    pub(crate) fn del_rule(&mut self, rule: &Rule) {
        let label = format!("{} rule del {rule}", rule.family.flag());
        self.push(RouteNetlinkMessage::DelRule(rule.message()), 0, label);
    }

    /// `ip -4|-6 rule del pref <pref>`: removes the first rule with that
    /// preference, whatever it does (`ENOENT` when there is none).
    pub(crate) fn del_rule_pref(&mut self, family: IpFamily, pref: u32) {
        let label = format!("{} rule del pref {pref}", family.flag());
        self.push(
            RouteNetlinkMessage::DelRule(family.pref_message(pref)),
            0,
            label,
        );
    }

    /// Appends `message` with its `nlmsghdr`, numbered after the ones
    /// before it, asking for an acknowledgement.
    fn push(&mut self, message: RouteNetlinkMessage, flags: u16, label: String) {
        let seq = self
            .first_seq
            .wrapping_add(u32::try_from(self.labels.len()).unwrap_or(u32::MAX));
        self.labels.push(label);
        let start = self.writer.begin_header(
            message.message_type(),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
        );
        let mut payload = vec![0; message.buffer_len()];
        message.emit(&mut payload);
        self.writer.put_raw(&payload);
        self.writer.end_message(start);
    }
}

/// A unicast route in the main table, as `ip route add` makes it.
fn route(family: AddressFamily, dst_len: u8, scope: RouteScope) -> RouteMessage {
    let mut route = RouteMessage::default();
    route.header.address_family = family;
    route.header.destination_prefix_length = dst_len;
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.scope = scope;
    route.header.kind = RouteType::Unicast;
    route
}

/// The family of `addr` and its host prefix length.
fn family(addr: IpAddr) -> (AddressFamily, u8) {
    match addr {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    }
}

fn address(addr: IpAddr) -> RouteAddress {
    match addr {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}
