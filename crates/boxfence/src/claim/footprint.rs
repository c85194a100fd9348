//! What a daemon holds that another daemon on the same host could also
//! reach for, and which pairs of holdings collide. Pure: the claim
//! registry (`super`) compares the footprints of the live daemons.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// One daemon's holdings. Kernel objects (table, rules, marks, queues,
/// log groups, interfaces, pools) are per network namespace; box
/// namespace names (`/run/netns`), state and host uids are host-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Footprint {
    /// Device and inode of the daemon's network namespace.
    pub(crate) netns: (u64, u64),
    /// The state directory.
    pub(crate) state_dir: PathBuf,
    /// Prefix of its boxes' namespace names.
    pub(crate) netns_prefix: String,
    /// Prefix of its boxes' host-side interfaces.
    pub(crate) ifname_prefix: String,
    /// Its nftables table.
    pub(crate) table: String,
    /// The policy-routing rule preferences it installs (in both families).
    pub(crate) rule_prefs: RangeInclusive<u32>,
    /// Every packet and conntrack mark bit its table uses.
    pub(crate) marks: u32,
    /// The NFQUEUE of its name checks, if on.
    pub(crate) queue: Option<u16>,
    /// The NFLOG group of its denials.
    pub(crate) log_group: u16,
    /// Its address pools.
    pub(crate) pool4: Ipv4Net,
    /// Its IPv6 pool.
    pub(crate) pool6: Ipv6Net,
    /// The host uids its boxes may be given.
    pub(crate) uids: RangeInclusive<u64>,
}

/// How two footprints meet.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Meeting {
    /// The settings two daemons cannot share: each names the key and
    /// both values.
    pub(crate) collisions: Vec<String>,
    /// The host uid ranges overlap: boxes of both daemons may run as the
    /// same host uid. Refusing it would refuse every pair of daemons with
    /// the default pool (a /16's zones span every uid), so it is a
    /// warning.
    pub(crate) shared_uids: bool,
}

impl Footprint {
    /// What `self` (starting) and `other` (running) cannot both hold.
    pub(crate) fn meet(&self, other: &Self) -> Meeting {
        let mut collisions = Vec::new();
        let mut clash = |hit: bool, key: &str, mine: String, theirs: String| {
            if hit {
                collisions.push(format!("{key} {mine} (theirs: {theirs})"));
            }
        };
        let prefixed = |a: &str, b: &str| a.starts_with(b) || b.starts_with(a);
        clash(
            self.state_dir == other.state_dir,
            "state_dir",
            self.state_dir.display().to_string(),
            other.state_dir.display().to_string(),
        );
        clash(
            prefixed(&self.netns_prefix, &other.netns_prefix),
            "network.netns_prefix",
            format!("{:?}", self.netns_prefix),
            format!("{:?}", other.netns_prefix),
        );
        if self.netns == other.netns {
            clash(
                self.table == other.table,
                "network.table",
                format!("{:?}", self.table),
                format!("{:?}", other.table),
            );
            clash(
                prefixed(&self.ifname_prefix, &other.ifname_prefix),
                "network.ifname_prefix",
                format!("{:?}", self.ifname_prefix),
                format!("{:?}", other.ifname_prefix),
            );
            clash(
                overlap(&self.rule_prefs, &other.rule_prefs),
                "network.rule_pref",
                format!("{:?}", self.rule_prefs),
                format!("{:?}", other.rule_prefs),
            );
            clash(
                self.marks & other.marks != 0,
                "network.mark",
                format!("bits {:#010x}", self.marks),
                format!("bits {:#010x}", other.marks),
            );
            clash(
                self.queue.is_some() && self.queue == other.queue,
                "network.name_check_queue",
                format!("{:?}", self.queue),
                format!("{:?}", other.queue),
            );
            clash(
                self.log_group == other.log_group,
                "network.log_group",
                self.log_group.to_string(),
                other.log_group.to_string(),
            );
            clash(
                self.pool4.contains(&other.pool4) || other.pool4.contains(&self.pool4),
                "network.ipv4_pool",
                self.pool4.to_string(),
                other.pool4.to_string(),
            );
            clash(
                self.pool6.contains(&other.pool6) || other.pool6.contains(&self.pool6),
                "network.ipv6_pool",
                self.pool6.to_string(),
                other.pool6.to_string(),
            );
        }
        Meeting {
            collisions,
            shared_uids: overlap(&self.uids, &other.uids),
        }
    }
}

fn overlap<T: PartialOrd>(a: &RangeInclusive<T>, b: &RangeInclusive<T>) -> bool {
    a.start() <= b.end() && b.start() <= a.end()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A daemon with the default settings.
    pub(crate) fn default_daemon() -> Footprint {
        Footprint {
            netns: (4, 4_026_531_840),
            state_dir: "/run/boxfence".into(),
            netns_prefix: "bfn-".into(),
            ifname_prefix: "bf-".into(),
            table: "boxfence".into(),
            rule_prefs: 10_090..=10_093,
            marks: 0x1f00_0000,
            queue: Some(19),
            log_group: 7,
            pool4: "10.200.0.0/16".parse().expect("net"),
            pool6: "fd00:b0f::/64".parse().expect("net"),
            uids: 524_288..=u64::from(u32::MAX),
        }
    }

    /// A second daemon configured apart, as README's example.
    pub(crate) fn apart() -> Footprint {
        Footprint {
            state_dir: "/var/lib/boxfence-b".into(),
            netns_prefix: "bfb-".into(),
            ifname_prefix: "bb-".into(),
            table: "boxfence_b".into(),
            rule_prefs: 10_100..=10_103,
            marks: 0x001f_0000 >> 8,
            queue: Some(20),
            log_group: 8,
            pool4: "10.201.0.0/16".parse().expect("net"),
            pool6: "fd00:b0f:1::/64".parse().expect("net"),
            uids: 1..=2,
            ..default_daemon()
        }
    }

    #[test]
    fn daemons_configured_apart_collide_nowhere() {
        assert_eq!(apart().meet(&default_daemon()), Meeting::default());
    }

    #[test]
    fn each_shared_setting_is_named_with_both_values() {
        let first = default_daemon();
        type Change = fn(&mut Footprint);
        let cases: [(&str, Change); 10] = [
            ("state_dir", |f| f.state_dir = "/run/boxfence".into()),
            // One prefix starting the other: the first daemon's start
            // would remove the other's namespaces as unknown.
            ("network.netns_prefix", |f| f.netns_prefix = "bfn-x".into()),
            ("network.table", |f| f.table = "boxfence".into()),
            ("network.ifname_prefix", |f| f.ifname_prefix = "bf".into()),
            ("network.rule_pref", |f| f.rule_prefs = 10_093..=10_096),
            ("network.mark", |f| f.marks = 0x0300_0000 >> 1),
            ("network.name_check_queue", |f| f.queue = Some(19)),
            ("network.log_group", |f| f.log_group = 7),
            ("network.ipv4_pool", |f| {
                f.pool4 = "10.200.8.0/24".parse().expect("net")
            }),
            ("network.ipv6_pool", |f| {
                f.pool6 = "fd00:b0f::/48".parse().expect("net")
            }),
        ];
        for (key, change) in cases {
            let mut second = apart();
            change(&mut second);
            let meeting = second.meet(&first);
            assert_eq!(meeting.collisions.len(), 1, "{key}: {meeting:?}");
            assert!(meeting.collisions[0].starts_with(key), "{key}: {meeting:?}");
            assert!(meeting.collisions[0].contains("theirs"), "{meeting:?}");
        }
    }

    #[test]
    fn kernel_objects_of_other_namespaces_never_collide_but_host_names_do() {
        let elsewhere = Footprint {
            netns: (4, 1),
            ..default_daemon()
        };
        let meeting = elsewhere.meet(&default_daemon());
        assert_eq!(
            meeting
                .collisions
                .iter()
                .map(|c| c.split(' ').next().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["state_dir", "network.netns_prefix"]
        );
        assert!(meeting.shared_uids);
    }

    #[test]
    fn overlapping_uid_ranges_are_reported_apart_from_collisions() {
        let second = Footprint {
            uids: 600_000..=700_000,
            ..apart()
        };
        let meeting = second.meet(&default_daemon());
        assert!(meeting.collisions.is_empty(), "{meeting:?}");
        assert!(meeting.shared_uids);
    }
}
