//! Box links: a network namespace per box, a veth pair into it, the box's
//! addresses and routes. The host side is `<ifname_prefix><id>`; inside,
//! the box sees `eth0` with one IPv4 and one IPv6 address and default
//! routes via the host side.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::command::{CommandError, HostNetns};
use crate::ruleset::BoxLink;

/// Where box namespaces live and how their links are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Box namespaces are `/run/netns/<netns_prefix><id>`.
    pub netns_prefix: String,
    /// Host-side interfaces are `<ifname_prefix><id>`.
    pub ifname_prefix: String,
    /// The host side's IPv4 address on every box link.
    pub gateway4: Ipv4Addr,
    /// The host side's IPv6 address on every box link.
    pub gateway6: Ipv6Addr,
}

/// Linux interface names hold at most 15 bytes.
const MAX_IFNAME: usize = 15;

/// Why a box link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The id cannot name an interface.
    #[error("machine id `{0}` cannot name an interface: use at most {1} characters of a-z, 0-9")]
    BadId(String, usize),
    /// A tool failed.
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl LinkConfig {
    /// The host-side interface name of a box.
    pub fn ifname(&self, id: &str) -> Result<String, LinkError> {
        let room = MAX_IFNAME.saturating_sub(self.ifname_prefix.len());
        let valid = !id.is_empty()
            && id.len() <= room
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if valid {
            Ok(format!("{}{id}", self.ifname_prefix))
        } else {
            Err(LinkError::BadId(id.to_owned(), room))
        }
    }

    /// The namespace name of a box.
    pub fn netns(&self, id: &str) -> String {
        format!("{}{id}", self.netns_prefix)
    }

    /// The path its namespace is bound at.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.netns(id)))
    }

    /// Creates the box's namespace and link. Nothing of it is left behind
    /// on failure.
    pub fn create(&self, host: &HostNetns, link: &BoxLink) -> Result<(), LinkError> {
        let netns = self.netns(&link.id);
        host.run("ip", &["netns", "add", &netns], None)?;
        let result = self.configure(host, link, &netns);
        if result.is_err() {
            let _ = self.delete(host, link);
        }
        result
    }

    fn configure(&self, host: &HostNetns, link: &BoxLink, netns: &str) -> Result<(), LinkError> {
        let (gw4, gw6) = (self.gateway4, self.gateway6);
        let (ip4, ip6, ifname) = (link.ipv4, link.ipv6, &link.ifname);
        let host_side = format!(
            "link add {ifname} type veth peer name eth0 netns {netns}\n\
             addr add {gw4}/32 dev {ifname}\n\
             addr add {gw6}/128 dev {ifname} nodad\n\
             link set {ifname} up\n\
             route add {ip4}/32 dev {ifname}\n\
             route add {ip6}/128 dev {ifname}\n"
        );
        host.run("ip", &["-b", "-"], Some(&host_side))?;
        // Box-side links have no link-local address: every packet of the
        // box carries its one address, which anti-spoofing checks.
        let box_side = format!(
            "link set lo up\n\
             link set eth0 addrgenmode none\n\
             link set eth0 up\n\
             addr add {ip4}/32 dev eth0\n\
             addr add {ip6}/128 dev eth0 nodad\n\
             route add {gw4}/32 dev eth0\n\
             route add default via {gw4} dev eth0 src {ip4}\n\
             route add {gw6}/128 dev eth0\n\
             route add default via {gw6} dev eth0 src {ip6}\n"
        );
        host.run("ip", &["-n", netns, "-b", "-"], Some(&box_side))?;
        // Reverse-path checks must see the mark the ruleset sets, or the
        // fail-closed routing rules would reject every box packet.
        host.sysctl(&format!("net/ipv4/conf/{ifname}/src_valid_mark"), "1")?;
        Ok(())
    }

    /// Removes the box's link and namespace; what is already gone is fine.
    /// Every step is tried; the first error is returned.
    pub fn delete(&self, host: &HostNetns, link: &BoxLink) -> Result<(), LinkError> {
        let netns = self.netns(&link.id);
        let steps = [
            host.run("ip", &["link", "del", &link.ifname], None),
            host.run("ip", &["netns", "del", &netns], None),
        ];
        steps
            .into_iter()
            .filter_map(Result::err)
            .find(|error| !is_gone(error))
            .map_or(Ok(()), |error| Err(error.into()))
    }

    /// True when the box's namespace exists.
    pub fn exists(&self, id: &str) -> bool {
        self.netns_path(id).exists()
    }
}

/// An `ip` error that says the object is already gone.
fn is_gone(error: &CommandError) -> bool {
    match error {
        CommandError::Failed { stderr, .. } => {
            stderr.contains("Cannot find device") || stderr.contains("No such file")
        }
        CommandError::Spawn { .. } => false,
    }
}
