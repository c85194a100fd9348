//! The fail-closed rules in a scratch namespace, read back over rtnetlink
//! and with `ip rule`.

use super::*;
use crate::netlink::socket::{Family, Socket};
use crate::netlink::{NLM_F_DUMP, NLM_F_REQUEST, Writer};
use crate::testing::ScratchNetns;

const RTM_NEWRULE: u16 = 32;
const RTM_GETRULE: u16 = 34;

fn routing(mark: u32) -> FailClosedRouting {
    FailClosedRouting {
        pool4: "10.200.0.0/16".parse().expect("pool4"),
        pool6: "fd00:b0::/64".parse().expect("pool6"),
        mark,
        first_pref: 1000,
    }
}

/// Every rule of both families whose preference is in `prefs`, sorted,
/// from a dump of the namespace's rules.
fn rules_at(host: &HostNetns, prefs: std::ops::Range<u32>) -> Vec<Rule> {
    let mut socket = Socket::open_in(Family::Route, host).expect("open");
    let mut rules = Vec::new();
    socket
        .request(
            |seq| {
                let mut writer = Writer::with_capacity(32);
                let start = writer.begin_header(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq);
                writer.put_raw(&[0; 12]); // fib_rule_hdr: both families
                writer.end_message(start);
                writer.into_bytes()
            },
            |reply| {
                if reply.kind == RTM_NEWRULE {
                    rules.extend(Rule::decode(reply.payload));
                }
                Ok(())
            },
        )
        .expect("dump the rules");
    rules.retain(|rule| prefs.contains(&rule.pref));
    rules.sort_by_key(|rule| (rule.family, rule.pref));
    rules
}

fn ip_rules(host: &HostNetns, family: &str) -> String {
    host.run("ip", &[family, "rule", "show"], None)
        .expect("ip rule show")
}

fn sorted(mut rules: Vec<Rule>) -> Vec<Rule> {
    rules.sort_by_key(|rule| (rule.family, rule.pref));
    rules
}

#[test]
fn install_puts_each_rule_in_place_once_even_twice() {
    let Some(netns) = ScratchNetns::new("routing_install") else {
        return;
    };
    let host = netns.host();
    let routing = routing(0x20);
    routing.install(&host).expect("install");
    routing.install(&host).expect("install again");
    assert_eq!(rules_at(&host, 1000..1004), sorted(routing.rules()));
    let v4 = ip_rules(&host, "-4");
    for line in [
        "1000:\tfrom 10.200.0.0/16 iif lo lookup main",
        "1001:\tfrom all to 10.200.0.0/16 iif lo lookup main",
        "1002:\tfrom 10.200.0.0/16 fwmark 0/0x20 unreachable",
        "1003:\tfrom all to 10.200.0.0/16 fwmark 0/0x20 unreachable",
    ] {
        assert_eq!(v4.matches(line).count(), 1, "{line:?} once in\n{v4}");
    }
    let v6 = ip_rules(&host, "-6");
    for line in [
        "1000:\tfrom fd00:b0::/64 iif lo lookup main",
        "1003:\tfrom all to fd00:b0::/64 fwmark 0/0x20 unreachable",
    ] {
        assert_eq!(v6.matches(line).count(), 1, "{line:?} once in\n{v6}");
    }
    // Forwarding is on in the namespace, and only there.
    let forwarding = |path: &'static str| {
        host.in_netns(|| std::fs::read_to_string(path).expect("read"))
            .expect("enter")
    };
    assert_eq!(forwarding("/proc/sys/net/ipv4/ip_forward"), "1\n");
    assert_eq!(forwarding("/proc/sys/net/ipv6/conf/all/forwarding"), "1\n");
}

#[test]
fn install_replaces_the_rules_of_an_earlier_configuration() {
    let Some(netns) = ScratchNetns::new("routing_replace") else {
        return;
    };
    let host = netns.host();
    routing(0x20).install(&host).expect("install");
    let routing = routing(0x40);
    routing.install(&host).expect("install with another mark");
    assert_eq!(rules_at(&host, 1000..1004), sorted(routing.rules()));
}

#[test]
fn uninstall_removes_exactly_ours() {
    let Some(netns) = ScratchNetns::new("routing_uninstall") else {
        return;
    };
    let host = netns.host();
    let routing = routing(0x20);
    routing.install(&host).expect("install");
    let before = rules_at(&host, 0..u32::MAX);
    // Someone else's rules: one beside ours, one at our preference.
    for rule in [
        "pref 999 from 10.200.0.0/16 lookup main",
        "pref 1002 from 10.200.0.0/16 fwmark 0x1/0x1 unreachable",
    ] {
        let mut args = vec!["-4", "rule", "add"];
        args.extend(rule.split(' '));
        host.run("ip", &args, None).expect("a foreign rule");
    }
    let foreign: Vec<Rule> = rules_at(&host, 0..u32::MAX)
        .into_iter()
        .filter(|rule| !before.contains(rule))
        .collect();
    assert_eq!(foreign.len(), 2, "{foreign:?}");
    routing.uninstall(&host).expect("uninstall");
    // What is gone already is fine; what is not ours stays.
    routing.uninstall(&host).expect("uninstall again");
    let after = rules_at(&host, 0..u32::MAX);
    for rule in routing.rules() {
        assert!(!after.contains(&rule), "{rule} is left");
    }
    for rule in &foreign {
        assert!(after.contains(rule), "{rule} was removed too");
    }
    // The system's own rules are all still there (those [`Rule`] can say:
    // `lookup main` of both families).
    let ours = routing.rules();
    let system: Vec<&Rule> = before.iter().filter(|rule| !ours.contains(rule)).collect();
    assert_eq!(system.len(), 2, "{system:?}");
    assert!(system.iter().all(|rule| after.contains(rule)));
}
