//! The model lowered to what the kernel holds: rules to expressions, set
//! kinds to declarations, elements to the kernel's elements, base chains
//! to hooks. Pure functions: the netlink client encodes their results, and
//! the listing the model expects is made of them.
//!
//! Expressions come in the order and registers nft 1.0.6 uses for the
//! same text (so `nft list` shows our rules as it would show its own;
//! checked by the twin tests in `ruleset`).

use std::net::IpAddr;

use boxfence_policy::matchers::IpRange;
use ipnet::IpNet;

use super::expr::*;
use super::{
    BaseChain, ChainType, Element, Family, Hook, Interface, MapKey, Match, Peer, Reject, Rule,
    SetKind, Statement, Verdict,
};

/// What cannot be lowered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LowerError {
    /// An interface name (or a pattern's prefix) is empty, longer than 15
    /// bytes, or contains NUL.
    #[error("invalid interface name {0:?} (1 to 15 bytes, no NUL)")]
    InvalidIfname(String),
}

/// `IFNAMSIZ`.
const IFNAMSIZ: usize = 16;
/// `sizeof(struct nft_verdict)` on 64-bit kernels.
const VERDICT_LEN: u32 = 16;
/// `NFPROTO_IPV4`, `NFPROTO_IPV6`.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// IANA protocol number of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;
/// `NFT_BYTEORDER_HTON`.
const BYTEORDER_HTON: u32 = 1;
/// `NFT_LIMIT_PKTS`.
const LIMIT_PACKETS: u32 = 0;
/// `NFT_REJECT_TCP_RST`, `NFT_REJECT_ICMPX_UNREACH`.
const REJECT_TCP_RST: u32 = 1;
const REJECT_ICMPX: u32 = 2;
/// `NFT_REJECT_ICMPX_ADMIN_PROHIBITED`.
const ICMPX_ADMIN_PROHIBITED: u8 = 3;
/// `NFT_NAT_DNAT`.
const NAT_DNAT: u32 = 1;
/// `NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED`: what the kernel
/// keeps for a NAT to an address and port.
const NAT_MAP_IPS_AND_PROTO: u32 = 0x1 | 0x2;
/// `NF_INET_*` hook numbers.
const HOOK_PREROUTING: u32 = 0;
const HOOK_INPUT: u32 = 1;
const HOOK_POSTROUTING: u32 = 4;
const HOOK_INGRESS: u32 = 5;
/// nft's user data of an interval open at the top of the address space
/// (`NFTNL_UDATA_SET_ELEM_FLAGS` = `NFTNL_SET_ELEM_F_INTERVAL_OPEN`).
const INTERVAL_OPEN: [u8; 6] = [1, 4, 1, 0, 0, 0];

/// The expressions of a rule: matches, statements, the named counter,
/// the verdict.
pub fn rule(rule: &Rule) -> Result<Vec<Expr>, LowerError> {
    let mut out = Exprs::default();
    for m in &rule.matches {
        out.condition(m)?;
    }
    for statement in &rule.statements {
        out.statement(statement);
    }
    if let Some(counter) = &rule.counter {
        out.push(Expr::Objref {
            kind: OBJECT_COUNTER,
            name: counter.clone(),
        });
    }
    if let Some(verdict) = &rule.verdict {
        out.push(Expr::Immediate {
            dreg: REG_VERDICT,
            data: verdict_data(verdict),
        });
    }
    Ok(out.exprs)
}

/// A verdict as register data.
pub fn verdict_data(verdict: &Verdict) -> Data {
    let (code, chain) = match verdict {
        Verdict::Accept => (VERDICT_ACCEPT, None),
        Verdict::Drop => (VERDICT_DROP, None),
        Verdict::Jump(chain) => (VERDICT_JUMP, Some(chain.clone())),
        Verdict::Goto(chain) => (VERDICT_GOTO, Some(chain.clone())),
    };
    Data::Verdict { code, chain }
}

/// How a set of this kind is declared.
pub fn set_spec(kind: SetKind) -> SetSpec {
    let (flags, key_type, key_len) = match kind {
        SetKind::Ipv4 => (SET_INTERVAL, TYPE_IPADDR, 4),
        SetKind::Ipv6 => (SET_INTERVAL, TYPE_IP6ADDR, 16),
        SetKind::Ipv4Networks | SetKind::Ipv4Verdicts => (0, TYPE_IPADDR, 4),
        SetKind::Ipv6Networks | SetKind::Ipv6Verdicts => (0, TYPE_IP6ADDR, 16),
        SetKind::ProtoPort => (
            SET_INTERVAL | SET_CONCAT,
            TYPE_INET_PROTOCOL << 6 | TYPE_INET_SERVICE,
            8,
        ),
        SetKind::Ipv4Learned => (SET_TIMEOUT, TYPE_IPADDR, 4),
        SetKind::Ipv6Learned => (SET_TIMEOUT, TYPE_IP6ADDR, 16),
        SetKind::IfnameIpv4Learned => (SET_TIMEOUT, TYPE_IFNAME << 6 | TYPE_IPADDR, 20),
        SetKind::IfnameIpv6Learned => (SET_TIMEOUT, TYPE_IFNAME << 6 | TYPE_IP6ADDR, 32),
        SetKind::IfnameVerdicts => (0, TYPE_IFNAME, 16),
    };
    let map = matches!(
        kind,
        SetKind::IfnameVerdicts | SetKind::Ipv4Verdicts | SetKind::Ipv6Verdicts
    );
    SetSpec {
        flags: flags | if map { SET_MAP } else { 0 },
        key_type,
        key_len,
        // The kernel keeps a verdict's size (`struct nft_verdict`),
        // whatever was sent.
        data: map.then_some((DATA_VERDICT, VERDICT_LEN)),
        // The concatenation's field lengths, for the pipapo backend.
        fields: if kind == SetKind::ProtoPort {
            vec![1, 2]
        } else {
            Vec::new()
        },
        userdata: if map {
            userdata(&[
                (KEY_BYTEORDER, byteorder(key_type)),
                (DATA_BYTEORDER, 0),
                (DATA_INTERVAL, 0),
            ])
        } else {
            Vec::new()
        },
    }
}

/// `NFTNL_UDATA_SET_KEYBYTEORDER`, `_DATABYTEORDER`, `_DATA_INTERVAL`:
/// what nft 1.0.6 says of a map's or an anonymous set's keys, without
/// which it lists interface names as `""`.
const KEY_BYTEORDER: u8 = 0;
const DATA_BYTEORDER: u8 = 1;
const DATA_INTERVAL: u8 = 6;

/// nft's byte order of a key type: `BYTEORDER_HOST_ENDIAN` for names and
/// protocol numbers, `BYTEORDER_BIG_ENDIAN` for addresses and the like.
fn byteorder(key_type: u32) -> u32 {
    match key_type {
        TYPE_IFNAME | TYPE_INET_PROTOCOL => 1,
        _ => 2,
    }
}

/// nft's user data: type, length, value (host byte order) each.
fn userdata(entries: &[(u8, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 * entries.len());
    for (kind, value) in entries {
        out.extend_from_slice(&[*kind, 4]);
        out.extend_from_slice(&value.to_ne_bytes());
    }
    out
}

/// The kernel's elements for `elements` (of one set). Address ranges
/// become nft's interval encoding: an element at each start, an
/// end-flagged one just past each end (none past the top of the address
/// space: that interval is open, which its user data says), and one
/// end-flagged element at zero when the first range starts above it.
pub fn elements(elements: &[Element]) -> Result<Vec<RawElement>, LowerError> {
    let mut out = Vec::with_capacity(elements.len() * 2 + 1);
    let mut ranges = Vec::new();
    for element in elements {
        match element {
            Element::Range(range) => ranges.push(*range),
            Element::ProtoPorts {
                protocol,
                first,
                last,
            } => {
                let key = |port: u16| {
                    let [hi, lo] = port.to_be_bytes();
                    vec![*protocol, 0, 0, 0, hi, lo, 0, 0]
                };
                out.push(RawElement {
                    key_end: Some(key(*last)),
                    ..RawElement::key(key(*first))
                });
            }
            Element::IfnameVerdict(ifname, verdict) => out.push(RawElement {
                data: Some(verdict_data(verdict)),
                ..RawElement::key(ifname_bytes(ifname)?)
            }),
            Element::AddrVerdict(addr, verdict) => out.push(RawElement {
                data: Some(verdict_data(verdict)),
                ..RawElement::key(address_bytes(*addr))
            }),
            Element::Addr(addr) => out.push(RawElement::key(address_bytes(*addr))),
            Element::Ifname(ifname) => out.push(RawElement::key(ifname_bytes(ifname)?)),
        }
    }
    out.extend(intervals(&ranges));
    Ok(out)
}

fn intervals(ranges: &[IpRange]) -> Vec<RawElement> {
    let mut out = Vec::with_capacity(ranges.len() * 2 + 1);
    let end = |key: Vec<u8>| RawElement {
        flags: ELEM_INTERVAL_END,
        ..RawElement::key(key)
    };
    if let Some(first) = ranges.first() {
        let start = address_bytes(first.first);
        if start.iter().any(|&b| b != 0) {
            out.push(end(vec![0; start.len()]));
        }
    }
    for range in ranges {
        let start = address_bytes(range.first);
        match next_address(range.last) {
            Some(next) => {
                out.push(RawElement::key(start));
                out.push(end(next));
            }
            None => out.push(RawElement {
                userdata: Some(INTERVAL_OPEN.to_vec()),
                ..RawElement::key(start)
            }),
        }
    }
    out
}

/// A base chain's hook.
pub fn hook(base: &BaseChain) -> HookSpec {
    let (hooknum, device) = match &base.hook {
        Hook::Prerouting => (HOOK_PREROUTING, None),
        Hook::Input => (HOOK_INPUT, None),
        Hook::Postrouting => (HOOK_POSTROUTING, None),
        Hook::Ingress(device) => (HOOK_INGRESS, Some(device.clone())),
    };
    HookSpec {
        chain_type: match base.chain_type {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        }
        .to_owned(),
        hooknum,
        priority: base.priority,
        policy: VERDICT_ACCEPT as u32,
        device,
    }
}

/// An address in network byte order.
pub fn address_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// An interface name NUL-padded to `IFNAMSIZ`, as nft lays out `ifname`.
pub fn ifname_bytes(ifname: &str) -> Result<Vec<u8>, LowerError> {
    if ifname.is_empty() || ifname.len() >= IFNAMSIZ || ifname.contains('\0') {
        return Err(LowerError::InvalidIfname(ifname.to_owned()));
    }
    let mut key = vec![0; IFNAMSIZ];
    key[..ifname.len()].copy_from_slice(ifname.as_bytes());
    Ok(key)
}

/// The address after `addr`, or `None` at the top of its family.
fn next_address(addr: IpAddr) -> Option<Vec<u8>> {
    match addr {
        IpAddr::V4(a) => u32::from(a)
            .checked_add(1)
            .map(|n| n.to_be_bytes().to_vec()),
        IpAddr::V6(a) => u128::from(a)
            .checked_add(1)
            .map(|n| n.to_be_bytes().to_vec()),
    }
}

/// The offset and length of an address in the network header.
fn address_field(family: Family, peer: Peer) -> (u32, u32) {
    match (family, peer) {
        (Family::Ipv4, Peer::Source) => (12, 4),
        (Family::Ipv4, Peer::Destination) => (16, 4),
        (Family::Ipv6, Peer::Source) => (8, 16),
        (Family::Ipv6, Peer::Destination) => (24, 16),
    }
}

/// The expressions of one rule, as they are written.
#[derive(Default)]
struct Exprs {
    exprs: Vec<Expr>,
    /// The family already required (nft states it once per rule).
    nfproto: Option<Family>,
}

impl Exprs {
    fn push(&mut self, expr: Expr) {
        self.exprs.push(expr);
    }

    fn condition(&mut self, m: &Match) -> Result<(), LowerError> {
        match m {
            Match::Addr { family, peer, set } => {
                self.address(*family, *peer, REG_1);
                self.lookup(named(set));
            }
            Match::AddrMasked {
                family,
                peer,
                prefix_len,
                set,
            } => {
                self.address(*family, *peer, REG_1);
                self.mask(address_bytes(family.mask(*prefix_len)));
                self.lookup(named(set));
            }
            Match::IfnameAddr { family, peer, set } => {
                self.nfproto(*family);
                self.meta(META_IIFNAME);
                self.address(*family, *peer, REG_2);
                self.lookup(named(set));
            }
            Match::ProtoPort { set } => {
                self.meta(META_L4PROTO);
                // A no-op on a byte (nft 1.0.6 emits it for this concatenation).
                self.push(Expr::Byteorder {
                    sreg: REG_1,
                    dreg: REG_1,
                    op: BYTEORDER_HTON,
                    len: 1,
                    size: 2,
                });
                self.payload(BASE_TRANSPORT, 2, 2, REG32_01);
                self.lookup(named(set));
            }
            Match::L4proto(protocol) => {
                self.meta(META_L4PROTO);
                self.cmp(CMP_EQ, vec![*protocol]);
            }
            Match::AddrIs { peer, addr } => {
                self.address(Family::of(*addr), *peer, REG_1);
                self.cmp(CMP_EQ, address_bytes(*addr));
            }
            Match::AddrInNet { peer, net } => self.network(*peer, net),
            Match::AddrInList {
                family,
                peer,
                ranges,
            } => {
                self.address(*family, *peer, REG_1);
                let key = match family {
                    Family::Ipv4 => set_spec(SetKind::Ipv4),
                    Family::Ipv6 => set_spec(SetKind::Ipv6),
                };
                self.constant_set(key, intervals(ranges));
            }
            Match::Nfproto(family) => self.nfproto(*family),
            Match::L4protoIn(protocols) => {
                self.meta(META_L4PROTO);
                self.constant_set(one_byte_keys(TYPE_INET_PROTOCOL), bytes(protocols));
            }
            Match::Dport { port, equal } => {
                self.payload(BASE_TRANSPORT, 2, 2, REG_1);
                self.cmp(op(*equal), port.to_be_bytes().to_vec());
            }
            Match::Icmpv6TypeIn(types) => {
                self.nfproto(Family::Ipv6);
                self.meta(META_L4PROTO);
                self.cmp(CMP_EQ, vec![IPPROTO_ICMPV6]);
                self.payload(BASE_TRANSPORT, 0, 1, REG_1);
                self.constant_set(one_byte_keys(TYPE_ICMP6_TYPE), bytes(types));
            }
            Match::CtState(bits) => {
                self.push(Expr::Ct {
                    key: CT_STATE,
                    dreg: REG_1,
                    direction: None,
                });
                self.mask(bits.to_ne_bytes().to_vec());
                self.cmp(CMP_NEQ, vec![0; 4]);
            }
            Match::Ifname {
                interface,
                name,
                equal,
            } => {
                self.meta(ifname_key(*interface));
                let bytes = match name.strip_suffix('*') {
                    Some(prefix) if !prefix.is_empty() && ifname_bytes(prefix).is_ok() => {
                        prefix.as_bytes().to_vec()
                    }
                    Some(_) => return Err(LowerError::InvalidIfname(name.clone())),
                    None => ifname_bytes(name)?,
                };
                self.cmp(op(*equal), bytes);
            }
            Match::IfnameIn { interface, names } => {
                self.meta(ifname_key(*interface));
                let elements = names
                    .iter()
                    .map(|n| ifname_bytes(n).map(RawElement::key))
                    .collect::<Result<_, _>>()?;
                let spec = SetSpec {
                    flags: 0,
                    key_type: TYPE_IFNAME,
                    key_len: IFNAMSIZ as u32,
                    data: None,
                    fields: Vec::new(),
                    userdata: Vec::new(),
                };
                self.constant_set(spec, elements);
            }
            Match::MarkClear(mask) => {
                self.meta(META_MARK);
                self.mask(mask.to_ne_bytes().to_vec());
                self.cmp(CMP_EQ, vec![0; 4]);
            }
        }
        Ok(())
    }

    fn statement(&mut self, statement: &Statement) {
        match statement {
            Statement::OriginalZone(zone) => {
                self.immediate(REG_1, zone.to_ne_bytes().to_vec());
                self.push(Expr::CtSet {
                    key: CT_ZONE,
                    sreg: REG_1,
                    direction: Some(CT_DIR_ORIGINAL),
                });
            }
            Statement::Mark(mark) => {
                self.immediate(REG_1, mark.to_ne_bytes().to_vec());
                self.set_mark();
            }
            Statement::MarkOr(bits) => {
                self.meta(META_MARK);
                self.push(Expr::Bitwise {
                    sreg: REG_1,
                    dreg: REG_1,
                    len: 4,
                    mask: (!bits).to_ne_bytes().to_vec(),
                    xor: bits.to_ne_bytes().to_vec(),
                });
                self.set_mark();
            }
            Statement::Counter => self.push(Expr::Counter),
            Statement::Limit { per_second, burst } => self.push(Expr::Limit {
                rate: *per_second,
                unit: 1,
                burst: *burst,
                kind: LIMIT_PACKETS,
                flags: 0,
            }),
            Statement::Log { prefix, group } => self.push(Expr::Log {
                prefix: Some(prefix.clone()),
                group: Some(*group),
            }),
            Statement::Reject(Reject::TcpReset) => self.push(Expr::Reject {
                kind: REJECT_TCP_RST,
                code: None,
            }),
            Statement::Reject(Reject::AdminProhibited) => self.push(Expr::Reject {
                kind: REJECT_ICMPX,
                code: Some(ICMPX_ADMIN_PROHIBITED),
            }),
            Statement::Dnat { addr, port } => {
                self.immediate(REG_1, address_bytes(*addr));
                self.immediate(REG_2, port.to_be_bytes().to_vec());
                self.push(Expr::Nat {
                    kind: NAT_DNAT,
                    family: u32::from(nfproto_number(Family::of(*addr))),
                    addr: Some((REG_1, REG_1)),
                    proto: Some((REG_2, REG_2)),
                    flags: NAT_MAP_IPS_AND_PROTO,
                });
            }
            Statement::Masquerade => self.push(Expr::Masquerade),
            Statement::VerdictMap { key, map } => {
                match key {
                    MapKey::Iifname => self.meta(META_IIFNAME),
                    MapKey::Daddr(family) => self.address(*family, Peer::Destination, REG_1),
                }
                self.push(Expr::Lookup {
                    sreg: REG_1,
                    set: named(map),
                    dreg: Some(REG_VERDICT),
                    invert: false,
                });
            }
        }
    }

    /// The family dependency of an `inet` table's address match.
    fn nfproto(&mut self, family: Family) {
        if self.nfproto != Some(family) {
            self.meta(META_NFPROTO);
            self.cmp(CMP_EQ, vec![nfproto_number(family)]);
            self.nfproto = Some(family);
        }
    }

    /// The packet's address, with its family dependency, into `dreg`.
    fn address(&mut self, family: Family, peer: Peer, dreg: u32) {
        self.nfproto(family);
        let (offset, len) = address_field(family, peer);
        self.payload(BASE_NETWORK, offset, len, dreg);
    }

    /// An address in `net`: nft loads only the bytes a whole-byte prefix
    /// covers, and masks the others.
    fn network(&mut self, peer: Peer, net: &IpNet) {
        let family = Family::of(net.addr());
        self.nfproto(family);
        let prefix = u32::from(net.prefix_len());
        if prefix == 0 {
            return;
        }
        let (offset, len) = address_field(family, peer);
        let network = address_bytes(net.network());
        if prefix % 8 == 0 {
            let bytes = prefix / 8;
            self.payload(BASE_NETWORK, offset, bytes, REG_1);
            self.cmp(CMP_EQ, network[..bytes as usize].to_vec());
        } else {
            self.payload(BASE_NETWORK, offset, len, REG_1);
            self.mask(address_bytes(net.netmask()));
            self.cmp(CMP_EQ, network);
        }
    }

    fn meta(&mut self, key: u32) {
        self.push(Expr::Meta { key, dreg: REG_1 });
    }

    fn set_mark(&mut self) {
        self.push(Expr::MetaSet {
            key: META_MARK,
            sreg: REG_1,
        });
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32, dreg: u32) {
        self.push(Expr::Payload {
            base,
            offset,
            len,
            dreg,
        });
    }

    fn cmp(&mut self, op: u32, data: Vec<u8>) {
        self.push(Expr::Cmp {
            sreg: REG_1,
            op,
            data,
        });
    }

    /// `reg 1 = reg 1 & mask`.
    fn mask(&mut self, mask: Vec<u8>) {
        self.push(Expr::Bitwise {
            sreg: REG_1,
            dreg: REG_1,
            len: u32::try_from(mask.len()).unwrap_or(u32::MAX),
            xor: vec![0; mask.len()],
            mask,
        });
    }

    fn immediate(&mut self, dreg: u32, value: Vec<u8>) {
        self.push(Expr::Immediate {
            dreg,
            data: Data::Value(value),
        });
    }

    /// The key is one of `elements`: a set of the rule's own, or as nft
    /// writes a list of one, a comparison.
    fn constant_set(&mut self, mut spec: SetSpec, mut elements: Vec<RawElement>) {
        if let [element] = &elements[..]
            && spec.flags & SET_INTERVAL == 0
        {
            self.cmp(CMP_EQ, element.key.clone());
            return;
        }
        spec.flags |= SET_ANONYMOUS | SET_CONSTANT;
        spec.userdata = userdata(&[(KEY_BYTEORDER, byteorder(spec.key_type))]);
        elements.sort();
        self.lookup(SetRef::Anonymous(AnonymousSet { spec, elements }));
    }

    fn lookup(&mut self, set: SetRef) {
        self.push(Expr::Lookup {
            sreg: REG_1,
            set,
            dreg: None,
            invert: false,
        });
    }
}

fn named(set: &str) -> SetRef {
    SetRef::Named(set.to_owned())
}

/// The declaration of a set of one-byte keys of nft type `key_type`.
fn one_byte_keys(key_type: u32) -> SetSpec {
    SetSpec {
        flags: 0,
        key_type,
        key_len: 1,
        data: None,
        fields: Vec::new(),
        userdata: Vec::new(),
    }
}

fn bytes(values: &[u8]) -> Vec<RawElement> {
    values.iter().map(|&v| RawElement::key(vec![v])).collect()
}

fn op(equal: bool) -> u32 {
    if equal { CMP_EQ } else { CMP_NEQ }
}

fn ifname_key(interface: Interface) -> u32 {
    match interface {
        Interface::Input => META_IIFNAME,
        Interface::Output => META_OIFNAME,
    }
}

fn nfproto_number(family: Family) -> u8 {
    match family {
        Family::Ipv4 => NFPROTO_IPV4,
        Family::Ipv6 => NFPROTO_IPV6,
    }
}
