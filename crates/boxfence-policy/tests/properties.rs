//! Property tests of the policy core.
//!
//! 1. The compiled matchers (`CidrSet`, `DomainSet`, `PortSet`) and
//!    `evaluate` agree with naive reference implementations written here,
//!    straight from DESIGN.md section 1, on random inputs.
//! 2. Parsing never panics, on arbitrary bytes and on arbitrary JSON value
//!    trees (which use the real field names so that validation goes deep).
//!
//! Case counts are kept modest so the whole file runs in a few seconds in a
//! debug build; raise them with `PROPTEST_CASES=10000` for a longer hunt.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use boxfence_policy::matchers::{CidrSet, DomainSet, IpRange, PortSet};
use boxfence_policy::{
    ALWAYS_BLOCKED, AlwaysBlocked, AppPolicy, BoxPolicy, Cidr, Direction, DomainPattern,
    EffectivePolicy, Flow, Layer, Machine, PortRange, PortRule, Protocol, canonical, evaluate,
    evaluate_name,
};
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// `cases` cases, or `PROPTEST_CASES` when set (for a longer hunt).
/// Failures are not persisted: proptest cannot place its regression file
/// for an integration test, and the minimal input is printed.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Addresses and blocks
// ---------------------------------------------------------------------------

fn v4(bits: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from_bits(bits))
}

fn v6(bits: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from_bits(bits))
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

/// `ip + delta` within its family, `None` past either end.
fn step(ip: IpAddr, delta: i8) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => a.to_bits().checked_add_signed(delta.into()).map(v4),
        IpAddr::V6(a) => a.to_bits().checked_add_signed(delta.into()).map(v6),
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// `base` with its low `host_bits` replaced by those of `low`.
fn in_region(base: IpAddr, host_bits: u8, low: u16) -> IpAddr {
    let mask = (1u32 << host_bits) - 1;
    let low = u32::from(low) & mask;
    match base {
        IpAddr::V4(a) => v4(a.to_bits() & !mask | low),
        IpAddr::V6(a) => v6(a.to_bits() & !u128::from(mask) | u128::from(low)),
    }
}

/// A region: a base address and how many low bits vary (at most 16), so that
/// random blocks in a few regions nest and touch often.
type Region = (IpAddr, u8);

/// A block in one of `regions`, its prefix a little wider or narrower than
/// the region. Host bits may be set: the block is not truncated.
fn region_net(regions: Vec<Region>) -> impl Strategy<Value = IpNet> {
    (prop::sample::select(regions), any::<u16>(), 0u8..=18).prop_map(
        |((base, host_bits), low, spread)| {
            let addr = in_region(base, host_bits, low);
            let narrowest = max_prefix(addr);
            let widest = narrowest - host_bits - 2;
            let prefix = widest + spread % (narrowest - widest + 1);
            IpNet::new(addr, prefix).expect("prefix within the family")
        },
    )
}

fn region_ip(regions: Vec<Region>) -> impl Strategy<Value = IpAddr> {
    (prop::sample::select(regions), any::<u16>())
        .prop_map(|((base, host_bits), low)| in_region(base, host_bits, low))
}

/// Regions for the matcher tests, including both ends of both families.
fn matcher_regions() -> Vec<Region> {
    vec![
        (ip("0.0.0.0"), 16),
        (ip("10.0.0.0"), 16),
        (ip("255.255.0.0"), 16),
        (ip("::"), 16),
        (ip("2001:db8::"), 16),
        (ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:0"), 16),
    ]
}

/// Blocks of either family: mostly crowded into a few regions, sometimes
/// anywhere with any prefix (`/0` included).
fn matcher_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        6 => region_net(matcher_regions()),
        1 => (any::<u32>(), 0u8..=32)
            .prop_map(|(bits, prefix)| IpNet::new(v4(bits), prefix).expect("v4 prefix")),
        1 => (any::<u128>(), 0u8..=128)
            .prop_map(|(bits, prefix)| IpNet::new(v6(bits), prefix).expect("v6 prefix")),
    ]
}

/// Where to probe a set of blocks: near an edge of one of its blocks, or at
/// a free address in the same regions.
#[derive(Debug, Clone)]
enum Probe {
    Edge {
        block: Index,
        from_end: bool,
        offset: i8,
    },
    Free(IpAddr),
}

fn probe() -> impl Strategy<Value = Probe> {
    prop_oneof![
        3 => (any::<Index>(), any::<bool>(), -3i8..=3).prop_map(|(block, from_end, offset)| {
            Probe::Edge { block, from_end, offset }
        }),
        1 => region_ip(matcher_regions()).prop_map(Probe::Free),
        1 => any::<u32>().prop_map(|bits| Probe::Free(v4(bits))),
        1 => any::<u128>().prop_map(|bits| Probe::Free(v6(bits))),
    ]
}

fn probe_addresses(nets: &[IpNet], probes: &[Probe]) -> Vec<IpAddr> {
    probes
        .iter()
        .filter_map(|probe| match probe {
            Probe::Free(ip) => Some(*ip),
            Probe::Edge { .. } if nets.is_empty() => None,
            Probe::Edge {
                block,
                from_end,
                offset,
            } => {
                let net = nets[block.index(nets.len())].trunc();
                let base = if *from_end {
                    net.broadcast()
                } else {
                    net.network()
                };
                step(base, *offset)
            }
        })
        .collect()
}

/// Reference: the longest prefix among the blocks that contain `ip`.
fn longest_containing(nets: &[IpNet], ip: IpAddr) -> Option<IpNet> {
    nets.iter()
        .map(IpNet::trunc)
        .filter(|net| net.contains(&ip))
        .max_by_key(IpNet::prefix_len)
}

fn in_any(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|net| net.contains(&ip))
}

fn in_ranges(ranges: &[IpRange], ip: IpAddr) -> bool {
    ranges
        .iter()
        .any(|range| range.first <= ip && ip <= range.last)
}

/// Every point where membership of the blocks or of the ranges can change,
/// with its neighbours. Both sides are constant between consecutive
/// breakpoints, so agreeing on these points is agreeing everywhere.
fn breakpoints(nets: &[&[IpNet]], ranges: &[IpRange]) -> Vec<IpAddr> {
    let edges = nets
        .iter()
        .flat_map(|nets| nets.iter())
        .flat_map(|net| [net.network(), net.broadcast()])
        .chain(ranges.iter().flat_map(|range| [range.first, range.last]));
    edges
        .flat_map(|edge| [step(edge, -1), Some(edge), step(edge, 1)])
        .flatten()
        .collect()
}

/// Ranges are well formed, sorted (IPv4 first), and neither overlap nor
/// touch: each is as large as it can be.
fn check_canonical_ranges(ranges: &[IpRange]) -> Result<(), TestCaseError> {
    for range in ranges {
        prop_assert_eq!(range.first.is_ipv4(), range.last.is_ipv4(), "{:?}", range);
        prop_assert!(range.first <= range.last, "{:?}", range);
    }
    for pair in ranges.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        prop_assert!(a.last < b.first, "unsorted or overlapping: {:?} {:?}", a, b);
        prop_assert_ne!(step(a.last, 1), Some(b.first), "adjacent, not merged");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Domain names
// ---------------------------------------------------------------------------

/// Few distinct labels, so random patterns and names meet often.
const LABELS: [&str; 3] = ["a", "b", "cc"];

/// Labels joined, with some letters uppercased and maybe a trailing dot.
fn styled(labels: &[&str], upper: u16, trailing_dot: bool) -> String {
    let mut text: String = labels
        .join(".")
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if upper & (1 << (i % 16)) != 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    if trailing_dot {
        text.push('.');
    }
    text
}

fn labels(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(prop::sample::select(LABELS.to_vec()), range)
}

/// A name as a flow or resolver may give it: valid labels, any case,
/// maybe a trailing dot.
fn valid_name() -> impl Strategy<Value = String> {
    (labels(1..=4), any::<u16>(), prop::bool::weighted(0.2))
        .prop_map(|(labels, upper, dot)| styled(&labels, upper, dot))
}

/// A pattern's text: `name` or `*.name`, any case, maybe a trailing dot.
fn pattern_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        labels(1..=3),
        any::<u16>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(wildcard, labels, upper, dot)| {
            let name = styled(&labels, upper, dot);
            if wildcard { format!("*.{name}") } else { name }
        })
}

fn parse_pattern(text: &str) -> DomainPattern {
    text.parse().expect("generated patterns are valid")
}

/// Reference canonical form (ASCII names only): one trailing dot dropped,
/// lowercase.
fn canonical_ascii(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// DESIGN.md 1.4 by labels: an exact name matches only itself; `*.suffix`
/// matches a name with one or more extra labels and never the apex.
/// Both sides are canonicalised (case, trailing dot).
fn spec_matches(pattern: &str, name: &str) -> bool {
    let pattern = canonical_ascii(pattern);
    let name = canonical_ascii(name);
    let name: Vec<&str> = name.split('.').collect();
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            let suffix: Vec<&str> = suffix.split('.').collect();
            name.len() > suffix.len()
                && name.ends_with(&suffix)
                && name[..name.len() - suffix.len()]
                    .iter()
                    .all(|label| !label.is_empty())
        }
        None => name == pattern.split('.').collect::<Vec<_>>(),
    }
}

/// A name to look up: free, or made from one of the patterns (its name
/// with zero to two labels in front), so that exact hits, wildcard hits and
/// wildcard apexes all come up often.
#[derive(Debug, Clone)]
enum NameSpec {
    Free(String),
    Derived {
        pattern: Index,
        extra: Vec<&'static str>,
        upper: u16,
        trailing_dot: bool,
    },
    /// A pattern's name with empty labels added (`{}` stands for it).
    Malformed {
        pattern: Index,
        shape: &'static str,
    },
}

impl NameSpec {
    fn resolve(&self, patterns: &[String]) -> String {
        match self {
            Self::Free(name) => name.clone(),
            Self::Derived { .. } | Self::Malformed { .. } if patterns.is_empty() => String::new(),
            Self::Derived {
                pattern,
                extra,
                upper,
                trailing_dot,
            } => {
                let base = canonical_ascii(&patterns[pattern.index(patterns.len())]);
                let base = base.strip_prefix("*.").unwrap_or(&base);
                let labels: Vec<&str> = extra.iter().copied().chain(base.split('.')).collect();
                styled(&labels, *upper, *trailing_dot)
            }
            Self::Malformed { pattern, shape } => {
                let base = canonical_ascii(&patterns[pattern.index(patterns.len())]);
                let base = base.strip_prefix("*.").unwrap_or(&base);
                shape.replace("{}", base)
            }
        }
    }
}

fn derived_name() -> impl Strategy<Value = NameSpec> {
    (
        any::<Index>(),
        labels(0..=2),
        any::<u16>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(pattern, extra, upper, trailing_dot)| NameSpec::Derived {
            pattern,
            extra,
            upper,
            trailing_dot,
        })
}

/// A valid name, free or made from a pattern.
fn valid_name_spec() -> impl Strategy<Value = NameSpec> {
    prop_oneof![
        1 => valid_name().prop_map(NameSpec::Free),
        2 => derived_name(),
    ]
}

fn lookup_name() -> impl Strategy<Value = NameSpec> {
    prop_oneof![
        3 => valid_name().prop_map(NameSpec::Free),
        4 => derived_name(),
        1 => prop::sample::select(vec!["", ".", "a..b", ".a.b", "..a.b", "a.b..", "*.a.b", "A.B.CC."])
            .prop_map(|name| NameSpec::Free(name.to_owned())),
        1 => (any::<Index>(), prop::sample::select(vec![".{}", "..{}", "{}..", "a..{}", ".{}.", "*.{}"]))
            .prop_map(|(pattern, shape)| NameSpec::Malformed { pattern, shape }),
    ]
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// Ports crowded at both ends of the range so that rules overlap and touch.
fn port() -> impl Strategy<Value = u16> {
    prop_oneof![4 => 1u16..=30, 1 => Just(53), 1 => Just(443), 2 => 65525u16..=65535]
}

fn port_range() -> impl Strategy<Value = PortRange> {
    (port(), 0u16..=6).prop_map(|(first, length)| PortRange {
        first,
        last: first.saturating_add(length),
    })
}

fn port_rule() -> impl Strategy<Value = PortRule> {
    prop_oneof![
        3 => port_range().prop_map(PortRule::Tcp),
        3 => port_range().prop_map(PortRule::Udp),
        1 => Just(PortRule::Icmp),
    ]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Icmp)
    ]
}

/// Reference: some entry names the protocol and, for TCP and UDP, has the
/// port in its inclusive range.
fn ports_allow(rules: &[PortRule], protocol: Protocol, port: Option<u16>) -> bool {
    rules.iter().any(|rule| match (*rule, protocol) {
        (PortRule::Icmp, Protocol::Icmp) => true,
        (PortRule::Tcp(range), Protocol::Tcp) | (PortRule::Udp(range), Protocol::Udp) => {
            port.is_some_and(|port| range.first <= port && port <= range.last)
        }
        _ => false,
    })
}

// ---------------------------------------------------------------------------
// 1. Matchers agree with naive references
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn cidr_set_lookup_returns_the_longest_containing_prefix(
        nets in prop::collection::vec(matcher_net(), 0..=12),
        probes in prop::collection::vec(probe(), 1..=24),
    ) {
        let set = CidrSet::new(nets.iter().copied());
        for ip in probe_addresses(&nets, &probes) {
            let expected = longest_containing(&nets, ip);
            prop_assert_eq!(set.lookup(ip).copied(), expected, "lookup({})", ip);
            prop_assert_eq!(set.contains(ip), expected.is_some(), "contains({})", ip);
        }
        prop_assert_eq!(set.is_empty(), nets.is_empty());
    }

    #[test]
    fn cidr_set_blocks_are_the_distinct_truncated_blocks(
        nets in prop::collection::vec(matcher_net(), 0..=12),
    ) {
        let set = CidrSet::new(nets.iter().copied());
        let mut got: Vec<IpNet> = set.blocks().copied().collect();
        let mut expected: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
        got.sort();
        expected.sort();
        expected.dedup();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn cidr_set_intervals_cover_exactly_the_union_sorted_and_merged(
        nets in prop::collection::vec(matcher_net(), 0..=12),
        probes in prop::collection::vec(probe(), 0..=8),
    ) {
        let nets: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
        let ranges = CidrSet::new(nets.iter().copied()).intervals();
        check_canonical_ranges(&ranges)?;
        let points = breakpoints(&[&nets], &ranges)
            .into_iter()
            .chain(probe_addresses(&nets, &probes));
        for ip in points {
            prop_assert_eq!(in_ranges(&ranges, ip), in_any(&nets, ip), "at {}", ip);
        }
    }

    #[test]
    fn cidr_set_intervals_without_is_the_set_difference(
        from in prop::collection::vec(matcher_net(), 0..=10),
        remove in prop::collection::vec(matcher_net(), 0..=10),
        probes in prop::collection::vec(probe(), 0..=8),
    ) {
        let from: Vec<IpNet> = from.iter().map(IpNet::trunc).collect();
        let remove: Vec<IpNet> = remove.iter().map(IpNet::trunc).collect();
        let ranges = CidrSet::new(from.iter().copied())
            .intervals_without(&CidrSet::new(remove.iter().copied()));
        check_canonical_ranges(&ranges)?;
        let points = breakpoints(&[&from, &remove], &ranges)
            .into_iter()
            .chain(probe_addresses(&from, &probes));
        for ip in points {
            let expected = in_any(&from, ip) && !in_any(&remove, ip);
            prop_assert_eq!(in_ranges(&ranges, ip), expected, "at {}", ip);
        }
    }

    #[test]
    fn domain_pattern_matches_follows_the_label_rule(
        pattern in pattern_text(),
        name in valid_name(),
    ) {
        let parsed = parse_pattern(&pattern);
        prop_assert_eq!(
            parsed.matches(&canonical_ascii(&name)),
            spec_matches(&pattern, &name),
            "{} vs {}", pattern, name
        );
    }

    #[test]
    fn domain_set_lookup_agrees_with_a_scan_of_every_pattern(
        texts in prop::collection::vec(pattern_text(), 0..=10),
        names in prop::collection::vec(lookup_name(), 1..=16),
    ) {
        let patterns: Vec<DomainPattern> = texts.iter().map(|p| parse_pattern(p)).collect();
        let set = DomainSet::new(patterns.iter().cloned());
        for name in names.iter().map(|spec| spec.resolve(&texts)) {
            let name = name.as_str();
            let canonical = canonical_ascii(name);
            let matching = || patterns.iter().filter(|p| p.matches(&canonical));
            // The exact name first, then the wildcard with the longest suffix.
            let expected = matching()
                .find(|p| matches!(p, DomainPattern::Exact(_)))
                .or_else(|| {
                    matching().max_by_key(|p| match p {
                        DomainPattern::Wildcard(suffix) => suffix.as_str().len(),
                        DomainPattern::Exact(_) => 0,
                    })
                });
            prop_assert_eq!(set.lookup(name), expected, "lookup({:?})", name);
        }
        let mut distinct = patterns.clone();
        distinct.sort();
        distinct.dedup();
        let mut kept = set.patterns().to_vec();
        kept.sort();
        prop_assert_eq!(kept, distinct);
        prop_assert_eq!(set.is_empty(), patterns.is_empty());
    }

    #[test]
    fn port_set_contains_agrees_with_a_scan_of_the_rules(
        rules in prop::collection::vec(port_rule(), 0..=8),
        queries in prop::collection::vec((protocol(), prop::option::weighted(0.95, port())), 1..=24),
    ) {
        let set = PortSet::new(&rules);
        for (protocol, port) in queries {
            prop_assert_eq!(
                set.contains(protocol, port),
                ports_allow(&rules, protocol, port),
                "{:?} {:?}", protocol, port
            );
        }
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            let ranges = set.ranges(protocol);
            for pair in ranges.windows(2) {
                prop_assert!(u32::from(pair[0].last) + 1 < u32::from(pair[1].first),
                    "ranges not merged: {:?}", pair);
            }
            // Rules only use ports 1-36, 53-59, 443-449 and 65525-65535.
            let edges = (1..=40).chain(50..=60).chain(440..=450).chain(65520..=65535);
            for port in edges.chain([1000, 30000]) {
                let listed = ranges.iter().any(|r| r.contains(port));
                if listed != ports_allow(&rules, protocol, Some(port)) {
                    prop_assert!(false, "ranges({:?}) wrong at {}", protocol, port);
                }
            }
        }
        prop_assert_eq!(set.icmp(), rules.contains(&PortRule::Icmp));
    }
}

// ---------------------------------------------------------------------------
// evaluate against a reference evaluator written from DESIGN.md section 1
// ---------------------------------------------------------------------------

const MACHINE_IDS: [&str; 3] = ["m1", "m2", "m3"];
const META_KEYS: [&str; 2] = ["env", "team"];
const META_VALUES: [&str; 2] = ["prod", "dev"];
const OWN_V4: &str = "10.200.0.2";
const OWN_V6: &str = "fd00:200::2";
const EXEMPTIONS: [&str; 5] = [
    "192.0.2.0/24",
    "2001:db8::/32",
    "10.0.0.0/24",
    "169.254.169.254/32",
    "64:ff9b::/96",
];

/// Public and always-blocked regions, so flows and rules meet often and the
/// blocked layer is exercised (IPv4-mapped and NAT64 forms included).
/// Public regions are listed more than once to weigh them up.
fn flow_regions() -> Vec<Region> {
    vec![
        (ip("8.8.0.0"), 16),
        (ip("8.8.0.0"), 8),
        (ip("1.1.1.0"), 8),
        (ip("1.1.1.0"), 8),
        (ip("2606:4700::"), 16),
        (ip("2606:4700::"), 8),
        (ip("10.0.0.0"), 16),
        (ip("192.0.2.0"), 8),
        (ip("169.254.169.0"), 8),
        (ip("2606:4700::"), 16),
        (ip("::ffff:10.0.0.0"), 16),
        (ip("64:ff9b::a00:0"), 16),
        (ip("2001:db8::"), 16),
        (ip("fd00::"), 16),
    ]
}

fn policy_cidr() -> impl Strategy<Value = IpNet> {
    region_net(flow_regions()).prop_map(|net| net.trunc())
}

#[derive(Debug, Clone)]
struct ModelSelector {
    all: bool,
    machines: Vec<&'static str>,
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct ModelRule {
    direction: Direction,
    ports: Option<Vec<PortRule>>,
    cidrs: Vec<IpNet>,
    domains: Vec<String>,
}

#[derive(Debug, Clone)]
struct ModelPolicy {
    name: String,
    selector: ModelSelector,
    rules: Vec<ModelRule>,
}

#[derive(Debug, Clone)]
enum ModelBox {
    AllowAll,
    DenyAll,
    Custom {
        allowed_domains: Vec<String>,
        allowed_cidrs: Vec<IpNet>,
        denied_cidrs: Vec<IpNet>,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    machine_id: &'static str,
    metadata: BTreeMap<String, String>,
    box_policy: ModelBox,
    policies: Vec<ModelPolicy>,
    exemptions: Vec<IpNet>,
    flows: Vec<Flow>,
}

fn metadata() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(META_KEYS.to_vec()).prop_map(str::to_owned),
        prop::sample::select(META_VALUES.to_vec()).prop_map(str::to_owned),
        0..=2,
    )
}

fn selector() -> impl Strategy<Value = ModelSelector> {
    (
        prop::bool::weighted(0.4),
        prop::collection::vec(prop::sample::select(MACHINE_IDS.to_vec()), 0..=2),
        metadata(),
    )
        .prop_map(|(all, machines, metadata)| ModelSelector {
            // A selector must name something; `all` is the neutral one.
            all: all || (machines.is_empty() && metadata.is_empty()),
            machines,
            metadata,
        })
}

fn rule() -> impl Strategy<Value = ModelRule> {
    (
        prop::bool::weighted(0.7),
        prop::option::weighted(0.6, prop::collection::vec(port_rule(), 1..=3)),
        prop::collection::vec(policy_cidr(), 0..=2),
        prop::collection::vec(pattern_text(), 0..=2),
    )
        .prop_map(|(egress, ports, cidrs, domains)| ModelRule {
            direction: if egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            ports,
            cidrs,
            // `domains` is for egress rules only.
            domains: if egress { domains } else { Vec::new() },
        })
}

fn policies() -> impl Strategy<Value = Vec<ModelPolicy>> {
    prop::collection::vec((selector(), prop::collection::vec(rule(), 0..=3)), 0..=3).prop_map(
        |policies| {
            policies
                .into_iter()
                .enumerate()
                .map(|(index, (selector, rules))| ModelPolicy {
                    name: format!("p{index}"),
                    selector,
                    rules,
                })
                .collect()
        },
    )
}

/// An address inside `net`, `offset` from its first or last address.
fn inside(net: IpNet, offset: u16, from_end: bool) -> IpAddr {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    let offset = u128::from(offset) & 1u128.checked_shl(host_bits).map_or(u128::MAX, |n| n - 1);
    match (net.network(), net.broadcast()) {
        (IpAddr::V4(first), IpAddr::V4(last)) => {
            let offset = u32::try_from(offset).expect("within an IPv4 block");
            v4(if from_end {
                last.to_bits() - offset
            } else {
                first.to_bits() + offset
            })
        }
        (IpAddr::V6(first), IpAddr::V6(last)) => v6(if from_end {
            last.to_bits() - offset
        } else {
            first.to_bits() + offset
        }),
        _ => unreachable!("a block has one family"),
    }
}

/// Where in one of the scenario's blocks a flow's address is to be put.
#[derive(Debug, Clone)]
struct InBlock {
    block: Index,
    offset: u16,
    from_end: bool,
}

fn in_block() -> impl Strategy<Value = InBlock> {
    (
        any::<Index>(),
        prop_oneof![0u16..=2, any::<u16>()],
        any::<bool>(),
    )
        .prop_map(|(block, offset, from_end)| InBlock {
            block,
            offset,
            from_end,
        })
}

fn box_policy() -> impl Strategy<Value = ModelBox> {
    // Some denied blocks lie inside allowed ones, so that both match.
    let denied_inside = prop::collection::vec((any::<Index>(), any::<u16>(), 0u8..=4), 0..=2);
    let custom = (
        prop::collection::vec(pattern_text(), 0..=3),
        prop::collection::vec(policy_cidr(), 0..=3),
        prop::collection::vec(policy_cidr(), 0..=2),
        denied_inside,
    )
        .prop_map(
            |(allowed_domains, allowed_cidrs, mut denied_cidrs, inside_allowed)| {
                for (index, offset, narrower) in inside_allowed {
                    if allowed_cidrs.is_empty() {
                        break;
                    }
                    let net = allowed_cidrs[index.index(allowed_cidrs.len())];
                    let prefix = (net.prefix_len() + narrower).min(net.max_prefix_len());
                    let address = inside(net, offset, false);
                    denied_cidrs.push(IpNet::new(address, prefix).expect("prefix").trunc());
                }
                (allowed_domains, allowed_cidrs, denied_cidrs)
            },
        )
        .prop_filter("custom needs a non-empty list", |(d, a, n)| {
            !(d.is_empty() && a.is_empty() && n.is_empty())
        })
        .prop_map(
            |(allowed_domains, allowed_cidrs, denied_cidrs)| ModelBox::Custom {
                allowed_domains,
                allowed_cidrs,
                denied_cidrs,
            },
        );
    prop_oneof![
        2 => Just(ModelBox::AllowAll),
        1 => Just(ModelBox::DenyAll),
        3 => custom,
    ]
}

/// A flow, the name its domain is to be made from once the scenario's
/// patterns are known, and where among the scenario's blocks to move its
/// address.
fn flow() -> impl Strategy<Value = (Flow, Option<NameSpec>, Option<InBlock>)> {
    let source = prop::option::weighted(
        0.2,
        prop::sample::select(vec![ip(OWN_V4), ip(OWN_V6), ip("8.8.4.4")]),
    );
    (
        prop::bool::weighted(0.75),
        protocol(),
        port(),
        prop::option::weighted(0.8, region_ip(flow_regions())),
        prop::option::weighted(0.5, valid_name_spec()),
        source,
        prop::option::weighted(0.5, in_block()),
    )
        .prop_map(|(egress, protocol, port, ip, domain, source, in_block)| {
            // Only egress flows carry a domain or a source; every flow names
            // its peer somehow; ICMP has no port.
            let (direction, domain, source) = if egress {
                (Direction::Egress, domain, source)
            } else {
                (Direction::Ingress, None, None)
            };
            let ip = if ip.is_none() && domain.is_none() {
                Some(v4(0x0808_0808))
            } else {
                ip
            };
            let flow = Flow {
                direction,
                protocol,
                port: (protocol != Protocol::Icmp).then_some(port),
                ip,
                domain: None,
                source,
            };
            (flow, domain, in_block)
        })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::sample::select(MACHINE_IDS.to_vec()),
        metadata(),
        box_policy(),
        policies(),
        prop::sample::subsequence(EXEMPTIONS.to_vec(), 0..=2),
        prop::collection::vec(flow(), 1..=8),
    )
        .prop_map(
            |(machine_id, metadata, box_policy, policies, exemptions, flows)| {
                let mut scenario = Scenario {
                    machine_id,
                    metadata,
                    box_policy,
                    policies,
                    exemptions: exemptions
                        .iter()
                        .map(|text| text.parse().expect("exemption"))
                        .collect(),
                    flows: Vec::new(),
                };
                let patterns = scenario_patterns(&scenario);
                let blocks = scenario_blocks(&scenario);
                scenario.flows = flows
                    .into_iter()
                    .map(|(mut flow, name, in_block)| {
                        flow.domain = name
                            .map(|name| name.resolve(&patterns))
                            .map(|name| if name.is_empty() { "a.b".into() } else { name });
                        if let (Some(_), Some(spot)) = (flow.ip, in_block)
                            && !blocks.is_empty()
                        {
                            let net = blocks[spot.block.index(blocks.len())];
                            flow.ip = Some(inside(net, spot.offset, spot.from_end));
                        }
                        flow
                    })
                    .collect();
                scenario
            },
        )
}

fn strings(items: &[impl ToString]) -> Value {
    Value::Array(items.iter().map(|item| json!(item.to_string())).collect())
}

fn box_json(model: &ModelBox) -> Value {
    match model {
        ModelBox::AllowAll => json!({"mode": "allow-all"}),
        ModelBox::DenyAll => json!({"mode": "deny-all"}),
        ModelBox::Custom {
            allowed_domains,
            allowed_cidrs,
            denied_cidrs,
        } => {
            let mut object = Map::new();
            object.insert("mode".into(), json!("custom"));
            for (field, list) in [
                ("allowedDomains", strings(allowed_domains)),
                ("allowedCidrs", strings(allowed_cidrs)),
                ("deniedCidrs", strings(denied_cidrs)),
            ] {
                // Empty lists are sometimes written, sometimes left out.
                if list.as_array().is_some_and(|l| !l.is_empty()) || field == "deniedCidrs" {
                    object.insert(field.into(), list);
                }
            }
            Value::Object(object)
        }
    }
}

fn policy_json(model: &ModelPolicy) -> Value {
    let mut selector = Map::new();
    if model.selector.all {
        selector.insert("all".into(), json!(true));
    }
    if !model.selector.machines.is_empty() {
        let machines: Vec<Value> = model
            .selector
            .machines
            .iter()
            .map(|id| json!({ "id": id }))
            .collect();
        selector.insert("machines".into(), Value::Array(machines));
    }
    if !model.selector.metadata.is_empty() {
        selector.insert("metadata".into(), json!(model.selector.metadata));
    }
    let rules: Vec<Value> = model
        .rules
        .iter()
        .map(|rule| {
            let mut object = Map::new();
            object.insert("action".into(), json!("allow"));
            object.insert("direction".into(), json!(rule.direction.as_str()));
            if let Some(ports) = &rule.ports {
                object.insert("ports".into(), json!(ports));
            }
            if !rule.cidrs.is_empty() {
                object.insert("cidrs".into(), strings(&rule.cidrs));
            }
            if !rule.domains.is_empty() {
                object.insert("domains".into(), strings(&rule.domains));
            }
            Value::Object(object)
        })
        .collect();
    json!({ "name": model.name, "selector": selector, "rules": rules })
}

/// DESIGN.md 1.2: every field given must match.
fn selects(selector: &ModelSelector, id: &str, metadata: &BTreeMap<String, String>) -> bool {
    let all = selector.all || !selector.machines.is_empty() || !selector.metadata.is_empty();
    let listed = selector.machines.is_empty() || selector.machines.contains(&id);
    let labelled = selector
        .metadata
        .iter()
        .all(|(key, value)| metadata.get(key) == Some(value));
    all && listed && labelled
}

fn any_pattern_matches(patterns: &[String], name: Option<&str>) -> bool {
    name.is_some_and(|name| patterns.iter().any(|p| spec_matches(p, name)))
}

/// The app rules of `direction` of the policies that select the machine.
fn reference_rules(scenario: &Scenario, direction: Direction) -> Vec<&ModelRule> {
    scenario
        .policies
        .iter()
        .filter(|policy| selects(&policy.selector, scenario.machine_id, &scenario.metadata))
        .flat_map(|policy| policy.rules.iter())
        .filter(|rule| rule.direction == direction)
        .collect()
}

/// DESIGN.md 1.3-1.5, checked layer by layer: `Err(layer)` names the first
/// layer that denies.
fn reference_evaluate(scenario: &Scenario, flow: &Flow) -> Result<(), Layer> {
    let egress = flow.direction == Direction::Egress;
    let ip_in = |nets: &[IpNet]| flow.ip.is_some_and(|ip| in_any(nets, ip));

    // 1. Anti-spoofing: a packet from the box carries one of its addresses.
    if let Some(source) = flow.source.filter(|_| egress)
        && source != ip(OWN_V4)
        && source != ip(OWN_V6)
    {
        return Err(Layer::AntiSpoof);
    }

    // 2. Always-blocked ranges (egress), minus the operator's exemptions.
    let blocked: Vec<IpNet> = ALWAYS_BLOCKED
        .iter()
        .map(|block| block.cidr.parse().expect("table entry"))
        .collect();
    if egress && ip_in(&blocked) && !ip_in(&scenario.exemptions) {
        return Err(Layer::AlwaysBlocked);
    }

    // 3. Box policy: deny-all denies both ways; otherwise egress only.
    let mut by_domain = false;
    match &scenario.box_policy {
        ModelBox::DenyAll => return Err(Layer::BoxPolicy),
        ModelBox::AllowAll => {}
        ModelBox::Custom { .. } if !egress => {}
        ModelBox::Custom {
            allowed_domains,
            allowed_cidrs,
            denied_cidrs,
        } => {
            if ip_in(denied_cidrs) {
                return Err(Layer::BoxPolicy);
            }
            let default_deny = !allowed_domains.is_empty() || !allowed_cidrs.is_empty();
            let allowed = ip_in(allowed_cidrs)
                || any_pattern_matches(allowed_domains, flow.domain.as_deref());
            if default_deny && !allowed {
                return Err(Layer::BoxPolicy);
            }
            by_domain = default_deny && !ip_in(allowed_cidrs);
        }
    }

    // 4. App policies: no rule for the direction allows all; otherwise the
    //    union of the rules, default deny.
    let rules = reference_rules(scenario, flow.direction);
    let matches = |rule: &&ModelRule| {
        let ports = rule
            .ports
            .as_ref()
            .is_none_or(|ports| ports_allow(ports, flow.protocol, flow.port));
        let peers = (rule.cidrs.is_empty() && rule.domains.is_empty())
            || ip_in(&rule.cidrs)
            || any_pattern_matches(&rule.domains, flow.domain.as_deref());
        ports && peers
    };
    if !rules.is_empty() && !rules.iter().any(matches) {
        return Err(Layer::AppPolicy);
    }
    let without_domain = |rule: &&ModelRule| {
        rule.ports
            .as_ref()
            .is_none_or(|ports| ports_allow(ports, flow.protocol, flow.port))
            && ((rule.cidrs.is_empty() && rule.domains.is_empty()) || ip_in(&rule.cidrs))
    };
    by_domain |= !rules.is_empty() && !rules.iter().any(without_domain);
    // 5. Issue 19: HTTP/3 to an address only a domain authorised is
    //    refused (names are checked by default).
    if egress && by_domain && flow.protocol == Protocol::Udp && flow.port == Some(443) {
        return Err(Layer::Sni);
    }
    Ok(())
}

/// DESIGN.md 1.6: a name is answered iff the box layer allows the name and
/// the app layer has no egress rule, or one without destinations, or one
/// whose domains match it.
fn reference_evaluate_name(scenario: &Scenario, name: &str) -> Result<(), Layer> {
    match &scenario.box_policy {
        ModelBox::DenyAll => return Err(Layer::BoxPolicy),
        ModelBox::AllowAll => {}
        ModelBox::Custom {
            allowed_domains,
            allowed_cidrs,
            ..
        } => {
            let default_deny = !allowed_domains.is_empty() || !allowed_cidrs.is_empty();
            if default_deny && !any_pattern_matches(allowed_domains, Some(name)) {
                return Err(Layer::BoxPolicy);
            }
        }
    }
    let rules = reference_rules(scenario, Direction::Egress);
    let answered = rules.is_empty()
        || rules.iter().any(|rule| {
            (rule.cidrs.is_empty() && rule.domains.is_empty())
                || any_pattern_matches(&rule.domains, Some(name))
        });
    if answered {
        Ok(())
    } else {
        Err(Layer::AppPolicy)
    }
}

/// Every domain pattern of the scenario, to make names from.
fn scenario_patterns(scenario: &Scenario) -> Vec<String> {
    let rules = scenario.policies.iter().flat_map(|p| p.rules.iter());
    let mut patterns: Vec<String> = rules.flat_map(|r| r.domains.iter().cloned()).collect();
    if let ModelBox::Custom {
        allowed_domains, ..
    } = &scenario.box_policy
    {
        patterns.extend(allowed_domains.iter().cloned());
    }
    patterns
}

/// Every CIDR block of the scenario, to put flow addresses in.
fn scenario_blocks(scenario: &Scenario) -> Vec<IpNet> {
    let rules = scenario.policies.iter().flat_map(|p| p.rules.iter());
    let mut blocks: Vec<IpNet> = rules.flat_map(|r| r.cidrs.iter().copied()).collect();
    if let ModelBox::Custom {
        allowed_cidrs,
        denied_cidrs,
        ..
    } = &scenario.box_policy
    {
        blocks.extend(allowed_cidrs.iter().chain(denied_cidrs).copied());
    }
    blocks
}

fn effective_policy(scenario: &Scenario) -> EffectivePolicy {
    let box_policy =
        BoxPolicy::from_json(&box_json(&scenario.box_policy)).expect("generated box policy");
    let policies: Vec<AppPolicy> = scenario
        .policies
        .iter()
        .map(|model| AppPolicy::from_json(&policy_json(model)).expect("generated app policy"))
        .collect();
    let exemptions: Vec<Cidr> = scenario.exemptions.iter().map(|&n| n.into()).collect();
    let blocked = AlwaysBlocked::with_exemptions(&exemptions, &[]).expect("valid exemptions");
    let machine = Machine {
        id: scenario.machine_id.to_owned(),
        metadata: scenario.metadata.clone(),
        network_policy: box_policy,
        addresses: vec![ip(OWN_V4), ip(OWN_V6)],
    };
    EffectivePolicy::from_policies(&machine, &policies, Arc::new(blocked))
}

fn layer_name(outcome: Result<(), Layer>) -> &'static str {
    outcome.err().map_or("allow", Layer::as_str)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn evaluate_agrees_with_the_reference_evaluator(scenario in scenario()) {
        let policy = effective_policy(&scenario);
        for flow in &scenario.flows {
            // The generated flow is one the API accepts, and reads back
            // equal but for its name, which is stored canonical.
            let wire = serde_json::to_value(flow).expect("flow serializes");
            let read: Flow = serde_json::from_value(wire.clone())
                .map_err(|e| TestCaseError::fail(format!("{wire} rejected: {e}")))?;
            let canonical = flow.domain.as_deref().and_then(canonical).map(|name| name.into_owned());
            prop_assert_eq!(&read, &Flow { domain: canonical, ..flow.clone() });

            let verdict = evaluate(&policy, flow);
            let got = verdict.denied_by().map_or(Ok(()), Err);
            let expected = reference_evaluate(&scenario, flow);
            prop_assert_eq!(
                layer_name(got), layer_name(expected),
                "flow {} verdict {}", wire,
                serde_json::to_string(&verdict).expect("verdict serializes")
            );
            prop_assert_eq!(verdict.allowed(), expected.is_ok());
        }
    }

    #[test]
    fn evaluate_name_agrees_with_the_reference_resolver_rule(
        scenario in scenario(),
        names in prop::collection::vec(valid_name_spec(), 1..=6),
    ) {
        let policy = effective_policy(&scenario);
        let patterns = scenario_patterns(&scenario);
        for name in names.iter().map(|spec| spec.resolve(&patterns)) {
            let name = name.as_str();
            let verdict = evaluate_name(&policy, name);
            let got = verdict.denied_by().map_or(Ok(()), Err);
            let expected = reference_evaluate_name(&scenario, name);
            prop_assert_eq!(layer_name(got), layer_name(expected), "name {}", name);
        }
    }

    #[test]
    fn generated_policies_read_back_equal_after_serializing(scenario in scenario()) {
        for model in &scenario.policies {
            let policy = AppPolicy::from_json(&policy_json(model)).expect("generated app policy");
            let wire = serde_json::to_value(&policy).expect("app policy serializes");
            let again = AppPolicy::from_json(&wire);
            prop_assert_eq!(again.as_ref(), Ok(&policy), "{}", wire);
        }
        let policy = BoxPolicy::from_json(&box_json(&scenario.box_policy)).expect("box policy");
        let wire = serde_json::to_value(&policy).expect("box policy serializes");
        let again = BoxPolicy::from_json(&wire);
        prop_assert_eq!(again.as_ref(), Ok(&policy), "{}", wire);
    }
}

// ---------------------------------------------------------------------------
// 2. Parsing never panics
// ---------------------------------------------------------------------------

/// Every field name of the three documents, so random trees reach deep.
const FIELD_NAMES: [&str; 22] = [
    "name",
    "id",
    "selector",
    "rules",
    "all",
    "machines",
    "metadata",
    "action",
    "direction",
    "ports",
    "protocol",
    "port",
    "end_port",
    "cidrs",
    "domains",
    "mode",
    "allowedDomains",
    "allowedCidrs",
    "deniedCidrs",
    "ip",
    "domain",
    "source",
];

/// Strings each of which some field accepts or nearly accepts.
const INTERESTING_STRINGS: [&str; 34] = [
    "allow",
    "deny",
    "egress",
    "ingress",
    "tcp",
    "udp",
    "icmp",
    "TCP",
    "allow-all",
    "deny-all",
    "custom",
    "10.0.0.0/8",
    "10.0.0.1/8",
    "8.8.8.8",
    "::ffff:10.0.0.1",
    "2001:db8::/32",
    "::/0",
    "0.0.0.0/0",
    "1.2.3.4/33",
    "*.github.com",
    "*",
    "*.",
    "a.*.com",
    "api.github.com",
    "API.GitHub.COM.",
    "bücher.de",
    "xn--bcher-kva.de",
    "xn--",
    "a..b",
    ".",
    "",
    "m1",
    "env",
    "\u{0}",
];

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![0i64, 1, 53, 443, 65535, 65536, -1, i64::MIN, i64::MAX])
            .prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![1.5f64, 80.0, -0.0, 1e300])
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(INTERESTING_STRINGS.to_vec()).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9.*_:/-]{0,12}",
        1 => any::<String>(),
        1 => (1usize..=300).prop_map(|n| "a.".repeat(n / 2) + &"b".repeat(n % 70)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => number(),
        3 => text().prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(FIELD_NAMES.to_vec()).prop_map(str::to_owned),
        1 => text(),
    ]
}

/// An arbitrary JSON tree whose object keys are mostly real field names.
fn json_tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..=5).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..=6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// `valid` most of the time, an arbitrary tree otherwise.
fn fuzzy(valid: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![6 => valid, 1 => json_tree()].boxed()
}

fn string_from(options: &[&'static str]) -> BoxedStrategy<Value> {
    fuzzy(prop::sample::select(options.to_vec()).prop_map(Value::from))
}

fn list_of(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    fuzzy(prop::collection::vec(item, 0..=3).prop_map(Value::Array))
}

/// An object with each member present most of the time, and sometimes an
/// unknown member.
fn object(members: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let (names, values): (Vec<_>, Vec<_>) = members
        .into_iter()
        .map(|(name, value)| (name, prop::option::weighted(0.85, value)))
        .unzip();
    let extra = prop::option::weighted(0.1, (key(), json_tree()));
    (values, extra)
        .prop_map(move |(values, extra)| {
            let mut map: Map<String, Value> = names
                .iter()
                .zip(values)
                .filter_map(|(name, value)| Some(((*name).to_owned(), value?)))
                .collect();
            if let Some((key, value)) = extra {
                map.insert(key, value);
            }
            Value::Object(map)
        })
        .boxed()
}

fn cidr_value() -> BoxedStrategy<Value> {
    fuzzy(prop_oneof![
        policy_cidr().prop_map(|net| Value::from(net.to_string())),
        region_ip(flow_regions()).prop_map(|ip| Value::from(ip.to_string())),
        text().prop_map(Value::String),
    ])
}

fn domain_value() -> BoxedStrategy<Value> {
    fuzzy(prop_oneof![
        pattern_text().prop_map(Value::String),
        text().prop_map(Value::String),
    ])
}

fn port_value() -> BoxedStrategy<Value> {
    fuzzy(prop_oneof![port().prop_map(Value::from), number()])
}

/// Nearly valid app policies: every level is usually the right shape, so
/// validation runs deep and meets its edge cases.
fn near_app_policy() -> BoxedStrategy<Value> {
    let port_entry = object(vec![
        ("protocol", string_from(&["tcp", "udp", "icmp", "sctp"])),
        ("port", port_value()),
        ("end_port", port_value()),
    ]);
    let rule = object(vec![
        ("action", string_from(&["allow", "deny"])),
        ("direction", string_from(&["egress", "ingress", "both"])),
        ("ports", list_of(port_entry)),
        ("cidrs", list_of(cidr_value())),
        ("domains", list_of(domain_value())),
    ]);
    let selector = object(vec![
        ("all", fuzzy(any::<bool>().prop_map(Value::Bool))),
        (
            "machines",
            list_of(object(vec![("id", string_from(&["m1", "m2", ""]))])),
        ),
        ("metadata", fuzzy(metadata().prop_map(|m| json!(m)))),
    ]);
    object(vec![
        ("name", string_from(&["web", "a b", ""])),
        ("id", string_from(&["p-1", "p/1"])),
        ("selector", selector),
        ("rules", list_of(rule)),
    ])
}

fn near_box_policy() -> BoxedStrategy<Value> {
    object(vec![
        (
            "mode",
            string_from(&["allow-all", "deny-all", "custom", "Custom"]),
        ),
        ("allowedDomains", list_of(domain_value())),
        ("allowedCidrs", list_of(cidr_value())),
        ("deniedCidrs", list_of(cidr_value())),
    ])
}

fn near_flow() -> BoxedStrategy<Value> {
    object(vec![
        ("direction", string_from(&["egress", "ingress"])),
        ("protocol", string_from(&["tcp", "udp", "icmp"])),
        ("port", port_value()),
        ("ip", cidr_value()),
        ("domain", domain_value()),
        ("source", cidr_value()),
    ])
}

/// Parses `value` every way there is and checks what must hold of the
/// outcome: both entry points agree, a rejection names at least one
/// problem, and an accepted document reads back equal after serializing.
fn parse_everything(value: &Value) -> Result<(), TestCaseError> {
    let blocked = AlwaysBlocked::default();

    let app = AppPolicy::from_json(value);
    let via_serde = serde_json::from_value::<AppPolicy>(value.clone());
    prop_assert_eq!(app.as_ref().ok(), via_serde.as_ref().ok());
    match &app {
        Ok(policy) => {
            let _ = policy.warnings(&blocked);
            let wire = serde_json::to_value(policy).expect("app policy serializes");
            let again = AppPolicy::from_json(&wire);
            prop_assert_eq!(again.as_ref(), Ok(policy), "{}", wire);
        }
        Err(error) => {
            check_names_problems(error)?;
        }
    }

    let boxed = BoxPolicy::from_json(value);
    let via_serde = serde_json::from_value::<BoxPolicy>(value.clone());
    prop_assert_eq!(boxed.as_ref().ok(), via_serde.as_ref().ok());
    match &boxed {
        Ok(policy) => {
            let _ = policy.warnings(&blocked);
            let wire = serde_json::to_value(policy).expect("box policy serializes");
            let again = BoxPolicy::from_json(&wire);
            prop_assert_eq!(again.as_ref(), Ok(policy), "{}", wire);
        }
        Err(error) => {
            check_names_problems(error)?;
        }
    }

    if let Ok(flow) = serde_json::from_value::<Flow>(value.clone()) {
        let wire = serde_json::to_value(&flow).expect("flow serializes");
        let read: Flow = serde_json::from_value(wire.clone())
            .map_err(|e| TestCaseError::fail(format!("{wire} rejected: {e}")))?;
        prop_assert_eq!(read, flow);
    }
    Ok(())
}

/// A rejection says what is wrong where, never just "invalid document"
/// (the fallback when a reader gives up without recording why).
fn check_names_problems(error: &boxfence_policy::ValidationError) -> Result<(), TestCaseError> {
    prop_assert!(!error.to_string().is_empty());
    for problem in &error.problems {
        prop_assert_ne!(problem.message.as_str(), "invalid document", "{}", error);
    }
    Ok(())
}

/// Bytes that are often JSON-shaped.
fn json_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "{", "}", "[", "]", ",", ":", "\"", "null", "true", "1", "-", "e9", "\\u00",
        ])
        .prop_map(str::to_owned),
        prop::sample::select(FIELD_NAMES.to_vec()).prop_map(|name| format!("\"{name}\"")),
        prop::sample::select(INTERESTING_STRINGS.to_vec()).prop_map(|s| format!("\"{s}\"")),
    ];
    prop::collection::vec(token, 0..=40).prop_map(|tokens| tokens.concat().into_bytes())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn parsing_arbitrary_bytes_never_panics(
        bytes in prop_oneof![prop::collection::vec(any::<u8>(), 0..=256), json_ish_bytes()],
    ) {
        let _ = serde_json::from_slice::<AppPolicy>(&bytes);
        let _ = serde_json::from_slice::<BoxPolicy>(&bytes);
        let _ = serde_json::from_slice::<Flow>(&bytes);
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            parse_everything(&value)?;
        }
    }

    #[test]
    fn parsing_arbitrary_json_trees_never_panics(value in json_tree()) {
        parse_everything(&value)?;
    }

    #[test]
    fn parsing_nearly_valid_documents_never_panics(
        value in prop_oneof![near_app_policy(), near_box_policy(), near_flow()],
    ) {
        parse_everything(&value)?;
    }
}
