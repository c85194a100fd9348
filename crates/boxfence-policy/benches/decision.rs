//! Decision cost with 10,000 CIDRs and 10,000 domain patterns, each
//! measurement beside a naive linear scan over the same entries, in the
//! same run.
//!
//! - `evaluate/boxfence` vs `evaluate/linear_scan`: one flow per iteration,
//!   cycling through a fixed mix of allowed and denied, IP and domain flows.
//!   The machine has a `custom` box policy with the 10,000 CIDRs as
//!   `allowedCidrs` and the 10,000 patterns as `allowedDomains`, and one app
//!   policy whose egress rule names the same CIDRs and patterns.
//! - `domain_lookup/boxfence` vs `domain_lookup/linear_scan`: one
//!   `DomainSet::lookup` per iteration over a mix of exact hits, wildcard
//!   hits, apexes of wildcards and misses.
//!
//! Run: `cargo bench -p boxfence-policy --bench decision`. The inputs come
//! from a fixed seed, so every run measures the same thing.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use boxfence_policy::matchers::DomainSet;
use boxfence_policy::{
    ALWAYS_BLOCKED, AlwaysBlocked, AppPolicy, BoxPolicy, Direction, DomainPattern, EffectivePolicy,
    Flow, Machine, PortRule, Protocol, canonical, evaluate,
};
use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::IpNet;
use serde_json::json;

const CIDRS: usize = 10_000;
const PATTERNS: usize = 10_000;
/// Flows and names cycled through; a power of two.
const INPUTS: usize = 4096;

/// SplitMix64: a small deterministic generator, so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n")
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A random public address: IPv4 one time in two, else global unicast IPv6.
fn public_ip(rng: &mut Rng, blocked: &AlwaysBlocked) -> IpAddr {
    loop {
        let ip = if rng.chance(50) {
            IpAddr::V4(Ipv4Addr::from_bits(rng.next() as u32))
        } else {
            // 2000::/3
            let bits = (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3;
            IpAddr::V6(Ipv6Addr::from_bits(bits | 1 << 125))
        };
        if blocked.lookup(ip).is_none() {
            return ip;
        }
    }
}

/// Random public blocks: IPv4 /16-/24 and IPv6 /32-/48.
fn public_cidrs(rng: &mut Rng, blocked: &AlwaysBlocked) -> Vec<IpNet> {
    (0..CIDRS)
        .map(|_| {
            let ip = public_ip(rng, blocked);
            let prefix = match ip {
                IpAddr::V4(_) => 16 + rng.below(9),
                IpAddr::V6(_) => 32 + rng.below(17),
            };
            let prefix = u8::try_from(prefix).expect("prefix fits");
            IpNet::new(ip, prefix).expect("valid prefix").trunc()
        })
        .collect()
}

fn label(rng: &mut Rng) -> String {
    const SYLLABLES: [&str; 24] = [
        "ap", "ba", "co", "de", "ex", "fi", "go", "hu", "in", "jo", "ka", "lu", "mi", "no", "op",
        "pa", "qu", "ro", "si", "tu", "ul", "ve", "wa", "zy",
    ];
    let count = 2 + rng.below(3);
    (0..count).map(|_| *rng.pick(&SYLLABLES)).collect()
}

/// A realistic name of 2-4 labels (`api.koromi.com`).
fn name(rng: &mut Rng) -> String {
    const TLDS: [&str; 8] = ["com", "net", "org", "io", "dev", "de", "co.uk", "app"];
    let tld = *rng.pick(&TLDS);
    // 2-4 labels in all; `co.uk` is two.
    let labels = if tld == "co.uk" {
        1 + rng.below(2)
    } else {
        1 + rng.below(3)
    };
    let mut parts: Vec<String> = (0..labels).map(|_| label(rng)).collect();
    parts.push(tld.to_owned());
    parts.join(".")
}

/// Half exact names, half `*.suffix` wildcards, all distinct.
fn patterns(rng: &mut Rng) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(PATTERNS);
    while out.len() < PATTERNS {
        let name = name(rng);
        if seen.insert(name.clone()) {
            out.push(if out.len() % 2 == 0 {
                name
            } else {
                format!("*.{name}")
            });
        }
    }
    out
}

struct Setup {
    policy: EffectivePolicy,
    naive: Naive,
    flows: Vec<Flow>,
    domain_set: DomainSet,
    patterns: Vec<DomainPattern>,
    names: Vec<String>,
}

fn setup() -> Setup {
    let mut rng = Rng(0x5eed_b0c5_fe4c_e001);
    let blocked = AlwaysBlocked::default();
    let cidrs = public_cidrs(&mut rng, &blocked);
    let pattern_texts = patterns(&mut rng);
    let cidr_texts: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
    let denied: Vec<String> = cidr_texts.iter().step_by(100).cloned().collect();

    let box_policy = BoxPolicy::from_json(&json!({
        "mode": "custom",
        "allowedDomains": pattern_texts,
        "allowedCidrs": cidr_texts,
        "deniedCidrs": denied,
    }))
    .expect("box policy is valid");
    let app_policy = AppPolicy::from_json(&json!({
        "name": "web",
        "selector": {"all": true},
        "rules": [
            {"action": "allow", "direction": "egress",
             "ports": [{"protocol": "tcp", "port": 443}, {"protocol": "tcp", "port": 80},
                       {"protocol": "udp", "port": 53}],
             "cidrs": cidr_texts, "domains": pattern_texts},
            {"action": "allow", "direction": "ingress",
             "ports": [{"protocol": "tcp", "port": 22}],
             "cidrs": cidr_texts[..1000]},
        ],
    }))
    .expect("app policy is valid");

    let machine = Machine {
        id: "m1".into(),
        metadata: BTreeMap::new(),
        network_policy: box_policy.clone(),
        addresses: Vec::new(),
    };
    let policy = EffectivePolicy::from_policies(
        &machine,
        std::slice::from_ref(&app_policy),
        Arc::new(blocked.clone()),
    );
    let naive = Naive::new(&box_policy, &app_policy);

    let patterns: Vec<DomainPattern> = pattern_texts
        .iter()
        .map(|text| text.parse().expect("valid pattern"))
        .collect();
    let names: Vec<String> = (0..INPUTS)
        .map(|_| lookup_name(&mut rng, &pattern_texts))
        .collect();
    let flows: Vec<Flow> = (0..INPUTS)
        .map(|_| flow(&mut rng, &cidrs, &pattern_texts, &blocked))
        .collect();

    Setup {
        policy,
        naive,
        flows,
        domain_set: DomainSet::new(patterns.iter().cloned()),
        patterns,
        names,
    }
}

/// A name to look up: an exact pattern (25%), a name under a wildcard (25%),
/// a wildcard's apex (10%), or a random name, nearly always a miss.
fn lookup_name(rng: &mut Rng, patterns: &[String]) -> String {
    let pattern = rng.pick(patterns);
    let roll = rng.below(100);
    match pattern.strip_prefix("*.") {
        _ if roll >= 60 => name(rng),
        Some(suffix) if roll < 50 => format!("{}.{suffix}", label(rng)),
        Some(suffix) => suffix.to_owned(),
        None => pattern.clone(),
    }
}

/// Egress flows to an allowed block, to a random public address, to an
/// always-blocked one, or by name; some on a port the app rule does not
/// allow; and some ingress flows.
fn flow(rng: &mut Rng, cidrs: &[IpNet], patterns: &[String], blocked: &AlwaysBlocked) -> Flow {
    let port = if rng.chance(85) { 443 } else { 8080 };
    let mut flow = Flow {
        direction: Direction::Egress,
        protocol: Protocol::Tcp,
        port: Some(port),
        ip: None,
        domain: None,
        source: None,
    };
    match rng.below(100) {
        0..=29 => {
            let net = rng.pick(cidrs);
            let hosts = net.hosts().nth(rng.below(200)).unwrap_or(net.network());
            flow.ip = Some(hosts);
        }
        30..=49 => flow.ip = Some(public_ip(rng, blocked)),
        50..=54 => flow.ip = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, rng.below(255) as u8))),
        55..=89 => {
            flow.domain = Some(lookup_name(rng, patterns));
            flow.ip = Some(public_ip(rng, blocked));
        }
        _ => {
            flow.direction = Direction::Ingress;
            flow.port = Some(if rng.chance(50) { 22 } else { 443 });
            flow.ip = Some(if rng.chance(50) {
                rng.pick(&cidrs[..1000]).network()
            } else {
                public_ip(rng, blocked)
            });
        }
    }
    flow
}

/// The baseline: the same layers, every list scanned linearly.
struct Naive {
    blocked: Vec<IpNet>,
    denied: Vec<IpNet>,
    allowed_cidrs: Vec<IpNet>,
    allowed_domains: Vec<DomainPattern>,
    rules: Vec<NaiveRule>,
}

struct NaiveRule {
    direction: Direction,
    ports: Option<Vec<PortRule>>,
    cidrs: Vec<IpNet>,
    domains: Vec<DomainPattern>,
}

impl Naive {
    fn new(box_policy: &BoxPolicy, app_policy: &AppPolicy) -> Self {
        let BoxPolicy::Custom(custom) = box_policy else {
            panic!("the benchmark uses a custom box policy");
        };
        Self {
            blocked: ALWAYS_BLOCKED
                .iter()
                .map(|block| block.cidr.parse().expect("table entry"))
                .collect(),
            denied: custom.denied_cidrs.iter().map(|c| c.net()).collect(),
            allowed_cidrs: custom.allowed_cidrs.iter().map(|c| c.net()).collect(),
            allowed_domains: custom.allowed_domains.clone(),
            rules: app_policy
                .rules
                .iter()
                .map(|rule| NaiveRule {
                    direction: rule.direction,
                    ports: rule.ports.clone(),
                    cidrs: rule.cidrs.iter().map(|c| c.net()).collect(),
                    domains: rule.domains.clone(),
                })
                .collect(),
        }
    }

    fn allows(&self, flow: &Flow) -> bool {
        let egress = flow.direction == Direction::Egress;
        let name = flow.domain.as_deref().and_then(canonical);
        let name = name.as_deref();
        let in_list = |list: &[IpNet]| {
            flow.ip
                .is_some_and(|ip| list.iter().any(|n| n.contains(&ip)))
        };
        let named =
            |list: &[DomainPattern]| name.is_some_and(|n| list.iter().any(|p| p.matches(n)));
        if egress && in_list(&self.blocked) {
            return false;
        }
        if egress
            && (in_list(&self.denied)
                || !(in_list(&self.allowed_cidrs) || named(&self.allowed_domains)))
        {
            return false;
        }
        let mut rules = self
            .rules
            .iter()
            .filter(|rule| rule.direction == flow.direction)
            .peekable();
        if rules.peek().is_none() {
            return true;
        }
        rules.any(|rule| {
            let ports = rule.ports.as_ref().is_none_or(|ports| {
                ports.iter().any(|p| match (*p, flow.protocol) {
                    (PortRule::Tcp(r), Protocol::Tcp) | (PortRule::Udp(r), Protocol::Udp) => {
                        flow.port.is_some_and(|port| r.contains(port))
                    }
                    (PortRule::Icmp, Protocol::Icmp) => true,
                    _ => false,
                })
            });
            let anyone = rule.cidrs.is_empty() && rule.domains.is_empty();
            ports && (anyone || in_list(&rule.cidrs) || named(&rule.domains))
        })
    }
}

fn naive_lookup<'a>(patterns: &'a [DomainPattern], name: &str) -> Option<&'a DomainPattern> {
    let name = canonical(name)?;
    patterns.iter().find(|pattern| pattern.matches(&name))
}

fn benches(c: &mut Criterion) {
    let setup = setup();

    // The two sides must decide alike, or the comparison means nothing.
    let mut allowed = 0;
    for flow in &setup.flows {
        let verdict = evaluate(&setup.policy, flow).allowed();
        assert_eq!(verdict, setup.naive.allows(flow), "{flow:?}");
        allowed += usize::from(verdict);
    }
    let mut hits = 0;
    for name in &setup.names {
        let found = setup.domain_set.lookup(name).is_some();
        assert_eq!(
            found,
            naive_lookup(&setup.patterns, name).is_some(),
            "{name}"
        );
        hits += usize::from(found);
    }
    eprintln!(
        "inputs: {} flows ({allowed} allowed), {} names ({hits} matched)",
        setup.flows.len(),
        setup.names.len()
    );

    let mut group = c.benchmark_group("evaluate");
    let mut index = 0;
    group.bench_function("boxfence", |b| {
        b.iter(|| {
            index = (index + 1) % INPUTS;
            evaluate(&setup.policy, black_box(&setup.flows[index])).allowed()
        });
    });
    group.bench_function("linear_scan", |b| {
        b.iter(|| {
            index = (index + 1) % INPUTS;
            setup.naive.allows(black_box(&setup.flows[index]))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("domain_lookup");
    group.bench_function("boxfence", |b| {
        b.iter(|| {
            index = (index + 1) % INPUTS;
            setup
                .domain_set
                .lookup(black_box(&setup.names[index]))
                .is_some()
        });
    });
    group.bench_function("linear_scan", |b| {
        b.iter(|| {
            index = (index + 1) % INPUTS;
            naive_lookup(&setup.patterns, black_box(&setup.names[index])).is_some()
        });
    });
    group.finish();
}

criterion_group!(decision, benches);
criterion_main!(decision);
