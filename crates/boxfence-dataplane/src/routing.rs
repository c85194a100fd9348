//! Host setup: forwarding, and the policy-routing rules that make box
//! traffic unreachable unless the boxfence table marked it — so a flushed
//! or missing ruleset fails closed. The rules go over rtnetlink; no `ip`
//! process runs.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nix::errno::Errno;

use crate::command::{CommandError, HostNetns};
use crate::rtnetlink::{Action, IpFamily, RtSocket, RtnlError, Rule};

/// Rounds of deleting by preference before giving up: each round removes
/// one rule per preference, so this bounds duplicates, not our rules.
const MAX_DELETE_ROUNDS: usize = 16;

/// Why the rules could not be installed or removed.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// Forwarding could not be enabled, or the host's network namespace
    /// could not be entered.
    #[error(transparent)]
    Host(#[from] CommandError),
    /// The kernel refused a rule (the step says which), or did not answer.
    #[error("policy routing: {0}")]
    Rule(#[from] RtnlError),
    /// Removing the rules failed: every failure, in rule order.
    #[error("policy routing: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Uninstall(Vec<RtnlError>),
    /// Rules at our preferences kept coming back while they were removed.
    #[error(
        "policy routing: rules at preference {0} are still there after {MAX_DELETE_ROUNDS} deletes"
    )]
    Crowded(u32),
}

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
    fn rules(&self) -> Vec<Rule> {
        let families = [
            (IpFamily::V4, IpNet::V4(self.pool4)),
            (IpFamily::V6, IpNet::V6(self.pool6)),
        ];
        let mut rules = Vec::new();
        for (family, pool) in families {
            let rule = |offset: u32, from, to, host: bool, action| Rule {
                pref: self.first_pref + offset,
                from,
                to,
                iif: host.then(|| "lo".to_owned()),
                fwmark: (!host).then_some((0, self.mark)),
                action,
                family,
            };
            // Traffic the host itself sends (the resolver's answers, TCP
            // resets) routes normally; everything else to or from a box
            // needs the mark.
            rules.push(rule(0, Some(pool), None, true, Action::LookupMain));
            rules.push(rule(1, None, Some(pool), true, Action::LookupMain));
            rules.push(rule(2, Some(pool), None, false, Action::Unreachable));
            rules.push(rule(3, None, Some(pool), false, Action::Unreachable));
        }
        rules
    }

    /// Enables forwarding and (re)installs the rules: whatever holds our
    /// preferences is removed first (the preferences are boxfence's by
    /// configuration), so installing twice leaves one set.
    pub fn install(&self, host: &HostNetns) -> Result<(), RoutingError> {
        host.sysctl("net/ipv4/ip_forward", "1")?;
        host.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        let rules = self.rules();
        host.in_netns(|| {
            let mut socket = RtSocket::open()?;
            clear_prefs(&mut socket, &rules)?;
            socket.transact(|request| {
                for rule in &rules {
                    request.add_rule(rule);
                }
            })?;
            Ok(())
        })?
    }

    /// Removes our rules (those already gone are fine) and only them: a
    /// rule at one of our preferences that is not ours stays. Every rule
    /// is tried; the error lists every failure.
    pub fn uninstall(&self, host: &HostNetns) -> Result<(), RoutingError> {
        let rules = self.rules();
        host.in_netns(|| {
            let mut socket = RtSocket::open()?;
            let outcomes = socket.steps(|request| {
                for rule in &rules {
                    request.del_rule(rule);
                }
            })?;
            let failures: Vec<RtnlError> = outcomes
                .into_iter()
                .filter_map(Result::err)
                .filter(|error| error.errno() != Some(Errno::ENOENT))
                .collect();
            if failures.is_empty() {
                Ok(())
            } else {
                Err(RoutingError::Uninstall(failures))
            }
        })?
    }
}

/// Deletes by preference, in each rule's family, until no rule holds it.
fn clear_prefs(socket: &mut RtSocket, rules: &[Rule]) -> Result<(), RoutingError> {
    let mut held: Vec<(IpFamily, u32)> = rules.iter().map(|r| (r.family, r.pref)).collect();
    for _ in 0..MAX_DELETE_ROUNDS {
        if held.is_empty() {
            return Ok(());
        }
        let outcomes = socket.steps(|request| {
            for &(family, pref) in &held {
                request.del_rule_pref(family, pref);
            }
        })?;
        let mut still = Vec::new();
        for (slot, outcome) in held.into_iter().zip(outcomes) {
            match outcome {
                // One removed; there may be another.
                Ok(()) => still.push(slot),
                Err(error) if error.errno() == Some(Errno::ENOENT) => {}
                Err(error) => return Err(error.into()),
            }
        }
        held = still;
    }
    match held.first() {
        Some(&(_, pref)) => Err(RoutingError::Crowded(pref)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod kernel_tests;
