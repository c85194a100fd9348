//! Connection tracking over ctnetlink, from a socket the process owns:
//! cutting the flows a new policy denies, and every flow of a deleted box.
//!
//! Each call makes one dump of the namespace's entries, both families at
//! once. The kernel walks its whole (global) hash for any dump, filtered
//! or not, so one dump per call is what costs; entries are chosen here by
//! address, not by a kernel filter on the zone: the ruleset sets a box's
//! zone on the packets the box sends (`ct original zone set`), so flows
//! opened towards a box from outside are in the default zone.

mod message;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use boxfence_policy::{Direction, EffectivePolicy, Flow, Protocol, evaluate};
use nix::errno::Errno;

pub use self::message::Entry;
pub(crate) use self::message::{IPCTNL_MSG_CT_NEW, new_flow};
use crate::HostNetns;
use crate::netlink::Writer;
use crate::netlink::socket::{Family, Socket, SocketError};
use crate::nfnl::NfnlError;
use crate::ruleset::BoxLink;

/// IP protocol numbers of the flows policies police.
pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

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
    /// The flow of IP protocol `protocol` (by its number). Every protocol
    /// is a flow the policy judges: one that port rules cannot name (not
    /// TCP, UDP or ICMP) has no ports, as the ruleset's port sets never
    /// match it.
    pub(crate) fn new(
        protocol: u8,
        src: IpAddr,
        dst: IpAddr,
        sport: Option<u16>,
        dport: Option<u16>,
    ) -> Self {
        let protocol = match protocol {
            TCP => Protocol::Tcp,
            UDP => Protocol::Udp,
            ICMP | ICMPV6 => Protocol::Icmp,
            other => Protocol::Other(other),
        };
        let ports = matches!(protocol, Protocol::Tcp | Protocol::Udp);
        Self {
            protocol,
            src,
            dst,
            sport: sport.filter(|_| ports),
            dport: dport.filter(|_| ports),
        }
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
            port: self.dport,
            ip: Some(remote),
            domain,
            source: None,
        }
    }
}

/// A ctnetlink socket in the host's network namespace.
#[derive(Debug)]
pub struct Conntrack {
    socket: Socket,
}

impl Conntrack {
    /// Opens one in the calling thread's network namespace.
    pub fn open() -> Result<Self, NfnlError> {
        Ok(Self {
            socket: Socket::open(Family::Netfilter).map_err(NfnlError::Open)?,
        })
    }

    /// Opens one in `host` (the socket stays there).
    pub fn open_in(host: &HostNetns) -> Result<Self, NfnlError> {
        Ok(Self {
            socket: Socket::open_in(Family::Netfilter, host).map_err(NfnlError::Open)?,
        })
    }

    /// Every entry of the namespace, both families, in one dump.
    pub fn entries(&mut self) -> Result<Vec<Entry>, NfnlError> {
        let mut entries = Vec::new();
        self.socket
            .request(message::dump_request, |reply| {
                if reply.kind == IPCTNL_MSG_CT_NEW {
                    entries.extend(Entry::decode(reply.payload));
                }
                Ok(())
            })
            .map_err(NfnlError::of("conntrack dump"))?;
        Ok(entries)
    }

    /// Deletes `entries`; returns how many were still there (an entry
    /// already gone, or replaced by a new one with the same tuple, is
    /// left alone).
    pub fn delete(&mut self, entries: &[&Entry]) -> Result<usize, NfnlError> {
        let mut deleted = 0;
        let mut rest = entries;
        while !rest.is_empty() {
            // As many as one datagram holds, and few enough that their
            // acknowledgements fit the receive buffer.
            let mut len = 0;
            let count = rest
                .iter()
                .take(MAX_DELETES_PER_DATAGRAM)
                .take_while(|entry| {
                    len += message::delete_len(entry);
                    len <= self.socket.max_datagram()
                })
                .count()
                .max(1);
            let (chunk, later) = rest.split_at(count);
            rest = later;
            let seq = self
                .socket
                .reserve(u32::try_from(count).unwrap_or(u32::MAX));
            let mut writer = Writer::with_capacity(len);
            for (offset, entry) in (0..).zip(chunk) {
                message::put_delete(&mut writer, entry, seq.wrapping_add(offset));
            }
            let end = seq.wrapping_add(u32::try_from(count).unwrap_or(u32::MAX));
            let outcomes = self
                .socket
                .exchange(&writer.into_bytes(), seq..end, |_| Ok::<_, SocketError>(()))
                .map_err(NfnlError::of("conntrack delete"))?;
            for outcome in outcomes {
                match outcome {
                    Ok(()) => deleted += 1,
                    Err(Errno::ENOENT) => {}
                    Err(errno) => return Err(NfnlError::refused("conntrack delete", errno)),
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes every flow from or to the box's addresses, or in its zone;
    /// returns how many.
    pub fn flush_box(&mut self, link: &BoxLink) -> Result<usize, NfnlError> {
        let owned = |ip: IpAddr| ip == IpAddr::V4(link.ipv4) || ip == IpAddr::V6(link.ipv6);
        let entries = self.entries()?;
        let doomed: Vec<&Entry> = entries
            .iter()
            .filter(|e| owned(e.src) || owned(e.dst) || (e.zone != 0 && e.zone == link.zone))
            .collect();
        self.delete(&doomed)
    }

    /// Cuts the flows of `boxes` that their (new) policies deny, found in
    /// one walk of the kernel's table. An open flow to an address learned
    /// from a name is kept when `domain_of` names the domain that
    /// authorised it.
    pub fn cut_denied(
        &mut self,
        boxes: &[(BoxLink, &EffectivePolicy)],
        domain_of: &dyn Fn(&str, IpAddr) -> Option<String>,
    ) -> Result<Cut, NfnlError> {
        if boxes.is_empty() {
            return Ok(Cut::default());
        }
        let entries = self.entries()?;
        self.cut_among(boxes, entries, domain_of)
    }

    /// Like [`Conntrack::cut_denied`], but looks only at `candidates`
    /// (entries an earlier cut kept, when no flow can have started
    /// since): no walk of the table. An entry that ended meanwhile, or
    /// whose tuple a new flow took, is left alone (deletes name its id).
    pub fn cut_among(
        &mut self,
        boxes: &[(BoxLink, &EffectivePolicy)],
        candidates: Vec<Entry>,
        domain_of: &dyn Fn(&str, IpAddr) -> Option<String>,
    ) -> Result<Cut, NfnlError> {
        let owner: HashMap<IpAddr, usize> = (0..)
            .zip(boxes)
            .flat_map(|(i, (link, _))| [(IpAddr::V4(link.ipv4), i), (IpAddr::V6(link.ipv6), i)])
            .collect();
        let denied = |entry: &Entry, i: usize| {
            let tracked = entry.flow;
            let (link, policy) = &boxes[i];
            let Some(mut flow) = tracked.as_box_flow(link) else {
                return false;
            };
            if let Some(ip) = flow.ip.filter(|_| flow.direction == Direction::Egress) {
                flow.domain = domain_of(&link.id, ip);
            }
            !evaluate(policy, &flow).allowed()
        };
        let mut doomed = Vec::new();
        let mut kept: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        for entry in candidates {
            let owners: Vec<usize> = [entry.src, entry.dst]
                .iter()
                .filter_map(|ip| owner.get(ip).copied())
                .collect();
            if owners.iter().any(|&i| denied(&entry, i)) {
                doomed.push(entry);
            } else {
                for i in owners {
                    kept.entry(boxes[i].0.id.clone())
                        .or_default()
                        .push(entry.clone());
                }
            }
        }
        self.delete(&doomed.iter().collect::<Vec<_>>())?;
        Ok(Cut {
            cut: doomed.len(),
            kept,
        })
    }
}

/// What [`Conntrack::cut_denied`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cut {
    /// How many flows it cut.
    pub cut: usize,
    /// The flows it left, by box (a box without flows has no entry).
    pub kept: BTreeMap<String, Vec<Entry>>,
}

/// Deletes sent in one datagram: their acknowledgements (under 1 KiB of
/// receive buffer each) must fit the socket's buffer.
const MAX_DELETES_PER_DATAGRAM: usize = 256;

#[cfg(test)]
mod kernel_tests;
