//! Connection tracking: cutting the flows a new policy denies, and every
//! flow of a deleted box.

use std::net::IpAddr;

use boxfence_policy::{Direction, EffectivePolicy, Flow, Protocol, evaluate};

use crate::command::{CommandError, HostNetns};
use crate::ruleset::BoxLink;

/// One flow, as its original direction saw it (a conntrack entry, or the
/// headers of a logged packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackedFlow {
    /// Its protocol.
    pub protocol: Protocol,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (TCP/UDP).
    pub sport: Option<u16>,
    /// Destination port (TCP/UDP).
    pub dport: Option<u16>,
}

impl TrackedFlow {
    /// Parses one line of `conntrack -L`; `None` for protocols boxfence
    /// does not police separately (they are not allowed by port rules).
    fn parse(line: &str) -> Option<Self> {
        let protocol = match line.split_whitespace().next()? {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" | "icmpv6" => Protocol::Icmp,
            _ => return None,
        };
        let field = |key: &str| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        };
        Some(Self {
            protocol,
            src: field("src")?.parse().ok()?,
            dst: field("dst")?.parse().ok()?,
            sport: field("sport").and_then(|p| p.parse().ok()),
            dport: field("dport").and_then(|p| p.parse().ok()),
        })
    }

    /// The flow as the box sees it, if it is one of this box's.
    pub fn as_box_flow(&self, link: &BoxLink) -> Option<Flow> {
        let owns = |ip: IpAddr| ip == IpAddr::V4(link.ipv4) || ip == IpAddr::V6(link.ipv6);
        let direction = if owns(self.src) {
            Direction::Egress
        } else if owns(self.dst) {
            Direction::Ingress
        } else {
            return None;
        };
        Some(self.as_flow(direction, None))
    }

    /// The flow as its box sees it in `direction` (the remote end is the
    /// destination of egress, the source of ingress), learned from
    /// `domain` when known.
    pub fn as_flow(&self, direction: Direction, domain: Option<String>) -> Flow {
        let remote = match direction {
            Direction::Egress => self.dst,
            Direction::Ingress => self.src,
        };
        Flow {
            direction,
            protocol: self.protocol,
            port: self.dport.filter(|_| self.protocol != Protocol::Icmp),
            ip: Some(remote),
            domain,
            source: None,
        }
    }
}

/// Lists every tracked flow of the host.
pub fn list(host: &HostNetns) -> Result<Vec<TrackedFlow>, CommandError> {
    // Each dump walks the whole table (~12 ms even when empty): both
    // families at once.
    let texts = concurrently(
        ["ipv4", "ipv6"].map(|family| move || host.run("conntrack", &["-L", "-f", family], None)),
    );
    let mut flows = Vec::new();
    for text in texts {
        flows.extend(text?.lines().filter_map(TrackedFlow::parse));
    }
    Ok(flows)
}

/// Runs the jobs on threads of their own and returns their results in order.
fn concurrently<T: Send, const N: usize>(jobs: [impl FnOnce() -> T + Send; N]) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs.into_iter().map(|job| scope.spawn(job)).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Deletes one flow; an entry already gone is fine.
pub fn delete(host: &HostNetns, flow: &TrackedFlow) -> Result<(), CommandError> {
    let family = if flow.src.is_ipv4() { "ipv4" } else { "ipv6" };
    let (src, dst) = (flow.src.to_string(), flow.dst.to_string());
    let protocol = match (flow.protocol, family) {
        (Protocol::Icmp, "ipv6") => "icmpv6",
        (protocol, _) => protocol.as_str(),
    };
    let mut args = vec!["-D", "-f", family, "-p", protocol, "-s", &src, "-d", &dst];
    let ports = flow
        .sport
        .zip(flow.dport)
        .map(|(s, d)| (s.to_string(), d.to_string()));
    if let Some((sport, dport)) = &ports {
        args.extend(["--sport", sport, "--dport", dport]);
    }
    tolerate_none(host.run("conntrack", &args, None))
}

/// Deletes every flow to or from the box's addresses.
pub fn flush_box(host: &HostNetns, link: &BoxLink) -> Result<(), CommandError> {
    let (ip4, ip6) = (link.ipv4.to_string(), link.ipv6.to_string());
    let deletes = [
        ("ipv4", &ip4, "-s"),
        ("ipv4", &ip4, "-d"),
        ("ipv6", &ip6, "-s"),
        ("ipv6", &ip6, "-d"),
    ]
    .map(|(family, ip, side)| {
        move || tolerate_none(host.run("conntrack", &["-D", "-f", family, side, ip], None))
    });
    concurrently(deletes).into_iter().collect()
}

/// Cuts the box flows that `policies` deny now; returns how many. An open
/// flow to an address learned from a name is kept when `domain_of` names
/// the domain that authorised it.
pub fn cut_denied(
    host: &HostNetns,
    boxes: &[(BoxLink, &EffectivePolicy)],
    domain_of: &dyn Fn(&str, IpAddr) -> Option<String>,
) -> Result<usize, CommandError> {
    if boxes.is_empty() {
        return Ok(0);
    }
    let mut cut = 0;
    for tracked in list(host)? {
        for (link, policy) in boxes {
            let Some(mut flow) = tracked.as_box_flow(link) else {
                continue;
            };
            if let Some(ip) = flow.ip.filter(|_| flow.direction == Direction::Egress) {
                flow.domain = domain_of(&link.id, ip);
            }
            if !evaluate(policy, &flow).allowed() {
                delete(host, &tracked)?;
                cut += 1;
            }
        }
    }
    Ok(cut)
}

/// `conntrack -D` exits 1 when nothing matched, which is fine here.
fn tolerate_none(result: Result<String, CommandError>) -> Result<(), CommandError> {
    match result {
        Err(CommandError::Failed { stderr, .. }) if stderr.contains("0 flow entries") => Ok(()),
        other => other.map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_lines_parse_into_flows() {
        let line = "tcp      6 431999 ESTABLISHED src=10.200.0.2 dst=198.51.100.10 sport=40000 dport=80 \
                    src=198.51.100.10 dst=192.0.2.1 sport=80 dport=40000 [ASSURED] mark=0 zone=2 use=1";
        let flow = TrackedFlow::parse(line).expect("parses");
        assert_eq!(flow.src.to_string(), "10.200.0.2");
        assert_eq!(flow.dst.to_string(), "198.51.100.10");
        assert_eq!((flow.sport, flow.dport), (Some(40000), Some(80)));
        let icmp = "icmp     1 29 src=10.200.0.2 dst=198.51.100.10 type=8 code=0 id=7 src=198.51.100.10 dst=192.0.2.1 type=0 code=0 id=7 mark=0 use=1";
        assert_eq!(
            TrackedFlow::parse(icmp).map(|f| f.protocol),
            Some(Protocol::Icmp)
        );
        assert_eq!(
            TrackedFlow::parse("sctp 132 10 src=1.1.1.1 dst=2.2.2.2"),
            None
        );
    }
}
