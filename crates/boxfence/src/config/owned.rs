//! The `[network]` keys that name what a daemon owns in its network
//! namespace besides its boxes: its nftables table, the prefix of its
//! boxes' host-side interfaces, its routing-rule preferences, its mark
//! bits, its name-check queue and its denial log group. Each defaults to
//! what a lone daemon always used; a second daemon on the host sets its
//! own (README: several daemons on one host). What one configuration can
//! tell is refused here: a value the kernel would refuse or that would
//! meet `boxfence run`'s own objects. What two daemons' configurations
//! share is refused at start by the claim registry (`crate::claim`).

use ipnet::{Ipv4Net, Ipv6Net};

use super::{ConfigError, NetworkFile};

/// The nftables table unless told otherwise.
const DEFAULT_TABLE: &str = "boxfence";
/// Host-side box interfaces are `<prefix><id>`.
const DEFAULT_IFNAME_PREFIX: &str = "bf-";
/// The first of the four routing-rule preferences (per family).
const DEFAULT_RULE_PREF: u32 = 10_090;
/// The mark bit of box traffic; name checks use the four above it.
const DEFAULT_MARK: u32 = 0x0100_0000;
/// The NFQUEUE of name checks.
const DEFAULT_NAME_CHECK_QUEUE: u16 = 19;
/// The NFLOG group of denials.
const DEFAULT_LOG_GROUP: u16 = 7;

/// Interface names hold 15 bytes; a box's id takes `ID_LEN` of them.
const MAX_IFNAME_PREFIX: usize = 15 - boxfence_server::ID_LEN;
/// Rule preferences a daemon uses from its first one (`rule_pref`).
pub(crate) const RULE_PREFS: u32 = 4;
/// The main table's rule: ours must come before it.
const MAIN_RULE_PREF: u32 = 32_766;
/// The mark bits a daemon's table uses, shifted to its `mark` bit.
pub(crate) const MARK_BITS: u32 = 0b1_1111;

/// What `boxfence run` takes for itself (`boxfence_engine::ephemeral`).
const RUN_PREFIX: &str = "bfr";
const RUN_RULE_PREFS: std::ops::RangeInclusive<u32> = 20_000..=28_000;
const RUN_NUMBERS: std::ops::RangeInclusive<u16> = 1000..=1999;
const RUN_POOL4: &str = "10.239.0.0/16";
const RUN_POOL6: &str = "fd00:b0f:ffff::/64";

/// What the daemon owns, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    /// Its `inet` table.
    pub(crate) table: String,
    /// Its boxes' host-side interfaces start with this.
    pub(crate) ifname_prefix: String,
    /// Its first routing-rule preference ([`RULE_PREFS`] from it).
    pub(crate) rule_pref: u32,
    /// Its mark bit ([`MARK_BITS`] from it).
    pub(crate) mark: u32,
    /// The NFQUEUE of its name checks.
    pub(crate) name_check_queue: u16,
    /// The NFLOG group of its denials.
    pub(crate) log_group: u16,
}

/// `flags` over `file` over the defaults, each checked; `netns_prefix`
/// and the pools are checked against `boxfence run`'s here too, and the
/// uplink against the interface prefix (the table would take it for a
/// box's link).
pub(super) fn resolve_owned(
    flags: &NetworkFile,
    file: &NetworkFile,
    netns_prefix: &str,
    pools: (Ipv4Net, Ipv6Net),
) -> Result<Owned, ConfigError> {
    let bad = |key: &'static str, message: String| Err(ConfigError::Value { key, message });
    let text = |flag: &Option<String>, file: &Option<String>, default: &str| {
        flag.clone()
            .or_else(|| file.clone())
            .unwrap_or_else(|| default.to_owned())
    };
    let owned = Owned {
        table: text(&flags.table, &file.table, DEFAULT_TABLE),
        ifname_prefix: text(
            &flags.ifname_prefix,
            &file.ifname_prefix,
            DEFAULT_IFNAME_PREFIX,
        ),
        rule_pref: flags
            .rule_pref
            .or(file.rule_pref)
            .unwrap_or(DEFAULT_RULE_PREF),
        mark: flags.mark.or(file.mark).unwrap_or(DEFAULT_MARK),
        name_check_queue: (flags.name_check_queue.or(file.name_check_queue))
            .unwrap_or(DEFAULT_NAME_CHECK_QUEUE),
        log_group: flags
            .log_group
            .or(file.log_group)
            .unwrap_or(DEFAULT_LOG_GROUP),
    };
    let word = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    let near_run = |prefix: &str| prefix.starts_with(RUN_PREFIX) || RUN_PREFIX.starts_with(prefix);
    if owned.table.is_empty()
        || owned.table.len() > 64
        || !word(&owned.table)
        || !owned.table.starts_with(|c: char| c.is_ascii_alphabetic())
        || owned.table.starts_with("boxfence_run_")
    {
        return bad(
            "network.table",
            format!(
                "`{}` is not a table name of 1 to 64 letters, digits, `_` and `-` starting with a letter, outside boxfence run's `boxfence_run_*`",
                owned.table
            ),
        );
    }
    let prefix = &owned.ifname_prefix;
    if prefix.is_empty() || prefix.len() > MAX_IFNAME_PREFIX || !word(prefix) || near_run(prefix) {
        return bad(
            "network.ifname_prefix",
            format!(
                "`{prefix}` must be 1 to {MAX_IFNAME_PREFIX} letters, digits, `_` and `-` (a box's id takes the rest of an interface name's 15 bytes), and neither start nor start boxfence run's `{RUN_PREFIX}-`"
            ),
        );
    }
    if let Some(uplink) = (flags.uplink.as_deref())
        .or(file.uplink.as_deref())
        .filter(|uplink| uplink.starts_with(prefix.as_str()))
    {
        return bad(
            "network.uplink",
            format!(
                "`{uplink}` starts with network.ifname_prefix `{prefix}`, so it would be taken for a box's link"
            ),
        );
    }
    if netns_prefix.is_empty() || near_run(netns_prefix) {
        return bad(
            "network.netns_prefix",
            format!(
                "`{netns_prefix}` must not be empty, nor start or start boxfence run's `{RUN_PREFIX}<n>-`"
            ),
        );
    }
    let last_pref = owned.rule_pref.saturating_add(RULE_PREFS - 1);
    if owned.rule_pref == 0
        || last_pref >= MAIN_RULE_PREF
        || (owned.rule_pref <= *RUN_RULE_PREFS.end() && *RUN_RULE_PREFS.start() <= last_pref)
    {
        return bad(
            "network.rule_pref",
            format!(
                "{} must leave its {RULE_PREFS} preferences between 1 and {} (before the main table's rule) and outside boxfence run's {RUN_RULE_PREFS:?}",
                owned.rule_pref,
                MAIN_RULE_PREF - 1
            ),
        );
    }
    let run_bits = MARK_BITS * boxfence_engine::RUN_MARK;
    if !owned.mark.is_power_of_two()
        || owned.mark.trailing_zeros() > 27
        || (MARK_BITS * owned.mark) & run_bits != 0
    {
        return bad(
            "network.mark",
            format!(
                "{:#x} must be one bit at most 1 << 27 (name checks use the four above it), its bits clear of boxfence run's {run_bits:#x}",
                owned.mark
            ),
        );
    }
    for (key, number) in [
        ("network.name_check_queue", owned.name_check_queue),
        ("network.log_group", owned.log_group),
    ] {
        if RUN_NUMBERS.contains(&number) {
            return bad(
                key,
                format!("{number} is among boxfence run's {RUN_NUMBERS:?}"),
            );
        }
    }
    let (pool4, pool6) = pools;
    let run4: Ipv4Net = RUN_POOL4.parse().expect("a network");
    let run6: Ipv6Net = RUN_POOL6.parse().expect("a network");
    if pool4.contains(&run4) || run4.contains(&pool4) {
        return bad(
            "network.ipv4_pool",
            format!("{pool4} meets boxfence run's {run4}"),
        );
    }
    if pool6.contains(&run6) || run6.contains(&pool6) {
        return bad(
            "network.ipv6_pool",
            format!("{pool6} meets boxfence run's {run6}"),
        );
    }
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<Owned, ConfigError> {
        let file: NetworkFile = toml::from_str(text).expect("parses");
        let pools = (
            file.ipv4_pool
                .unwrap_or("10.200.0.0/16".parse().expect("net")),
            file.ipv6_pool
                .unwrap_or("fd00:b0f::/64".parse().expect("net")),
        );
        let prefix = file.netns_prefix.clone().unwrap_or_else(|| "bfn-".into());
        resolve_owned(&NetworkFile::default(), &file, &prefix, pools)
    }

    #[test]
    fn the_defaults_are_what_a_lone_daemon_always_used() {
        let owned = resolve("").expect("defaults");
        assert_eq!(
            owned,
            Owned {
                table: "boxfence".into(),
                ifname_prefix: "bf-".into(),
                rule_pref: 10_090,
                mark: 0x0100_0000,
                name_check_queue: 19,
                log_group: 7,
            }
        );
    }

    #[test]
    fn a_second_daemon_s_settings_are_read() {
        let owned = resolve(
            "table = \"boxfence_b\"\nifname_prefix = \"bb-\"\nrule_pref = 10100\n\
             mark = 0x0000_0100\nname_check_queue = 20\nlog_group = 8",
        )
        .expect("valid");
        assert_eq!(
            (owned.table.as_str(), owned.ifname_prefix.as_str()),
            ("boxfence_b", "bb-")
        );
        assert_eq!((owned.rule_pref, owned.mark), (10_100, 0x100));
        assert_eq!((owned.name_check_queue, owned.log_group), (20, 8));
    }

    #[test]
    fn what_the_kernel_or_boxfence_run_would_meet_is_refused_naming_the_key() {
        for (text, key) in [
            ("table = \"\"", "network.table"),
            ("table = \"a b\"", "network.table"),
            ("table = \"boxfence_run_1\"", "network.table"),
            ("ifname_prefix = \"bfab\"", "network.ifname_prefix"),
            ("ifname_prefix = \"bf\"", "network.ifname_prefix"),
            ("netns_prefix = \"bfr1-\"", "network.netns_prefix"),
            ("netns_prefix = \"b\"", "network.netns_prefix"),
            ("rule_pref = 0", "network.rule_pref"),
            ("rule_pref = 32763", "network.rule_pref"),
            ("rule_pref = 19998", "network.rule_pref"),
            ("mark = 3", "network.mark"),
            ("mark = 0x1000_0000", "network.mark"),
            ("mark = 0x0001_0000", "network.mark"),
            ("mark = 0x0000_1000", "network.mark"),
            ("name_check_queue = 1019", "network.name_check_queue"),
            ("log_group = 1000", "network.log_group"),
            ("ipv4_pool = \"10.239.7.0/24\"", "network.ipv4_pool"),
            ("ipv6_pool = \"fd00:b0f:ffff::/64\"", "network.ipv6_pool"),
            ("uplink = \"bf-eth0\"", "network.uplink"),
        ] {
            let error = resolve(text).expect_err(text);
            assert!(error.to_string().contains(key), "{text}: {error}");
        }
    }
}
