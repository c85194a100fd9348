//! Wiring the two lab namespaces together: one veth pair, addresses,
//! routes and sysctls. Nothing here touches the root namespace: the veth is
//! created inside the lab host with its peer placed straight into the
//! internet namespace.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::Command;

use crate::addresses::{
    GATEWAY_V4, GATEWAY_V6, INTERNET_LINK, LAB_HOST_V4, LAB_HOST_V6, SERVER_ADDRS, SERVER_LINK,
    UPLINK, UPLINK_PREFIX_V4, UPLINK_PREFIX_V6,
};
use crate::netns::NetNs;
use crate::{LabError, exec};

/// Sets `path` (relative to `/proc/sys/`) to `value`. Must run on a thread
/// inside the target namespace: `/proc/sys/net` shows the namespace of the
/// thread that opens it, so this changes that namespace only.
fn sysctl(path: &str, value: &str) -> Result<(), LabError> {
    let full = std::path::Path::new("/proc/sys").join(path);
    std::fs::write(&full, value).map_err(|source| LabError::Io {
        context: "cannot set sysctl",
        path: full,
        source,
    })
}

/// Settings both namespaces need before any link exists, so new links
/// inherit them.
fn common_sysctls() -> Result<(), LabError> {
    // Lab addresses are unique by construction; skipping duplicate address
    // detection makes IPv6 usable at once instead of after ~1 s.
    sysctl("net/ipv6/conf/default/accept_dad", "0")?;
    sysctl("net/ipv6/conf/all/accept_dad", "0")
}

/// Runs `ip -batch -` inside `ns`: one process for many changes.
fn ip_batch(ns: &NetNs, script: &str) -> Result<(), LabError> {
    let mut cmd = Command::new("ip");
    cmd.args(["-n", ns.name(), "-batch", "-"]);
    exec::run(&mut cmd, Some(script)).map(drop)
}

/// Builds the lab: the host's uplink to the internet, the server addresses,
/// default routes from the host, forwarding on in the host only.
pub(crate) fn build(host: &NetNs, internet: &NetNs) -> Result<(), LabError> {
    host.run_in(|| -> Result<(), LabError> {
        common_sysctls()?;
        // The lab host is a router for the daemon's boxes.
        sysctl("net/ipv4/ip_forward", "1")?;
        sysctl("net/ipv6/conf/all/forwarding", "1")
    })??;
    internet.run_in(|| -> Result<(), LabError> {
        common_sysctls()?;
        // The internet only answers; it never forwards, so a packet for an
        // address it does not own dies here.
        sysctl("net/ipv4/ip_forward", "0")?;
        sysctl("net/ipv6/conf/all/forwarding", "0")
    })??;

    let host_script = format!(
        "link set lo up\n\
         link add {UPLINK} type veth peer name {INTERNET_LINK} netns {peer}\n\
         link set {UPLINK} up\n\
         address add {LAB_HOST_V4}/{UPLINK_PREFIX_V4} dev {UPLINK}\n\
         address add {LAB_HOST_V6}/{UPLINK_PREFIX_V6} dev {UPLINK} nodad\n",
        peer = internet.name(),
    );
    // Links go up before they get addresses: an IPv6 address added to a
    // down link answered its first neighbour solicitation only after a
    // 1 s retry here, which cost every lab a second.
    ip_batch(host, &host_script)?;

    let mut internet_script = format!(
        "link set lo up\n\
         link set {INTERNET_LINK} up\n\
         address add {GATEWAY_V4}/{UPLINK_PREFIX_V4} dev {INTERNET_LINK}\n\
         address add {GATEWAY_V6}/{UPLINK_PREFIX_V6} dev {INTERNET_LINK} nodad\n"
    );
    for addr in SERVER_ADDRS {
        let (len, flags) = match addr {
            IpAddr::V4(_) => (32, ""),
            IpAddr::V6(_) => (128, " nodad"),
        };
        // Infallible: writing to a String.
        let _ = writeln!(
            internet_script,
            "address add {addr}/{len} dev {SERVER_LINK}{flags}"
        );
    }
    ip_batch(internet, &internet_script)?;

    // Routes last: a gateway must be on a link that is up.
    let routes = format!(
        "route add default via {GATEWAY_V4} dev {UPLINK}\n\
         route add ::/0 via {GATEWAY_V6} dev {UPLINK}\n"
    );
    ip_batch(host, &routes)
}

/// Routes `cidr` from the internet namespace to the lab host, so servers
/// (and tests in the internet namespace) can open connections to box
/// addresses for ingress tests.
pub(crate) fn route_to_host(internet: &NetNs, cidr: &str) -> Result<(), LabError> {
    let via = if cidr.contains(':') {
        IpAddr::V6(LAB_HOST_V6)
    } else {
        IpAddr::V4(LAB_HOST_V4)
    };
    ip_batch(
        internet,
        &format!("route replace {cidr} via {via} dev {INTERNET_LINK}\n"),
    )
}
