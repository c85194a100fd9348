//! The host's prerequisites besides the kernel's features, read fresh
//! from /proc and over rtnetlink (libc's `getifaddrs`), never by running a
//! program: a daemon must not depend on the `ip` or `nft` its host ships.
//! Everything network-related is read in the calling thread's network
//! namespace (`/proc/thread-self/net`, `/proc/sys/net`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use boxfence_policy::{BinaryReport, CgroupVersion, Forwarding, UplinkReport};
use nix::net::if_::InterfaceFlags;

/// `RTF_UP`: the route is usable.
const RTF_UP: u32 = 0x1;
/// `RTF_REJECT`: an unreachable route (IPv6 lists one on `lo`).
const RTF_REJECT: u32 = 0x200;

/// What was read of the host, as the report takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Prerequisites {
    pub(super) kernel: String,
    pub(super) forwarding: Forwarding,
    pub(super) cgroup: CgroupVersion,
    pub(super) binaries: Vec<BinaryReport>,
    pub(super) uplinks: Option<Vec<UplinkReport>>,
}

impl Prerequisites {
    /// Reads everything now, with `uplinks` the interfaces box traffic
    /// leaves by, if any data plane sends it.
    pub(super) fn read(uplinks: Option<&[String]>) -> Self {
        Self {
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_default(),
            forwarding: Forwarding {
                ipv4: flag("/proc/sys/net/ipv4/ip_forward"),
                ipv6: flag("/proc/sys/net/ipv6/conf/all/forwarding"),
            },
            cgroup: cgroup_version(&read("/proc/self/mounts").unwrap_or_default()),
            binaries: binaries(),
            uplinks: uplinks.map(uplink_reports),
        }
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

fn flag(path: &str) -> Option<bool> {
    read(path).map(|value| value == "1")
}

/// The cgroup version from the mount table (`/proc/self/mounts`).
pub(super) fn cgroup_version(mounts: &str) -> CgroupVersion {
    let types: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect();
    match (types.contains(&"cgroup"), types.contains(&"cgroup2")) {
        (true, true) => CgroupVersion::Hybrid,
        (true, false) => CgroupVersion::V1,
        (false, true) => CgroupVersion::V2,
        (false, false) => CgroupVersion::Unknown,
    }
}

/// boxfence itself (required) and the
/// tools an operator may want beside it, which boxfence does not run.
fn binaries() -> Vec<BinaryReport> {
    let search = std::env::var("PATH").unwrap_or_default();
    let own = std::env::current_exe()
        .ok()
        .map(|path| path.display().to_string());
    let tool = |name: &str, purpose: &str| BinaryReport {
        name: name.into(),
        required: false,
        path: find_on(&search, name).map(|path| path.display().to_string()),
        purpose: purpose.into(),
    };
    vec![
        BinaryReport {
            name: "boxfence".into(),
            required: true,
            path: own,
            purpose: "itself".into(),
        },
        tool(
            "nft",
            "for operators (`nft list table inet boxfence`); boxfence does not run it, \
             `boxfence doctor`'s after-judgement checks do",
        ),
        tool(
            "ip",
            "for operators (`ip rule`, `ip netns`); boxfence does not run it, \
             `boxfence doctor`'s after-judgement checks do",
        ),
    ]
}

/// The executable file `name` in the first directory of `search` (a
/// `PATH` value) that has one.
pub(super) fn find_on(search: &str, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    search
        .split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(name))
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

fn uplink_reports(uplinks: &[String]) -> Vec<UplinkReport> {
    // One entry per address (and one per link): their flags are the link's.
    let mut links: BTreeMap<String, InterfaceFlags> = BTreeMap::new();
    for entry in nix::ifaddrs::getifaddrs().into_iter().flatten() {
        *links
            .entry(entry.interface_name)
            .or_insert(InterfaceFlags::empty()) |= entry.flags;
    }
    let defaults = default_route_interfaces();
    uplinks
        .iter()
        .map(|name| {
            let flags = links.get(name);
            UplinkReport {
                name: name.clone(),
                present: flags.is_some(),
                up: flags.is_some_and(|flags| {
                    flags.contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING)
                }),
                default_route: defaults.contains(name),
            }
        })
        .collect()
}

/// The interfaces of the host's usable default routes, IPv4 then IPv6,
/// each by its metric, lowest (the one the kernel takes) first.
fn default_route_interfaces() -> Vec<String> {
    let ipv4 = read("/proc/thread-self/net/route").unwrap_or_default();
    let ipv6 = read("/proc/thread-self/net/ipv6_route").unwrap_or_default();
    let mut names = ipv4_defaults(&ipv4);
    names.extend(ipv6_defaults(&ipv6));
    names
}

/// The interface of the default IPv4 route, if there is one.
pub fn default_route_interface() -> Option<String> {
    ipv4_defaults(&read("/proc/thread-self/net/route").unwrap_or_default())
        .into_iter()
        .next()
}

fn hex(field: &str) -> Option<u32> {
    u32::from_str_radix(field, 16).ok()
}

/// Default routes' interfaces in `/proc/net/route`'s text (columns:
/// Iface Destination Gateway Flags RefCnt Use Metric Mask ...).
pub(super) fn ipv4_defaults(table: &str) -> Vec<String> {
    let mut routes: Vec<(u32, String)> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [iface, destination, _, flags, _, _, metric, mask, ..] = fields[..] else {
                return None;
            };
            let usable = hex(flags)? & RTF_UP != 0;
            (usable && hex(destination)? == 0 && hex(mask)? == 0)
                .then(|| Some((metric.parse().ok()?, iface.to_owned())))?
        })
        .collect();
    routes.sort();
    routes.into_iter().map(|(_, name)| name).collect()
}

/// Default routes' interfaces in `/proc/net/ipv6_route`'s text (columns:
/// destination, its prefix length, source, its length, next hop, metric,
/// references, use, flags, interface).
pub(super) fn ipv6_defaults(table: &str) -> Vec<String> {
    let mut routes: Vec<(u32, String)> = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [destination, length, _, _, _, metric, _, _, flags, iface] = fields[..] else {
                return None;
            };
            let flags = hex(flags)?;
            let usable = flags & RTF_UP != 0 && flags & RTF_REJECT == 0;
            let default = destination.bytes().all(|b| b == b'0') && hex(length)? == 0;
            (usable && default).then(|| Some((hex(metric)?, iface.to_owned())))?
        })
        .collect();
    routes.sort();
    routes.into_iter().map(|(_, name)| name).collect()
}
