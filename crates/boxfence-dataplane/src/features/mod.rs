//! What the running kernel can do, found by trying it (distributions
//! backport, so version numbers lie), and which path each part of the
//! data plane takes because of it.
//!
//! [`KernelFeatures::probe`] tries each feature in a throwaway network
//! namespace; [`KernelFeatures::paths`] turns the findings into plain
//! decisions ([`Paths`]), testable without root. A feature the data plane
//! cannot work without makes [`KernelFeatures::require`] fail with the
//! feature, why it is needed and the oldest mainline kernel that has it.

mod probe;

use std::collections::BTreeMap;
use std::fmt;

use crate::nft::QueueBy;
use crate::nft_netlink::{RefreshMode, RemovalMode};

pub use probe::ProbeError;

/// A kernel feature the data plane uses or can do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Feature {
    /// nf_tables chains of an `inet` table on a device's ingress hook,
    /// setting a conntrack zone and a mark there.
    InetIngress,
    /// ctnetlink: listing and deleting conntrack entries.
    Ctnetlink,
    /// nfnetlink_log: packets logged to a netlink group.
    Nflog,
    /// An ingress chain may name a device that does not exist yet.
    HookBeforeDevice,
    /// `NFT_MSG_DESTROYSETELEM`: deleting set elements that may be gone.
    DestroyElement,
    /// Re-adding a set element replaces its timeout and expiry.
    ElementTimeoutUpdate,
    /// `nf_flow_table`: a software flowtable in an `inet` table, fed by
    /// `flow add` from the forward hook, whose devices are added and
    /// removed in place.
    Flowtable,
    /// nfnetlink_queue: a reader binds a queue and answers its packets.
    Nfqueue,
    /// nf_tables' own `queue` expression (`nft_queue`).
    QueueExpression,
    /// The xtables `NFQUEUE` target through `nft_compat`: how a rule
    /// queues where `nft_queue` is left out of the build.
    QueueTarget,
}

impl Feature {
    /// Every feature, in report order.
    pub const ALL: [Self; 10] = [
        Self::InetIngress,
        Self::Ctnetlink,
        Self::Nflog,
        Self::HookBeforeDevice,
        Self::DestroyElement,
        Self::ElementTimeoutUpdate,
        Self::Flowtable,
        Self::Nfqueue,
        Self::QueueExpression,
        Self::QueueTarget,
    ];

    /// Its name in logs, reports and configuration (`[kernel] avoid`).
    pub fn name(self) -> &'static str {
        match self {
            Self::InetIngress => "inet_ingress",
            Self::Ctnetlink => "ctnetlink",
            Self::Nflog => "nflog",
            Self::HookBeforeDevice => "hook_before_device",
            Self::DestroyElement => "destroy_element",
            Self::ElementTimeoutUpdate => "element_timeout_update",
            Self::Flowtable => "flowtable",
            Self::Nfqueue => "nfqueue",
            Self::QueueExpression => "queue_expression",
            Self::QueueTarget => "queue_target",
        }
    }

    /// The feature called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// What boxfence does with it.
    pub fn purpose(self) -> &'static str {
        match self {
            Self::InetIngress => {
                "each box's chain on its device's ingress proves the source address and sets the box's conntrack zone before conntrack (anti-spoofing)"
            }
            Self::Ctnetlink => "open flows a policy change revokes are cut",
            Self::Nflog => "every denied packet is reported with its reason",
            Self::HookBeforeDevice => {
                "a box's link and its chain are made side by side (else the link first)"
            }
            Self::DestroyElement => {
                "learned addresses are removed in one message per set (else one per address)"
            }
            Self::ElementTimeoutUpdate => {
                "a learned address's timeout is refreshed in place (else deleted and re-added in the same transaction)"
            }
            Self::Flowtable => {
                "established box flows are forwarded by a software flowtable, their packets skipping the hooks (else every packet passes them)"
            }
            Self::Nfqueue => {
                "name checks: the first data of a flow a domain authorised goes to the checker, which compares its TLS SNI or HTTP Host with the policy (needed while [network] name_check is on; name_check = \"off\" does without, and lets any name through on an authorised address)"
            }
            Self::QueueExpression => {
                "name checks: rules queue packets with nf_tables' own expression (else with the xtables target, queue_target; one of the two is needed while [network] name_check is on)"
            }
            Self::QueueTarget => {
                "name checks: rules queue packets with the xtables NFQUEUE target where nf_tables' own queue expression is missing"
            }
        }
    }

    /// The oldest mainline kernel that has it.
    pub fn since(self) -> &'static str {
        match self {
            Self::InetIngress => "5.10",
            Self::Ctnetlink | Self::Nflog => "2.6.14",
            Self::HookBeforeDevice => "6.16",
            Self::DestroyElement => "6.3",
            Self::ElementTimeoutUpdate => "6.12",
            // Flowtables came in 4.16; adding and removing devices of an
            // existing one, which boxes coming and going need, in 5.8.
            Self::Flowtable => "5.8",
            Self::Nfqueue => "2.6.14",
            Self::QueueExpression => "3.14",
            // nft_compat; the NFQUEUE target's revision 3 is older.
            Self::QueueTarget => "3.13",
        }
    }

    /// Whether mainline Linux of `release`'s version (`uname -r`, e.g.
    /// `6.1.0-50-amd64`) has it: what a kernel without backports offers,
    /// for the kernel matrix's expectations. The probe, not this, decides.
    pub fn mainline_has(self, release: &str) -> bool {
        major_minor(self.since()) <= major_minor(release)
    }

    /// Whether boxfence cannot work without it.
    pub fn required(self) -> bool {
        matches!(self, Self::InetIngress | Self::Ctnetlink | Self::Nflog)
    }
}

/// A release's first two numbers: `6.1.0-50-amd64` is (6, 1); what is
/// not a number counts as 0.
fn major_minor(release: &str) -> (u32, u32) {
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What probing found of one feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// The kernel did it.
    Found,
    /// The kernel has it, but the configuration says not to use it (a
    /// test switch that forces the fallback, or a workaround).
    Avoided,
    /// The kernel refused it: its answer.
    Missing(String),
}

/// The running kernel's release and what probing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFeatures {
    /// `uname -r`.
    pub release: String,
    /// Every probed feature.
    pub found: BTreeMap<Feature, Presence>,
}

/// A feature boxfence cannot work without is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the kernel lacks {feature}, which boxfence needs: {}; mainline Linux {} and later have it (kernel {release} answered: {answer})",
    .feature.purpose(), .feature.since()
)]
pub struct MissingFeature {
    /// The feature.
    pub feature: Feature,
    /// The running kernel.
    pub release: String,
    /// What the kernel answered when it was tried.
    pub answer: String,
}

impl KernelFeatures {
    /// Findings as given (for tests and reports made elsewhere).
    pub fn new(release: impl Into<String>, found: BTreeMap<Feature, Presence>) -> Self {
        Self {
            release: release.into(),
            found,
        }
    }

    /// Every feature found but those `overridden` (for tests and reports
    /// made elsewhere).
    pub fn found_except(release: impl Into<String>, overridden: &[(Feature, Presence)]) -> Self {
        let mut found: BTreeMap<Feature, Presence> = Feature::ALL
            .into_iter()
            .map(|f| (f, Presence::Found))
            .collect();
        found.extend(overridden.iter().cloned());
        Self::new(release, found)
    }

    /// Whether the data plane may use `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.found.get(&feature) == Some(&Presence::Found)
    }

    /// The first required feature that is missing (or avoided: the
    /// configuration cannot wish a required feature away), if any.
    pub fn require(&self) -> Result<(), MissingFeature> {
        Feature::ALL
            .into_iter()
            .filter(|f| f.required())
            .try_for_each(|f| self.require_one(f))
    }

    /// With name checks on, a queue and a way for rules to reach it are
    /// required too: without them no domain-authorised flow could pass
    /// (fail closed), so the daemon refuses to start instead. Missing
    /// both ways names the preferred one, with both answers.
    pub fn require_for_name_check(&self) -> Result<(), MissingFeature> {
        self.require_one(Feature::Nfqueue)?;
        let by_expression = self.require_one(Feature::QueueExpression);
        let Err(mut missing) = by_expression else {
            return Ok(());
        };
        let Err(by_target) = self.require_one(Feature::QueueTarget) else {
            return Ok(());
        };
        missing.answer = format!(
            "{}; {}: {}",
            missing.answer,
            Feature::QueueTarget,
            by_target.answer
        );
        Err(missing)
    }

    fn require_one(&self, feature: Feature) -> Result<(), MissingFeature> {
        let answer = match self.found.get(&feature) {
            Some(Presence::Found) => return Ok(()),
            Some(Presence::Missing(answer)) => answer.clone(),
            Some(Presence::Avoided) => "avoided by the configuration".to_owned(),
            None => "not probed".to_owned(),
        };
        Err(MissingFeature {
            feature,
            release: self.release.clone(),
            answer,
        })
    }

    /// The path each part of the data plane takes on this kernel.
    pub fn paths(&self) -> Paths {
        Paths {
            box_link: if self.has(Feature::HookBeforeDevice) {
                BoxLinkPath::SideBySide
            } else {
                BoxLinkPath::LinkFirst
            },
            removal: if self.has(Feature::DestroyElement) {
                RemovalMode::Destroy
            } else {
                RemovalMode::DeleteEach
            },
            refresh: if self.has(Feature::ElementTimeoutUpdate) {
                RefreshMode::InPlace
            } else {
                RefreshMode::DeleteAndAdd
            },
            forwarding: if self.has(Feature::Flowtable) {
                FastPath::Flowtable
            } else {
                FastPath::Hooks
            },
            queue: if self.has(Feature::QueueExpression) {
                QueueBy::Expression
            } else {
                QueueBy::XtTarget
            },
        }
    }
}

/// How packets of established box flows are forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FastPath {
    /// By a software flowtable on the box links and uplinks, skipping the
    /// hooks once the flow is established and offloaded.
    Flowtable,
    /// Through the hooks, like every other packet (one rule each in
    /// prerouting and on the box's device).
    Hooks,
}

/// How a box's link and its device chain are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxLinkPath {
    /// Both at once: the chain may name a device that comes later.
    SideBySide,
    /// The link first, then the batch that hooks its chain (older
    /// kernels refuse a chain on a device that is not there). Nothing runs
    /// in the box before both are made, and a box device without its
    /// chain has its traffic refused as unproved (`from_box`).
    LinkFirst,
}

/// The paths the data plane takes; each has a fallback that every
/// supported kernel takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paths {
    /// Box link and device chain.
    pub box_link: BoxLinkPath,
    /// Removing learned elements that may have expired.
    pub removal: RemovalMode,
    /// Refreshing learned elements' timeouts.
    pub refresh: RefreshMode,
    /// Forwarding established box flows.
    pub forwarding: FastPath,
    /// Queueing packets to the name checker.
    pub queue: QueueBy,
}

impl Paths {
    /// Each part, the path it takes and whether that is the fallback,
    /// for logs and reports.
    pub fn describe(&self) -> [(&'static str, &'static str, bool); 5] {
        [
            (
                "box link",
                match self.box_link {
                    BoxLinkPath::SideBySide => "link and device chain side by side",
                    BoxLinkPath::LinkFirst => "link first, then its device chain",
                },
                self.box_link == BoxLinkPath::LinkFirst,
            ),
            (
                "learned address removal",
                match self.removal {
                    RemovalMode::Destroy => "DESTROYSETELEM",
                    RemovalMode::DeleteEach => "DELSETELEM per address, missing ones skipped",
                },
                self.removal == RemovalMode::DeleteEach,
            ),
            (
                "learned address refresh",
                match self.refresh {
                    RefreshMode::InPlace => "timeout updated in place",
                    RefreshMode::DeleteAndAdd => "deleted and re-added in one transaction",
                },
                self.refresh == RefreshMode::DeleteAndAdd,
            ),
            (
                "forwarding",
                match self.forwarding {
                    FastPath::Flowtable => "established flows by a flowtable, skipping the hooks",
                    FastPath::Hooks => "every packet through the hooks",
                },
                self.forwarding == FastPath::Hooks,
            ),
            (
                "name check queue",
                match self.queue {
                    QueueBy::Expression => "nf_tables queue expression",
                    QueueBy::XtTarget => "xtables NFQUEUE target through nft_compat",
                },
                self.queue == QueueBy::XtTarget,
            ),
        ]
    }

    /// Whether box links must exist before the table that names them is
    /// committed: a device chain on older kernels, a flowtable's device
    /// on every kernel (it refuses a device that is not there).
    pub fn links_before_table(&self) -> bool {
        self.box_link == BoxLinkPath::LinkFirst || self.forwarding == FastPath::Flowtable
    }
}

#[cfg(test)]
mod tests;
