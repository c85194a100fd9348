//! Policy-routing rules (`ip rule`) as rtnetlink messages, encoded and
//! decoded by netlink-packet-route: only the selectors and actions the
//! fail-closed rules use.

use std::fmt;

use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};

/// The main routing table (`RT_TABLE_MAIN`).
const RT_TABLE_MAIN: u8 = 254;

/// An IP family of rules: each has its own list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum IpFamily {
    /// IPv4 rules (`ip -4 rule`).
    V4,
    /// IPv6 rules (`ip -6 rule`).
    V6,
}

impl IpFamily {
    fn netlink(self) -> AddressFamily {
        match self {
            Self::V4 => AddressFamily::Inet,
            Self::V6 => AddressFamily::Inet6,
        }
    }

    /// `ip`'s option for the family.
    pub(crate) fn flag(self) -> &'static str {
        match self {
            Self::V4 => "-4",
            Self::V6 => "-6",
        }
    }
}

/// What a rule does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `lookup main`: route them as usual.
    LookupMain,
    /// `unreachable`: refuse to route them.
    Unreachable,
}

/// One rule: its preference, what it matches and its action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) pref: u32,
    /// Source prefix (`from`).
    pub(crate) from: Option<IpNet>,
    /// Destination prefix (`to`).
    pub(crate) to: Option<IpNet>,
    /// Input interface (`iif`): `lo` for what the host itself sends.
    pub(crate) iif: Option<String>,
    /// `fwmark <mark>/<mask>`.
    pub(crate) fwmark: Option<(u32, u32)>,
    pub(crate) action: Action,
    /// The family whose list holds the rule.
    pub(crate) family: IpFamily,
}

impl Rule {
    /// The rule as `RTM_NEWRULE` and `RTM_DELRULE` carry it.
    pub(crate) fn message(&self) -> RuleMessage {
        let mut message = self.family.pref_message(self.pref);
        let header = &mut message.header;
        match self.action {
            Action::LookupMain => {
                header.action = RuleAction::ToTable;
                header.table = RT_TABLE_MAIN;
            }
            Action::Unreachable => header.action = RuleAction::Unreachable,
        }
        if let Some(from) = self.from {
            header.src_len = from.prefix_len();
            message
                .attributes
                .push(RuleAttribute::Source(from.network()));
        }
        if let Some(to) = self.to {
            message.header.dst_len = to.prefix_len();
            message
                .attributes
                .push(RuleAttribute::Destination(to.network()));
        }
        if let Some(iif) = &self.iif {
            message.attributes.push(RuleAttribute::Iifname(iif.clone()));
        }
        if let Some((mark, mask)) = self.fwmark {
            // Both, even a mark of 0: without the mask the kernel would
            // match every packet.
            message.attributes.push(RuleAttribute::FwMark(mark));
            message.attributes.push(RuleAttribute::FwMask(mask));
        }
        message
    }

    /// The rule an `RTM_NEWRULE` payload (a dump's answer) describes, if
    /// its action is one [`Rule`] can say; selectors it cannot say (and
    /// the kernel's defaults, such as the protocol) are left out.
    #[cfg(test)]
    pub(crate) fn decode(payload: &[u8]) -> Option<Self> {
        use netlink_packet_core::Parseable as _;
        use std::net::IpAddr;

        let message = RuleMessage::parse(payload).ok()?;
        let family = match message.header.family {
            AddressFamily::Inet => IpFamily::V4,
            AddressFamily::Inet6 => IpFamily::V6,
            _ => return None,
        };
        let mut table = u32::from(message.header.table);
        let mut rule = Self {
            pref: 0,
            from: None,
            to: None,
            iif: None,
            fwmark: None,
            action: Action::Unreachable,
            family,
        };
        let prefix = |addr: IpAddr, len: u8| IpNet::new(addr, len).ok();
        let (mut mark, mut mask) = (None, None);
        for attribute in message.attributes {
            match attribute {
                RuleAttribute::Priority(pref) => rule.pref = pref,
                RuleAttribute::Source(addr) => rule.from = prefix(addr, message.header.src_len),
                RuleAttribute::Destination(addr) => rule.to = prefix(addr, message.header.dst_len),
                RuleAttribute::Iifname(name) => rule.iif = Some(name),
                RuleAttribute::FwMark(value) => mark = Some(value),
                RuleAttribute::FwMask(value) => mask = Some(value),
                RuleAttribute::Table(id) => table = id,
                _ => {}
            }
        }
        // The kernel leaves out a mark of 0, and a mask of all bits.
        rule.fwmark = match (mark, mask) {
            (None, None) => None,
            (mark, mask) => Some((mark.unwrap_or(0), mask.unwrap_or(u32::MAX))),
        };
        rule.action = match message.header.action {
            RuleAction::ToTable if table == u32::from(RT_TABLE_MAIN) => Action::LookupMain,
            RuleAction::Unreachable => Action::Unreachable,
            _ => return None,
        };
        Some(rule)
    }
}

impl IpFamily {
    /// A rule message naming only `pref`: `RTM_DELRULE` removes the first
    /// rule of the family with that preference, whatever it is.
    pub(crate) fn pref_message(self, pref: u32) -> RuleMessage {
        let mut message = RuleMessage::default();
        message.header.family = self.netlink();
        message.attributes.push(RuleAttribute::Priority(pref));
        message
    }
}

/// As `ip` takes it after `ip -4 rule add`: `pref 10 from 10.0.0.0/8 iif
/// lo lookup main`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pref {}", self.pref)?;
        if let Some(from) = self.from {
            write!(f, " from {from}")?;
        }
        if let Some(to) = self.to {
            write!(f, " to {to}")?;
        }
        if let Some(iif) = &self.iif {
            write!(f, " iif {iif}")?;
        }
        if let Some((mark, mask)) = self.fwmark {
            write!(f, " fwmark {mark:#x}/{mask:#x}")?;
        }
        f.write_str(match self.action {
            Action::LookupMain => " lookup main",
            Action::Unreachable => " unreachable",
        })
    }
}
