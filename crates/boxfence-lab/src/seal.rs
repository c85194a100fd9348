//! Proof that a lab is sealed: its only links join its own namespaces (the
//! lab host, the internet, the daemon's boxes) to each other, and nothing
//! in the root namespace can be reached from the lab host. The check reads the root namespace but sends nothing there:
//! its connection attempts start inside the lab and cannot leave it.

use std::collections::{BTreeSet, HashMap};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::addresses::{INTERNET_LINK, UPLINK, lab_owned};
use crate::netns::{self, NetNs};
use crate::{LabError, exec};

/// Patience per connection attempt: a reachable address would answer
/// (accept or reset) well within it.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// Port to try when the root namespace listens on none of that family.
const FALLBACK_PORT: u16 = 22;

/// One interface, as `ip -j -d link` shows it.
#[derive(Debug)]
struct Link {
    name: String,
    kind: Option<String>,
    ifindex: u64,
    peer_ifindex: Option<u64>,
    peer_netnsid: Option<u64>,
}

/// Checks that the lab's links join only its own namespaces: `host` and
/// `internet` by the uplink veth, `host` and each namespace named
/// `box_prefix…` by veths. Then checks that no root-namespace address is
/// reachable from `host`. Returns the root addresses it tried.
pub(crate) fn check(
    host: &NetNs,
    internet: &NetNs,
    box_prefix: &str,
) -> Result<Vec<SocketAddr>, LabError> {
    let host_links = links(host)?;
    let internet_links = links(internet)?;
    let host_peers = peer_names(host)?;
    expect_names(internet, &internet_links, &["lo", INTERNET_LINK])?;
    let uplink = find(host, &host_links, UPLINK)?;
    let inet = find(internet, &internet_links, INTERNET_LINK)?;
    expect_veth_into(host, uplink, &host_peers, internet.name(), |n| {
        n == internet.name()
    })?;
    expect_veth_into(internet, inet, &peer_names(internet)?, host.name(), |n| {
        n == host.name()
    })?;
    if uplink.peer_ifindex != Some(inet.ifindex) || inet.peer_ifindex != Some(uplink.ifindex) {
        return Err(LabError::NotSealed(format!(
            "{UPLINK} in {} and {INTERNET_LINK} in {} are not each other's peer",
            host.name(),
            internet.name()
        )));
    }
    // The daemon's boxes: every other host link is a veth into a box, and
    // a box has no link but veths into the host.
    for link in host_links
        .iter()
        .filter(|l| l.name != "lo" && l.name != UPLINK)
    {
        expect_veth_into(host, link, &host_peers, &format!("{box_prefix}…"), |n| {
            n.starts_with(box_prefix)
        })?;
    }
    for pin in netns::pinned_with_prefix(box_prefix)? {
        let name = pin.file_name().map(|n| n.to_string_lossy().into_owned());
        let boxed = NetNs::named(&name.unwrap_or_default());
        let box_links = links(&boxed)?;
        let peers = peer_names(&boxed)?;
        for link in box_links.iter().filter(|l| l.name != "lo") {
            expect_veth_into(&boxed, link, &peers, host.name(), |n| n == host.name())?;
        }
    }

    let targets = root_targets()?;
    let reached: Vec<String> = host.run_in(|| {
        targets
            .iter()
            .filter_map(
                |&addr| match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                    Ok(_) => Some(format!("{addr} accepted a connection")),
                    // A reset proves the packet reached a stack that owns the
                    // address: the lab host owns none of these.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        Some(format!("{addr} answered with a reset"))
                    }
                    Err(_) => None,
                },
            )
            .collect()
    })?;
    if reached.is_empty() {
        Ok(targets)
    } else {
        Err(LabError::NotSealed(format!(
            "from {}, root-namespace addresses are reachable: {}",
            host.name(),
            reached.join("; ")
        )))
    }
}

fn links(ns: &NetNs) -> Result<Vec<Link>, LabError> {
    let mut cmd = ns.command(["ip", "-j", "-d", "link", "show"]);
    let value = exec::json(&mut cmd)?;
    let bad = |detail: &str| LabError::Parse {
        what: exec::describe(&cmd),
        detail: detail.to_owned(),
    };
    let list = value.as_array().ok_or_else(|| bad("not a list"))?;
    list.iter()
        .map(|l| {
            Ok(Link {
                name: l["ifname"]
                    .as_str()
                    .ok_or_else(|| bad("link without ifname"))?
                    .to_owned(),
                kind: l["linkinfo"]["info_kind"].as_str().map(str::to_owned),
                ifindex: l["ifindex"]
                    .as_u64()
                    .ok_or_else(|| bad("link without ifindex"))?,
                peer_ifindex: l["link_index"].as_u64(),
                peer_netnsid: l["link_netnsid"].as_u64(),
            })
        })
        .collect()
}

fn expect_names(ns: &NetNs, links: &[Link], expected: &[&str]) -> Result<(), LabError> {
    let got: BTreeSet<&str> = links.iter().map(|l| l.name.as_str()).collect();
    let want: BTreeSet<&str> = expected.iter().copied().collect();
    if got == want {
        Ok(())
    } else {
        Err(LabError::NotSealed(format!(
            "{} has interfaces {got:?}, expected exactly {want:?}",
            ns.name()
        )))
    }
}

fn find<'a>(ns: &NetNs, links: &'a [Link], name: &str) -> Result<&'a Link, LabError> {
    links
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| LabError::NotSealed(format!("{} has no interface {name}", ns.name())))
}

/// The names of the namespaces `ns` knows by netns id (`ip netns list-id`
/// run inside it), for the pinned ones. Call it after [`links`] for the
/// same namespace: the kernel gives a peer namespace its id lazily, when a
/// link dump first shows it, and `list-id` alone does not.
fn peer_names(ns: &NetNs) -> Result<HashMap<u64, String>, LabError> {
    let mut cmd = ns.command(["ip", "-j", "netns", "list-id"]);
    let ids = exec::json(&mut cmd)?;
    Ok(ids
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some((e["nsid"].as_u64()?, e["name"].as_str()?.to_owned())))
        .collect())
}

/// Checks that `link` is a veth whose peer lives in a namespace `accept`s.
fn expect_veth_into(
    ns: &NetNs,
    link: &Link,
    peers: &HashMap<u64, String>,
    wanted: &str,
    accept: impl Fn(&str) -> bool,
) -> Result<(), LabError> {
    let peer = link.peer_netnsid.and_then(|id| peers.get(&id));
    if link.kind.as_deref() == Some("veth") && peer.is_some_and(|p| accept(p)) {
        return Ok(());
    }
    Err(LabError::NotSealed(format!(
        "{} has interface {} (kind {}, peer in namespace {}), expected only veths into {wanted}",
        ns.name(),
        link.name,
        link.kind.as_deref().unwrap_or("none"),
        peer.map_or("unknown or the same", String::as_str),
    )))
}

/// Where to knock: each global address of the root namespace (this
/// process's own, read through its main thread, whatever thread calls),
/// on a port it listens on.
fn root_targets() -> Result<Vec<SocketAddr>, LabError> {
    let root = format!("/proc/{}/ns/net", std::process::id());
    let mut cmd = exec::nsenter(root.as_ref(), ["ip", "-j", "addr", "show"]);
    let value = exec::json(&mut cmd)?;
    let v4_port = listening_port("tcp").unwrap_or(FALLBACK_PORT);
    let v6_port = listening_port("tcp6").unwrap_or(FALLBACK_PORT);
    let addrs = value
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|link| link["addr_info"].as_array().into_iter().flatten())
        .filter_map(|a| a["local"].as_str()?.parse::<IpAddr>().ok());
    let mut targets: Vec<SocketAddr> = addrs
        .filter(|ip| !ip.is_loopback() && !ip.is_multicast() && !ip.is_unspecified())
        // Link-local IPv6 needs a scope and names a link, not a host.
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
        .filter(|&ip| !lab_owned(ip))
        .map(|ip| match ip {
            IpAddr::V4(_) => SocketAddr::new(ip, v4_port),
            IpAddr::V6(_) => SocketAddr::new(ip, v6_port),
        })
        .collect();
    targets.sort();
    targets.dedup();
    Ok(targets)
}

/// The lowest TCP port the root namespace listens on, from
/// `/proc/<pid>/net/<table>` (the main thread's namespace): a port where a
/// leak would be answered with an accept, not only a reset.
fn listening_port(table: &str) -> Option<u16> {
    let path = format!("/proc/{}/net/{table}", std::process::id());
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            // 0A is TCP_LISTEN.
            (state == "0A").then_some(())?;
            u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()
        })
        .min()
}
