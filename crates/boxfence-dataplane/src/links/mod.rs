//! Box links: a network namespace per box, a veth pair into it, the box's
//! addresses and routes. The host side is `<ifname_prefix><id>`; inside,
//! the box sees `eth0` with one IPv4 and one IPv6 address and default
//! routes via the host side.
//!
//! All of it is made in-process (a namespace bound like `ip netns add`
//! binds it, rtnetlink requests that do what `ip -b` batches did): an `ip`
//! process dumps every link of its namespace when it starts, so with
//! 1,000 boxes each one cost about 8 ms.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::command::{CommandError, HostNetns};
use crate::netns::{self, NetnsError};
use crate::rtnetlink::{Dev, RtSocket, RtnlError};
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

/// Why a box link could not be set up or removed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The id cannot name an interface.
    #[error("machine id `{0}` cannot name an interface: use at most {1} characters of a-z, 0-9")]
    BadId(String, usize),
    /// The host's network namespace could not be entered.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The box's namespace could not be made or removed.
    #[error("network namespace {netns}: {source}")]
    Netns {
        /// Its name.
        netns: String,
        /// What failed.
        source: NetnsError,
    },
    /// The kernel refused a step of the link's setup or removal.
    #[error("box link {ifname}: {source}")]
    Rtnl {
        /// The host-side interface.
        ifname: String,
        /// The step and the kernel's error.
        source: RtnlError,
    },
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
        netns::path(&self.netns(id))
    }

    /// Creates the box's namespace and link. Nothing of it is left behind
    /// on failure; a namespace or host-side link of the same name that was
    /// already there is left alone.
    pub fn create(&self, host: &HostNetns, link: &BoxLink) -> Result<(), LinkError> {
        self.create_in(host, link, None)
    }

    /// [`LinkConfig::create`] in `made`, a new and empty network
    /// namespace the caller made (a box's namespace owned by its user
    /// namespace), or in a new one.
    pub fn create_in(
        &self,
        host: &HostNetns,
        link: &BoxLink,
        made: Option<File>,
    ) -> Result<(), LinkError> {
        host.in_netns(|| {
            let name = self.netns(&link.id);
            // The box side's socket is opened in the new namespace.
            let (netns, inside) =
                netns::add(&name, made, RtSocket::open).map_err(|source| LinkError::Netns {
                    netns: name.clone(),
                    source,
                })?;
            let rtnl = |source| LinkError::Rtnl {
                ifname: link.ifname.clone(),
                source,
            };
            let linked = inside.and_then(|inside| {
                let mut outside = RtSocket::open()?;
                outside.transact(|r| {
                    r.add_veth(&link.ifname, "eth0", netns.as_raw_fd(), &name);
                })?;
                Ok((outside, inside))
            });
            let (mut outside, mut inside) = match linked {
                Ok(sockets) => sockets,
                // Unanswered, the link may exist: it would be ours.
                Err(error) if error.unanswered() => {
                    let _ = self.delete_here(link);
                    return Err(rtnl(error));
                }
                // Refused (the name may be another link's), or never sent.
                Err(error) => {
                    let _ = netns::remove(&name);
                    return Err(rtnl(error));
                }
            };
            let result = self.configure(link, &mut outside, &mut inside);
            if result.is_err() {
                let _ = self.delete_here(link);
            }
            result.map_err(rtnl)
        })?
    }

    /// Sets up both sides of the veth pair: `outside` is a socket in the
    /// host's namespace, `inside` one in the box's.
    fn configure(
        &self,
        link: &BoxLink,
        outside: &mut RtSocket,
        inside: &mut RtSocket,
    ) -> Result<(), RtnlError> {
        let (gw4, gw6) = (IpAddr::V4(self.gateway4), IpAddr::V6(self.gateway6));
        let (ip4, ip6) = (IpAddr::V4(link.ipv4), IpAddr::V6(link.ipv6));
        let ifname = link.ifname.as_str();
        let host = Dev::new(outside.ifindex(ifname)?, ifname);
        outside.transact(|r| {
            r.add_address(host, gw4, false);
            r.add_address(host, gw6, true);
            r.set_up(host);
            r.add_host_route(ip4, host);
            r.add_host_route(ip6, host);
            // Reverse-path checks must see the mark the ruleset sets, or
            // the fail-closed routing rules would reject every box packet.
            r.set_src_valid_mark(host);
        })?;
        let eth0 = Dev::new(inside.ifindex("eth0")?, "eth0");
        inside.transact(|r| {
            r.set_up(Dev::named("lo"));
            // Box-side links have no link-local address: every packet of
            // the box carries its one address, which anti-spoofing checks.
            // Set before the link goes up, which would make one.
            r.set_addrgenmode_none(eth0);
            r.set_up(eth0);
            r.add_address(eth0, ip4, false);
            r.add_address(eth0, ip6, true);
            r.add_host_route(gw4, eth0);
            r.add_default_route(gw4, eth0, ip4);
            r.add_host_route(gw6, eth0);
            r.add_default_route(gw6, eth0, ip6);
        })
    }

    /// Removes the box's link and namespace; what is already gone is fine.
    /// Every step is tried; the first error is returned.
    pub fn delete(&self, host: &HostNetns, link: &BoxLink) -> Result<(), LinkError> {
        host.in_netns(|| self.delete_here(link))?
    }

    /// [`LinkConfig::delete`] from a thread in the host's namespace.
    fn delete_here(&self, link: &BoxLink) -> Result<(), LinkError> {
        let ifname = &link.ifname;
        // The peer goes with the host side. No name: no link to delete.
        let unlinked = if ifname.is_empty() {
            Ok(())
        } else {
            RtSocket::open()
                .and_then(|mut socket| socket.transact(|r| r.del_link(ifname)))
                .or_else(|error| match error.errno() {
                    Some(Errno::ENODEV) => Ok(()),
                    _ => Err(error),
                })
                .map_err(|source| LinkError::Rtnl {
                    ifname: ifname.clone(),
                    source,
                })
        };
        let name = self.netns(&link.id);
        let unbound = netns::remove(&name).map_err(|source| LinkError::Netns {
            netns: name,
            source,
        });
        unlinked.and(unbound)
    }

    /// True when the box's namespace exists.
    pub fn exists(&self, id: &str) -> bool {
        self.netns_path(id).exists()
    }

    /// Makes the box's namespace and link anew when either is gone (what
    /// is left of them is removed first), in the namespace `make` gives
    /// (see [`LinkConfig::create_in`]); true when it did.
    pub fn repair(
        &self,
        host: &HostNetns,
        link: &BoxLink,
        make: impl FnOnce() -> std::io::Result<Option<File>>,
    ) -> Result<bool, LinkError> {
        let device =
            host.in_netns(|| RtSocket::open().and_then(|mut s| s.ifindex(&link.ifname)))?;
        if device.is_ok() && self.exists(&link.id) {
            return Ok(false);
        }
        let _ = self.delete(host, link);
        let made = make().map_err(|source| LinkError::Netns {
            netns: self.netns(&link.id),
            source: NetnsError::Call {
                op: "make the box's namespace".into(),
                source,
            },
        })?;
        self.create_in(host, link, made).map(|()| true)
    }
}

#[cfg(test)]
mod kernel_tests;
