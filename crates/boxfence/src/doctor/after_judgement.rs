//! Host settings that act on box traffic after boxfence judged it: read
//! from the host tools' JSON by plain functions, so each finding is
//! tested without root.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::RangeInclusive;

use serde_json::Value;

use super::{Check, HostView, Status};

/// boxfence judges box traffic in prerouting at this priority (dstnat +
/// 10): a chain of the same hook with a higher one runs after it.
const JUDGED_AT: i64 = -90;

/// The daemon's own policy-routing rules (fail-closed routing).
const OWN_RULE_PREFS: RangeInclusive<u64> = 10_090..=10_097;

/// Statements that send a packet to another destination than the one
/// judged.
const REWRITES: [&str; 3] = ["dnat", "redirect", "tproxy"];

pub(super) fn checks(table: &str, host: &dyn HostView) -> Vec<Check> {
    vec![
        rewrites(table, host.ruleset()),
        routing_rules([host.ip(&["-4", "rule"]), host.ip(&["-6", "rule"])]),
        ipsec(host.ip(&["xfrm", "policy"])),
        ipvs(host.proc_file("/proc/net/ip_vs").as_deref()),
    ]
}

/// Chains outside boxfence's table, reached from a hook after its
/// judgement (prerouting at a later priority, forward, postrouting), that
/// rewrite a packet's destination.
fn rewrites(table: &str, ruleset: Result<Value, String>) -> Check {
    let name = "rewrite_after_judgement";
    let ruleset = match ruleset {
        Ok(ruleset) => ruleset,
        Err(error) => return unknown(name, error),
    };
    let items = ruleset["nftables"].as_array().cloned().unwrap_or_default();
    // Rules by chain, per (family, table).
    let mut rules: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
    let mut starts = Vec::new();
    for item in &items {
        if let Some(chain) = item.get("chain") {
            let key = chain_key(chain);
            if key.0 == "inet" && key.1 == table {
                continue;
            }
            let hook = chain["hook"].as_str().unwrap_or_default();
            let after = match hook {
                "prerouting" => chain["prio"].as_i64().is_some_and(|p| p > JUDGED_AT),
                "forward" | "postrouting" => true,
                _ => false,
            };
            if after {
                starts.push(key);
            }
        } else if let Some(rule) = item.get("rule") {
            rules
                .entry(chain_key(rule))
                .or_default()
                .push(rule["expr"].clone());
        }
    }
    let mut found = BTreeSet::new();
    let mut queue: VecDeque<_> = starts.into_iter().collect();
    let mut seen = BTreeSet::new();
    while let Some(key) = queue.pop_front() {
        if !seen.insert(key.clone()) {
            continue;
        }
        for expr in rules.get(&key).into_iter().flatten() {
            if rewrites_destination(expr) {
                found.insert(format!("{} {} {}", key.0, key.1, key.2));
            }
            for target in targets(expr) {
                queue.push_back((key.0.clone(), key.1.clone(), target));
            }
        }
    }
    if found.is_empty() {
        Check {
            name,
            status: Status::Ok,
            detail: "no chain rewrites a destination after boxfence judges box traffic".into(),
        }
    } else {
        Check {
            name,
            status: Status::Fail,
            detail: format!(
                "chains that run after boxfence judged box traffic rewrite destinations, so an \
                 allowed flow could be sent elsewhere: {} (move destination NAT before priority \
                 dstnat + 10 of prerouting, or exclude the boxes' pools)",
                found.into_iter().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

fn chain_key(object: &Value) -> (String, String, String) {
    let field = |name: &str| object[name].as_str().unwrap_or_default().to_owned();
    let chain = if object.get("chain").is_some_and(Value::is_string) {
        field("chain")
    } else {
        field("name")
    };
    (field("family"), field("table"), chain)
}

/// True when a rule (its expressions) changes where a packet goes: NAT to
/// a destination, or a destination address or port set by hand.
fn rewrites_destination(expr: &Value) -> bool {
    match expr {
        Value::Object(object) => {
            REWRITES
                .iter()
                .any(|statement| object.contains_key(*statement))
                || object.get("mangle").is_some_and(|mangle| {
                    let field = mangle["key"]["payload"]["field"].as_str();
                    matches!(field, Some("daddr" | "dport"))
                })
                || object.values().any(rewrites_destination)
        }
        Value::Array(items) => items.iter().any(rewrites_destination),
        _ => false,
    }
}

/// Chains a rule jumps or goes to (also through verdict maps).
fn targets(expr: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(object) => {
                for verdict in ["jump", "goto"] {
                    if let Some(target) = object.get(verdict).and_then(|v| v["target"].as_str()) {
                        out.push(target.to_owned());
                    }
                }
                stack.extend(object.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    out
}

/// Routing rules besides the kernel's and boxfence's own: box traffic may
/// take another path than the main table's (its destination stays the
/// judged one).
fn routing_rules(families: [Result<Value, String>; 2]) -> Check {
    let name = "policy_routing";
    let mut others = Vec::new();
    for family in families {
        let rules = match family {
            Ok(rules) => rules,
            Err(error) => return unknown(name, error),
        };
        for rule in rules.as_array().into_iter().flatten() {
            let priority = rule["priority"].as_u64().unwrap_or_default();
            let table = rule["table"].as_str().unwrap_or_default();
            let standard = matches!(
                (priority, table),
                (0, "local") | (32766, "main") | (32767, "default")
            );
            if !standard && !OWN_RULE_PREFS.contains(&priority) {
                others.push(format!("pref {priority} {}", compact(rule)));
            }
        }
    }
    if others.is_empty() {
        Check {
            name,
            status: Status::Ok,
            detail: "only the kernel's and boxfence's routing rules".into(),
        }
    } else {
        Check {
            name,
            status: Status::Warn,
            detail: format!(
                "other routing rules may carry box traffic another way than the main table \
                 (boxfence judges destinations, not paths): {}",
                others.join("; ")
            ),
        }
    }
}

fn ipsec(policies: Result<Value, String>) -> Check {
    let name = "ipsec_policies";
    match policies {
        Err(error) => unknown(name, error),
        Ok(list) if list.as_array().is_none_or(Vec::is_empty) => Check {
            name,
            status: Status::Ok,
            detail: "no IPsec (xfrm) policies".into(),
        },
        Ok(list) => Check {
            name,
            status: Status::Warn,
            detail: format!(
                "{} IPsec (xfrm) policies may encapsulate box traffic after boxfence judged it",
                list.as_array().map_or(0, Vec::len)
            ),
        },
    }
}

fn ipvs(table: Option<&str>) -> Check {
    let name = "ipvs";
    // The file's first three lines are headers; services follow.
    let services = table.map_or(0, |text| text.lines().skip(3).count());
    if services == 0 {
        Check {
            name,
            status: Status::Ok,
            detail: "no IPVS virtual services".into(),
        }
    } else {
        Check {
            name,
            status: Status::Warn,
            detail: format!(
                "IPVS has {services} lines of virtual services; it redirects traffic after \
                 prerouting, so a box flow to a virtual address may reach other servers"
            ),
        }
    }
}

fn unknown(name: &'static str, error: String) -> Check {
    Check {
        name,
        status: Status::Unknown,
        detail: format!("not checked: {error}"),
    }
}

fn compact(rule: &Value) -> String {
    rule.as_object()
        .map(|object| {
            object
                .iter()
                .filter(|(key, _)| *key != "priority")
                .map(|(key, value)| {
                    format!(
                        "{key}={}",
                        value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ruleset(items: Value) -> Result<Value, String> {
        Ok(json!({"nftables": items}))
    }

    #[test]
    fn a_later_nat_or_destination_rewrite_fails_the_check() {
        let ours = json!({"chain": {"family": "inet", "table": "boxfence", "name": "prerouting_nat",
            "type": "nat", "hook": "prerouting", "prio": -100}});
        let our_rule = json!({"rule": {"family": "inet", "table": "boxfence", "chain": "prerouting_nat",
            "expr": [{"dnat": {"addr": "10.200.0.1"}}]}});
        let earlier = json!({"chain": {"family": "ip", "table": "nat", "name": "PREROUTING",
            "type": "nat", "hook": "prerouting", "prio": -100}});
        let earlier_rule = json!({"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING",
            "expr": [{"dnat": {"addr": "5.6.7.8"}}]}});
        let clean = rewrites(
            "boxfence",
            ruleset(json!([ours, our_rule, earlier, earlier_rule])),
        );
        assert_eq!(clean.status, Status::Ok, "{}", clean.detail);

        let later = json!({"chain": {"family": "ip", "table": "t", "name": "pre",
            "type": "nat", "hook": "prerouting", "prio": 0}});
        let jump = json!({"rule": {"family": "ip", "table": "t", "chain": "pre",
            "expr": [{"jump": {"target": "x"}}]}});
        let mangle = json!({"rule": {"family": "ip", "table": "t", "chain": "x",
            "expr": [{"mangle": {"key": {"payload": {"protocol": "ip", "field": "daddr"}}, "value": "1.1.1.1"}}]}});
        let found = rewrites("boxfence", ruleset(json!([later, jump, mangle])));
        assert_eq!(found.status, Status::Fail);
        assert!(found.detail.contains("ip t x"), "{}", found.detail);

        // Source NAT after the judgement changes no destination.
        let post = json!({"chain": {"family": "ip", "table": "t", "name": "post",
            "type": "nat", "hook": "postrouting", "prio": 100}});
        let masquerade = json!({"rule": {"family": "ip", "table": "t", "chain": "post",
            "expr": [{"masquerade": null}]}});
        assert_eq!(
            rewrites("boxfence", ruleset(json!([post, masquerade]))).status,
            Status::Ok
        );
        assert_eq!(
            rewrites("boxfence", Err("no root".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn routing_rules_beyond_the_standard_ones_are_named() {
        let standard = json!([{"priority": 0, "src": "all", "table": "local"},
            {"priority": 10090, "src": "10.200.0.0/16", "iif": "lo", "table": "main"},
            {"priority": 32766, "src": "all", "table": "main"},
            {"priority": 32767, "src": "all", "table": "default"}]);
        let check = routing_rules([Ok(standard.clone()), Ok(json!([]))]);
        assert_eq!(check.status, Status::Ok);
        let vpn = json!([{"priority": 100, "src": "all", "fwmark": "0x1", "table": "vpn"}]);
        let check = routing_rules([Ok(standard), Ok(vpn)]);
        assert_eq!(check.status, Status::Warn);
        assert!(
            check.detail.contains("pref 100") && check.detail.contains("table=vpn"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn ipsec_and_ipvs_are_reported_when_present() {
        assert_eq!(ipsec(Ok(json!([]))).status, Status::Ok);
        assert_eq!(ipsec(Ok(json!([{"dir": "out"}]))).status, Status::Warn);
        let header = "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n";
        assert_eq!(ipvs(None).status, Status::Ok);
        assert_eq!(ipvs(Some(header)).status, Status::Ok);
        let service = format!("{header}TCP  0A000001:0050 rr\n");
        assert_eq!(ipvs(Some(&service)).status, Status::Warn);
    }
}
