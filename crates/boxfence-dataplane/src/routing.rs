//! Host setup: forwarding, and the policy-routing rules that make box
//! traffic unreachable unless the boxfence table marked it — so a flushed
//! or missing ruleset fails closed.

use ipnet::{Ipv4Net, Ipv6Net};

use crate::command::{CommandError, HostNetns};

/// The pools and mark the routing rules are built around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailClosedRouting {
    /// The boxes' IPv4 pool.
    pub pool4: Ipv4Net,
    /// The boxes' IPv6 pool.
    pub pool6: Ipv6Net,
    /// The mark bit the ruleset sets on box traffic.
    pub mark: u32,
    /// First rule preference used (four per family).
    pub first_pref: u32,
}

impl FailClosedRouting {
    fn rules(&self) -> Vec<(&'static str, String)> {
        let mark = self.mark;
        let families = [
            ("-4", self.pool4.to_string()),
            ("-6", self.pool6.to_string()),
        ];
        let mut rules = Vec::new();
        for (family, pool) in families {
            let pref = self.first_pref;
            // Traffic the host itself sends (the resolver's answers, TCP
            // resets) routes normally; everything else to or from a box
            // needs the mark.
            rules.push((
                family,
                format!("pref {pref} from {pool} iif lo lookup main"),
            ));
            rules.push((
                family,
                format!("pref {} to {pool} iif lo lookup main", pref + 1),
            ));
            rules.push((
                family,
                format!(
                    "pref {} from {pool} fwmark 0/{mark:#x} unreachable",
                    pref + 2
                ),
            ));
            rules.push((
                family,
                format!("pref {} to {pool} fwmark 0/{mark:#x} unreachable", pref + 3),
            ));
        }
        rules
    }

    /// Enables forwarding and (re)installs the rules.
    pub fn install(&self, host: &HostNetns) -> Result<(), CommandError> {
        host.sysctl("net/ipv4/ip_forward", "1")?;
        host.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        self.uninstall(host);
        for (family, rule) in self.rules() {
            let mut args = vec![family, "rule", "add"];
            args.extend(rule.split(' '));
            host.run("ip", &args, None)?;
        }
        Ok(())
    }

    /// Removes the rules (those already gone are fine).
    pub fn uninstall(&self, host: &HostNetns) {
        for (family, rule) in self.rules() {
            let pref = rule.split(' ').nth(1).unwrap_or_default();
            let _ = host.run("ip", &[family, "rule", "del", "pref", pref], None);
        }
    }
}
