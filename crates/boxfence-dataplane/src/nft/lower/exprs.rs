//! Rules to expressions.

use ipnet::IpNet;

use super::super::expr::*;
use super::super::rule::header_only_ip_length;
use super::super::{
    Family, Interface, MapKey, Match, Peer, QueueBy, Reject, Rule, SetKind, Statement,
};
use super::sets::{KEY_BYTEORDER, byteorder, bytes, intervals, one_byte_keys, set_spec, userdata};
use super::{IFNAMSIZ, LowerError, address_bytes, ifname_bytes, verdict_data};

/// `NFPROTO_IPV4`, `NFPROTO_IPV6`.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// IANA protocol number of ICMPv6.
const IPPROTO_ICMPV6: u8 = 58;
/// IANA protocol number of TCP, and its SYN flag.
const IPPROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;
/// The data offset's bits of the TCP header's 13th byte.
const TCP_DOFF: u8 = 0xf0;
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
                // nft 1.0.6 puts `byteorder reg 1 = hton(reg 1, 2, 1)`
                // between these, a no-op on a byte that Linux 6.12 refuses
                // (EOPNOTSUPP: a length that is not a multiple of the
                // size); without it every kernel takes the rule, and the
                // protocol's byte is where the set's key has it.
                self.meta(META_L4PROTO);
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
            Match::CtState(bits) => self.bits(ct_load(CT_STATE), *bits, CMP_NEQ),
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
            Match::MarkClear(mask) => self.bits(meta_load(META_MARK), *mask, CMP_EQ),
            Match::MarkAny(mask) => self.bits(meta_load(META_MARK), *mask, CMP_NEQ),
            Match::CtMarkClear(mask) => self.bits(ct_load(CT_MARK), *mask, CMP_EQ),
            Match::CtMarkAny(mask) => self.bits(ct_load(CT_MARK), *mask, CMP_NEQ),
            Match::TcpSyn => {
                self.meta(META_L4PROTO);
                self.cmp(CMP_EQ, vec![IPPROTO_TCP]);
                self.payload(BASE_TRANSPORT, 13, 1, REG_1);
                self.mask(vec![TCP_SYN]);
                self.cmp(CMP_EQ, vec![TCP_SYN]);
            }
            Match::TcpHeaderOnly { family, doff } => {
                self.nfproto(*family);
                self.meta(META_L4PROTO);
                self.cmp(CMP_EQ, vec![IPPROTO_TCP]);
                self.payload(BASE_TRANSPORT, 12, 1, REG_1);
                self.mask(vec![TCP_DOFF]);
                self.cmp(CMP_EQ, vec![doff << 4]);
                // IPv4's total length, IPv6's payload length.
                let offset = match family {
                    Family::Ipv4 => 2,
                    Family::Ipv6 => 4,
                };
                self.payload(BASE_NETWORK, offset, 2, REG_1);
                let length = header_only_ip_length(*family, *doff);
                self.cmp(CMP_EQ, length.to_be_bytes().to_vec());
            }
            Match::CtOriginal => {
                self.push(ct_load(CT_DIRECTION));
                self.cmp(CMP_EQ, vec![CT_DIR_ORIGINAL]);
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
                self.push(or_bits(*bits));
                self.set_mark();
            }
            Statement::CtMarkOr(bits) => {
                self.push(ct_load(CT_MARK));
                self.push(or_bits(*bits));
                self.set_ct_mark();
            }
            Statement::CtMarkClear(bits) => {
                self.push(ct_load(CT_MARK));
                self.mask((!bits).to_ne_bytes().to_vec());
                self.set_ct_mark();
            }
            Statement::Queue {
                num,
                by: QueueBy::Expression,
            } => self.push(Expr::Queue {
                num: *num,
                total: 1,
                flags: 0,
            }),
            Statement::Queue {
                num,
                by: QueueBy::XtTarget,
            } => self.push(nfqueue_target(*num)),
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
            Statement::FlowOffload(flowtable) => self.push(Expr::FlowOffload {
                flowtable: flowtable.clone(),
            }),
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
        self.push(meta_load(key));
    }

    fn set_ct_mark(&mut self) {
        self.push(Expr::CtSet {
            key: CT_MARK,
            sreg: REG_1,
            direction: None,
        });
    }

    /// `<load> & mask <op> 0`: some or none of the bits of a 32-bit key.
    fn bits(&mut self, load: Expr, mask: u32, op: u32) {
        self.push(load);
        self.mask(mask.to_ne_bytes().to_vec());
        self.cmp(op, vec![0; 4]);
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

/// `queue num <num>` as the xtables `NFQUEUE` target (revision 3: queue
/// number, queues total, flags, in host order), for kernels built with
/// `nft_compat` but without nf_tables' own `queue` expression. No
/// `bypass` flag: without a reader the packet drops.
fn nfqueue_target(num: u16) -> Expr {
    let mut info = Vec::with_capacity(8);
    info.extend_from_slice(&num.to_ne_bytes());
    info.extend_from_slice(&1u16.to_ne_bytes());
    info.extend_from_slice(&0u16.to_ne_bytes());
    // The kernel keeps the structure padded to 8 bytes (`XT_ALIGN`).
    info.extend_from_slice(&[0, 0]);
    Expr::XtTarget {
        name: "NFQUEUE".into(),
        rev: 3,
        info,
    }
}

/// `ct load <key> => reg 1`.
fn ct_load(key: u32) -> Expr {
    Expr::Ct {
        key,
        dreg: REG_1,
        direction: None,
    }
}

/// `meta load <key> => reg 1`.
fn meta_load(key: u32) -> Expr {
    Expr::Meta { key, dreg: REG_1 }
}

/// `reg 1 = reg 1 | bits`, as nft writes it.
fn or_bits(bits: u32) -> Expr {
    Expr::Bitwise {
        sreg: REG_1,
        dreg: REG_1,
        len: 4,
        mask: (!bits).to_ne_bytes().to_vec(),
        xor: bits.to_ne_bytes().to_vec(),
    }
}

fn named(set: &str) -> SetRef {
    SetRef::Named(set.to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Linux 6.12 refuses the rule with nft's byteorder in it (found by
    /// `scripts/test-kernels`); the kernel test of the same rule is the
    /// ruleset's (`netlink_and_text_batches_build_the_same_table_in_every_sequence`).
    #[test]
    fn a_protocol_and_port_lookup_has_no_byteorder() {
        let rule = Rule::when(
            vec![Match::ProtoPort {
                set: "ports".into(),
            }],
            crate::nft::Verdict::Accept,
        );
        let exprs = super::rule(&rule).expect("lowers");
        assert!(
            !exprs.iter().any(|e| matches!(e, Expr::Byteorder { .. })),
            "{exprs:?}"
        );
        assert_eq!(
            exprs[..3],
            [
                Expr::Meta {
                    key: META_L4PROTO,
                    dreg: REG_1
                },
                Expr::Payload {
                    dreg: REG32_01,
                    base: BASE_TRANSPORT,
                    offset: 2,
                    len: 2
                },
                Expr::Lookup {
                    set: SetRef::Named("ports".into()),
                    sreg: REG_1,
                    dreg: None,
                    invert: false
                },
            ]
        );
    }
}
