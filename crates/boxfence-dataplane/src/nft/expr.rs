//! The table as the kernel holds it: nf_tables expressions, set
//! declarations, set elements and chain hooks, with the kernel's own
//! numbers. Rules and sets of the model lower to these ([`super::lower`]);
//! the netlink client encodes them and decodes the kernel's dump back into
//! them, so what was sent and what is found compare like with like.
//!
//! Fields are the kernel's numbers, not closed enums: a dump may hold what
//! someone else wrote, and it must decode into something that differs.

/// `NFT_REG_VERDICT`.
pub const REG_VERDICT: u32 = 0;
/// `NFT_REG_1`: 16 bytes.
pub const REG_1: u32 = 1;
/// `NFT_REG_2`: the 16 bytes after `NFT_REG_1`.
pub const REG_2: u32 = 2;
/// `NFT_REG32_01`: the second 4 bytes of `NFT_REG_1`.
pub const REG32_01: u32 = 9;

/// `NFT_META_*` keys.
pub const META_MARK: u32 = 3;
/// `NFT_META_IIFNAME`.
pub const META_IIFNAME: u32 = 6;
/// `NFT_META_OIFNAME`.
pub const META_OIFNAME: u32 = 7;
/// `NFT_META_NFPROTO`.
pub const META_NFPROTO: u32 = 15;
/// `NFT_META_L4PROTO`.
pub const META_L4PROTO: u32 = 16;

/// `NFT_CT_STATE`.
pub const CT_STATE: u32 = 0;
/// `NFT_CT_DIRECTION`.
pub const CT_DIRECTION: u32 = 1;
/// `NFT_CT_MARK`.
pub const CT_MARK: u32 = 3;
/// `NFT_CT_ZONE`.
pub const CT_ZONE: u32 = 17;
/// `IP_CT_DIR_ORIGINAL`.
pub const CT_DIR_ORIGINAL: u8 = 0;

/// `NFT_PAYLOAD_NETWORK_HEADER`.
pub const BASE_NETWORK: u32 = 1;
/// `NFT_PAYLOAD_TRANSPORT_HEADER`.
pub const BASE_TRANSPORT: u32 = 2;

/// `NFT_CMP_EQ`.
pub const CMP_EQ: u32 = 0;
/// `NFT_CMP_NEQ`.
pub const CMP_NEQ: u32 = 1;

/// `NF_NETDEV_INGRESS`: the hook of every flowtable.
pub const NETDEV_INGRESS: u32 = 0;

/// `NFT_OBJECT_COUNTER`.
pub const OBJECT_COUNTER: u32 = 1;

/// Verdict codes: `NF_DROP`, `NF_ACCEPT`, `NFT_JUMP`, `NFT_GOTO`.
pub const VERDICT_DROP: i32 = 0;
/// `NF_ACCEPT`.
pub const VERDICT_ACCEPT: i32 = 1;
/// `NFT_JUMP`.
pub const VERDICT_JUMP: i32 = -3;
/// `NFT_GOTO`.
pub const VERDICT_GOTO: i32 = -4;
/// `NFT_RETURN`.
pub const VERDICT_RETURN: i32 = -5;

/// `NFT_SET_*` flags.
pub const SET_ANONYMOUS: u32 = 0x1;
/// `NFT_SET_CONSTANT`.
pub const SET_CONSTANT: u32 = 0x2;
/// `NFT_SET_INTERVAL`.
pub const SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_MAP`.
pub const SET_MAP: u32 = 0x8;
/// `NFT_SET_TIMEOUT`.
pub const SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_CONCAT`.
pub const SET_CONCAT: u32 = 0x80;
/// `NFT_SET_ELEM_INTERVAL_END`.
pub const ELEM_INTERVAL_END: u32 = 1;
/// `NFT_DATA_VERDICT`: the data type of a verdict map.
pub const DATA_VERDICT: u32 = 0xffff_ff00;

/// nft's data type ids, which nft reads back to print keys (a
/// concatenation shifts the first by 6 bits).
pub const TYPE_IPADDR: u32 = 7;
/// `ipv6_addr`.
pub const TYPE_IP6ADDR: u32 = 8;
/// `inet_proto`.
pub const TYPE_INET_PROTOCOL: u32 = 12;
/// `inet_service`.
pub const TYPE_INET_SERVICE: u32 = 13;
/// `icmpv6_type`.
pub const TYPE_ICMP6_TYPE: u32 = 29;
/// `ifname`.
pub const TYPE_IFNAME: u32 = 41;

/// A value in a register or a set: bytes, or a verdict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Data {
    /// `NFTA_DATA_VALUE`.
    Value(Vec<u8>),
    /// `NFTA_DATA_VERDICT`: a code and, for jumps and gotos, a chain.
    Verdict {
        /// `NF_ACCEPT`, `NFT_GOTO`, ...
        code: i32,
        /// The chain jumped to.
        chain: Option<String>,
    },
}

/// What a set is declared as (what decides how it is looked up).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetSpec {
    /// `NFT_SET_*`.
    pub flags: u32,
    /// nft's key type id.
    pub key_type: u32,
    /// Key length in bytes.
    pub key_len: u32,
    /// For a map: its data type and length.
    pub data: Option<(u32, u32)>,
    /// A concatenation's field lengths (empty otherwise).
    pub fields: Vec<u32>,
    /// nft's user data (how to print keys), empty when none.
    pub userdata: Vec<u8>,
}

/// One element as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawElement {
    /// The key (first: elements sort by key, as nft sends intervals).
    pub key: Vec<u8>,
    /// A concatenated interval's last key.
    pub key_end: Option<Vec<u8>>,
    /// `NFT_SET_ELEM_*` flags (an interval's end).
    pub flags: u32,
    /// A map element's value.
    pub data: Option<Data>,
    /// nft's user data (marks an interval open at the top).
    pub userdata: Option<Vec<u8>>,
}

impl RawElement {
    /// An element that is just a key.
    pub fn key(key: Vec<u8>) -> Self {
        Self {
            flags: 0,
            key,
            key_end: None,
            data: None,
            userdata: None,
        }
    }

    /// Whether `other` names the same element (a delete gives only keys).
    pub fn same_key(&self, other: &Self) -> bool {
        self.key == other.key && self.key_end == other.key_end && self.flags == other.flags
    }
}

/// A constant set written inside a rule (`{ tcp, udp }`): created with the
/// rule, deleted with it, and compared as part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnonymousSet {
    /// Its declaration (flags include anonymous and constant).
    pub spec: SetSpec,
    /// Its elements, sorted.
    pub elements: Vec<RawElement>,
}

/// The set a lookup reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SetRef {
    /// A set of the table, by name.
    Named(String),
    /// A set of the rule's own.
    Anonymous(AnonymousSet),
}

/// One nf_tables expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `meta load <key> => reg`.
    Meta {
        /// `NFT_META_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `meta set <key> with reg`.
    MetaSet {
        /// `NFT_META_*`.
        key: u32,
        /// Source register.
        sreg: u32,
    },
    /// `ct load <key> => reg`.
    Ct {
        /// `NFT_CT_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
        /// For keys of one direction.
        direction: Option<u8>,
    },
    /// `ct set <key> with reg`.
    CtSet {
        /// `NFT_CT_*`.
        key: u32,
        /// Source register.
        sreg: u32,
        /// For keys of one direction.
        direction: Option<u8>,
    },
    /// `payload load <len>b @ <base> + <offset> => reg`.
    Payload {
        /// `NFT_PAYLOAD_*_HEADER`.
        base: u32,
        /// Byte offset in that header.
        offset: u32,
        /// Bytes loaded.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `cmp <op> reg <data>`.
    Cmp {
        /// Source register.
        sreg: u32,
        /// `NFT_CMP_*`.
        op: u32,
        /// Compared with.
        data: Vec<u8>,
    },
    /// `reg = (reg & mask) ^ xor`.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// Bytes.
        len: u32,
        /// And-ed with.
        mask: Vec<u8>,
        /// Then xor-ed with.
        xor: Vec<u8>,
    },
    /// Byte order conversion.
    Byteorder {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// `NFT_BYTEORDER_NTOH` or `_HTON`.
        op: u32,
        /// Bytes.
        len: u32,
        /// Size of each unit converted.
        size: u32,
    },
    /// `lookup reg set <set> [dreg]`: matches when the key is in the set;
    /// with a destination register (a map), loads the element's data.
    Lookup {
        /// Source register.
        sreg: u32,
        /// The set.
        set: SetRef,
        /// For a map.
        dreg: Option<u32>,
        /// `NFT_LOOKUP_F_INV`: matches when the key is missing.
        invert: bool,
    },
    /// `immediate reg <data>`.
    Immediate {
        /// Destination register.
        dreg: u32,
        /// The value or verdict.
        data: Data,
    },
    /// An anonymous counter (its values are not compared).
    Counter,
    /// A reference to a named object (a counter).
    Objref {
        /// `NFT_OBJECT_*`.
        kind: u32,
        /// The object.
        name: String,
    },
    /// `limit rate <rate>/<unit> burst <burst>`.
    Limit {
        /// Per unit.
        rate: u64,
        /// Seconds.
        unit: u64,
        /// Burst.
        burst: u32,
        /// `NFT_LIMIT_PKTS` or `_PKT_BYTES`.
        kind: u32,
        /// `NFT_LIMIT_F_INV`.
        flags: u32,
    },
    /// `log prefix <prefix> group <group>`.
    Log {
        /// The prefix.
        prefix: Option<String>,
        /// The NFLOG group.
        group: Option<u16>,
    },
    /// `reject type <type> [code]`.
    Reject {
        /// `NFT_REJECT_*`.
        kind: u32,
        /// The ICMP code, for ICMP rejects.
        code: Option<u8>,
    },
    /// `nat <type> <family> addr_min reg proto_min reg flags`.
    Nat {
        /// `NFT_NAT_SNAT` or `_DNAT`.
        kind: u32,
        /// `NFPROTO_IPV4` or `_IPV6`.
        family: u32,
        /// Registers of the first and last address.
        addr: Option<(u32, u32)>,
        /// Registers of the first and last port.
        proto: Option<(u32, u32)>,
        /// `NF_NAT_RANGE_*`.
        flags: u32,
    },
    /// `masq`.
    Masquerade,
    /// An xtables target run by nf_tables (`nft_compat`): its name,
    /// revision and the target's own info structure.
    XtTarget {
        /// The target, e.g. `NFQUEUE`.
        name: String,
        /// Its revision.
        rev: u32,
        /// Its info, padded to 8 bytes as the kernel dumps it.
        info: Vec<u8>,
    },
    /// `queue`: the packet goes to user space (no flags: without a
    /// reader it is dropped).
    Queue {
        /// The first queue.
        num: u16,
        /// How many queues from `num` on share the packets (1: one).
        total: u16,
        /// `NFT_QUEUE_FLAG_*`.
        flags: u16,
    },
    /// `flow_offload`: adds the packet's flow to a flowtable.
    FlowOffload {
        /// The flowtable.
        flowtable: String,
    },
    /// An expression this client does not model, by name and raw data.
    Unknown {
        /// `NFTA_EXPR_NAME`.
        name: String,
        /// `NFTA_EXPR_DATA`.
        data: Vec<u8>,
    },
}

/// A base chain's hook as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HookSpec {
    /// `filter` or `nat`.
    pub chain_type: String,
    /// `NF_INET_*`.
    pub hooknum: u32,
    /// The priority.
    pub priority: i32,
    /// `NF_ACCEPT` or `NF_DROP`.
    pub policy: u32,
    /// For an ingress hook, its device.
    pub device: Option<String>,
}
