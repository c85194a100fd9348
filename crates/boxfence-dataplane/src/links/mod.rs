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
use std::path::{Path, PathBuf};

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

/// The box side of a box's link: its name and hardware address. Boxes
/// boxfence makes have `eth0` with a random address; an attached
/// namespace gets the name its runtime asks for, and an address derived
/// from the box's, which the runtime is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoxSide {
    /// The interface name inside (none: `eth0`).
    pub ifname: Option<String>,
    /// Its hardware address (none: the kernel picks one).
    pub mac: Option<[u8; 6]>,
}

impl BoxSide {
    fn name(&self) -> &str {
        self.ifname.as_deref().unwrap_or("eth0")
    }
}

/// A locally administered unicast hardware address for the box with
/// IPv4 address `ipv4`: unique on the host, as the address is.
pub fn box_mac(ipv4: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ipv4.octets();
    [0x02, 0xbf, a, b, c, d]
}

/// Whether a failed link setup unbinds the box's namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// It was bound for this setup: unbind it.
    Undo,
    /// It was bound before (a repair): it stays.
    Keep,
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
        self.bind_and_link(host, link, made, &BoxSide::default())
    }

    /// Attaches the existing network namespace at `source` as the box's:
    /// binds it where the box's namespace would be (so boxfence holds it
    /// until the box is deleted) and makes the link into it with the box
    /// side named and addressed as `side` says. Nothing of it is left
    /// behind on failure; the namespace itself is never removed.
    pub fn attach(
        &self,
        host: &HostNetns,
        link: &BoxLink,
        side: &BoxSide,
        source: &Path,
    ) -> Result<(), LinkError> {
        let namespace = File::open(source).map_err(|error| LinkError::Netns {
            netns: self.netns(&link.id),
            source: NetnsError::Call {
                op: format!("open {}", source.display()),
                source: error,
            },
        })?;
        self.bind_and_link(host, link, Some(namespace), side)
    }

    /// Binds the box's namespace (`made`, or a new one) and makes its link.
    fn bind_and_link(
        &self,
        host: &HostNetns,
        link: &BoxLink,
        made: Option<File>,
        side: &BoxSide,
    ) -> Result<(), LinkError> {
        host.in_netns(|| {
            let name = self.netns(&link.id);
            // The box side's socket is opened in the namespace.
            let (netns, inside) =
                netns::add(&name, made, RtSocket::open).map_err(|source| LinkError::Netns {
                    netns: name.clone(),
                    source,
                })?;
            self.veth_into(link, side, &netns, inside, Bound::Undo)
        })?
    }

    /// Makes the veth pair into the box's namespace, open as `netns` (an
    /// rtnetlink socket in it is `inside`), and sets both sides up; on
    /// failure removes the link and, as `bound` says, unbinds the
    /// namespace.
    fn veth_into(
        &self,
        link: &BoxLink,
        side: &BoxSide,
        netns: &std::fs::File,
        inside: Result<RtSocket, RtnlError>,
        bound: Bound,
    ) -> Result<(), LinkError> {
        let name = self.netns(&link.id);
        let rtnl = |source| LinkError::Rtnl {
            ifname: link.ifname.clone(),
            source,
        };
        let linked = inside.and_then(|inside| {
            let mut outside = RtSocket::open()?;
            outside.transact(|r| {
                r.add_veth(
                    &link.ifname,
                    (side.name(), side.mac),
                    netns.as_raw_fd(),
                    &name,
                );
            })?;
            Ok((outside, inside))
        });
        let (mut outside, mut inside) = match linked {
            Ok(sockets) => sockets,
            // Unanswered, the link may exist: it would be ours.
            Err(error) if error.unanswered() => {
                self.undo(link, bound, true);
                return Err(rtnl(error));
            }
            // Refused (the name may be another link's), or never sent.
            Err(error) => {
                self.undo(link, bound, false);
                return Err(rtnl(error));
            }
        };
        let result = self.configure(link, side.name(), &mut outside, &mut inside);
        if result.is_err() {
            self.undo(link, bound, true);
        }
        result.map_err(rtnl)
    }

    /// Removes what a failed [`LinkConfig::veth_into`] made: the link when
    /// it may be ours, the namespace's binding unless it is kept.
    fn undo(&self, link: &BoxLink, bound: Bound, linked: bool) {
        match (bound, linked) {
            (Bound::Undo, true) => {
                let _ = self.delete_here(link);
            }
            (Bound::Undo, false) => {
                let _ = netns::remove(&self.netns(&link.id));
            }
            (Bound::Keep, true) => {
                let _ = RtSocket::open().and_then(|mut s| s.transact(|r| r.del_link(&link.ifname)));
            }
            (Bound::Keep, false) => {}
        }
    }

    /// Sets up both sides of the veth pair: `outside` is a socket in the
    /// host's namespace, `inside` one in the box's.
    fn configure(
        &self,
        link: &BoxLink,
        eth0: &str,
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
        let eth0 = Dev::new(inside.ifindex(eth0)?, eth0);
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

    /// Makes an attached box's link anew when it is gone, into the
    /// namespace boxfence still holds; true when it did. The namespace
    /// itself cannot be made anew: when its binding is gone, so is the box.
    pub fn repair_attached(
        &self,
        host: &HostNetns,
        link: &BoxLink,
        side: &BoxSide,
    ) -> Result<bool, LinkError> {
        let path = self.netns_path(&link.id);
        let netns_error = |source| LinkError::Netns {
            netns: self.netns(&link.id),
            source,
        };
        host.in_netns(|| {
            if RtSocket::open()
                .and_then(|mut s| s.ifindex(&link.ifname))
                .is_ok()
            {
                return Ok(false);
            }
            let netns = std::fs::File::open(&path).map_err(|source| {
                netns_error(NetnsError::Call {
                    op: format!("open {}", path.display()),
                    source,
                })
            })?;
            let inside = HostNetns::at(&path)
                .in_netns(RtSocket::open)
                .map_err(|error| {
                    netns_error(NetnsError::Call {
                        op: format!("enter {}", path.display()),
                        source: std::io::Error::other(error.to_string()),
                    })
                })?;
            // What is left of the box side (its peer went with the host
            // side) is gone; the namespace stays bound.
            self.veth_into(link, side, &netns, inside, Bound::Keep)
                .map(|()| true)
        })?
    }

    /// What is wrong with the box's link, if anything: its host side
    /// missing, its namespace unbound, the box side missing there or
    /// without the box's addresses. Reads only.
    pub fn problems(&self, host: &HostNetns, link: &BoxLink, side: &BoxSide) -> Vec<String> {
        let mut problems = Vec::new();
        let outside = host.in_netns(|| RtSocket::open().and_then(|mut s| s.ifindex(&link.ifname)));
        if !matches!(outside, Ok(Ok(_))) {
            problems.push(format!("host-side link {} is missing", link.ifname));
        }
        let path = self.netns_path(&link.id);
        if !self.exists(&link.id) {
            problems.push(format!("network namespace {} is not bound", path.display()));
            return problems;
        }
        let inside = HostNetns::at(&path).in_netns(|| {
            let mut socket = RtSocket::open()?;
            let index = socket.ifindex(side.name())?;
            let addresses = socket.addresses()?;
            Ok::<_, RtnlError>((index, addresses))
        });
        match inside {
            Ok(Ok((index, addresses))) => {
                for ip in [IpAddr::V4(link.ipv4), IpAddr::V6(link.ipv6)] {
                    if !addresses.contains(&(index, ip)) {
                        problems.push(format!("{} lacks the address {ip}", side.name()));
                    }
                }
            }
            Ok(Err(error)) => problems.push(format!("{} in the namespace: {error}", side.name())),
            Err(error) => problems.push(format!("entering {}: {error}", path.display())),
        }
        problems
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
