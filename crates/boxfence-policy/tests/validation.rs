//! Bad input gets an error naming the JSON path and the rule, and every
//! problem of a document is reported at once.

use boxfence_policy::{AlwaysBlocked, AppPolicy, BoxPolicy, Flow, MAX_LIST_ENTRIES};
use serde_json::{Value, json};

/// `(path, message)` of every problem `AppPolicy::from_json` finds.
fn app_problems(value: Value) -> Vec<(String, String)> {
    match AppPolicy::from_json(&value) {
        Ok(policy) => panic!("accepted: {policy:?}"),
        Err(error) => error
            .problems
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect(),
    }
}

fn box_problems(value: Value) -> Vec<(String, String)> {
    match BoxPolicy::from_json(&value) {
        Ok(policy) => panic!("accepted: {policy:?}"),
        Err(error) => error
            .problems
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect(),
    }
}

/// Asserts one problem at `path` whose message contains `needle`.
fn has(problems: &[(String, String)], path: &str, needle: &str) {
    assert!(
        problems
            .iter()
            .any(|(p, m)| p == path && m.contains(needle)),
        "no problem at {path} mentioning {needle:?} in {problems:#?}"
    );
}

fn policy_with_rule(rule: Value) -> Value {
    json!({"name": "p", "selector": {"all": true}, "rules": [rule]})
}

#[test]
fn every_problem_is_reported_at_once() {
    let problems = app_problems(json!({
        "name": "p",
        "selector": {"all": true},
        "colour": "blue",
        "rules": [
            {"action": "deny", "direction": "egress"},
            {"action": "allow", "direction": "sideways",
             "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 0}]}
        ]
    }));
    has(&problems, "colour", "unknown field");
    has(&problems, "rules[0].action", "the only action is allow");
    has(
        &problems,
        "rules[1].direction",
        "expected ingress or egress",
    );
    has(&problems, "rules[1].ports[1].port", "must be 1-65535");
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

#[test]
fn ports_must_be_1_to_65535_and_present_for_tcp_and_udp() {
    let rule = |ports: Value| {
        policy_with_rule(json!({"action": "allow", "direction": "egress", "ports": ports}))
    };
    has(
        &app_problems(rule(json!([{"protocol": "tcp", "port": 0}]))),
        "rules[0].ports[0].port",
        "must be 1-65535",
    );
    has(
        &app_problems(rule(json!([{"protocol": "udp", "port": 65536}]))),
        "rules[0].ports[0].port",
        "must be 1-65535",
    );
    has(
        &app_problems(rule(json!([{"protocol": "tcp", "port": "80"}]))),
        "rules[0].ports[0].port",
        "not a string",
    );
    has(
        &app_problems(rule(json!([{"protocol": "udp"}]))),
        "rules[0].ports[0].port",
        "required for protocol udp",
    );
    has(
        &app_problems(rule(json!([{"protocol": "icmp", "port": 8}]))),
        "rules[0].ports[0].port",
        "no ports",
    );
    has(
        &app_problems(rule(json!([{"protocol": "sctp", "port": 8}]))),
        "rules[0].ports[0].protocol",
        "expected tcp, udp or icmp",
    );
    has(
        &app_problems(rule(
            json!([{"protocol": "tcp", "port": 8100, "end_port": 8000}]),
        )),
        "rules[0].ports[0].end_port",
        "must not be less than port",
    );
    has(
        &app_problems(rule(json!([]))),
        "rules[0].ports",
        "omit ports to allow every protocol and port",
    );
}

#[test]
fn domains_are_egress_only_and_peer_lists_not_empty() {
    let problems = app_problems(policy_with_rule(
        json!({"action": "allow", "direction": "ingress", "domains": ["api.github.com"]}),
    ));
    has(
        &problems,
        "rules[0].domains",
        "only allowed on egress rules",
    );
    let problems = app_problems(policy_with_rule(
        json!({"action": "allow", "direction": "egress", "cidrs": []}),
    ));
    has(&problems, "rules[0].cidrs", "must not be empty");
}

#[test]
fn empty_selectors_are_refused() {
    for (selector, path, needle) in [
        (
            json!({}),
            "selector",
            "at least one of all, machines, metadata",
        ),
        (json!({"all": false}), "selector.all", "must be true"),
        (
            json!({"machines": []}),
            "selector.machines",
            "would select no machine",
        ),
        (
            json!({"metadata": {}}),
            "selector.metadata",
            "would select every machine",
        ),
        (
            json!({"machines": [{"id": ""}]}),
            "selector.machines[0].id",
            "1-128 characters",
        ),
        (
            json!({"metadata": {"role": 7}}),
            "selector.metadata.role",
            "must be a string",
        ),
    ] {
        let problems = app_problems(json!({"name": "p", "selector": selector, "rules": []}));
        has(&problems, path, needle);
    }
}

#[test]
fn required_fields_are_named() {
    let problems = app_problems(json!({}));
    has(&problems, "name", "required");
    has(&problems, "selector", "required");
    has(&problems, "rules", "required");
    has(&app_problems(json!([])), "", "must be an object");
}

#[test]
fn bad_cidrs_say_why_and_what_the_network_is() {
    let problems = app_problems(policy_with_rule(
        json!({"action": "allow", "direction": "egress", "cidrs": ["104.16.1.0/12", "300.1.1.1/8", "2001:db8::1/32"]}),
    ));
    has(
        &problems,
        "rules[0].cidrs[0]",
        "host bits set; the network is 104.16.0.0/12",
    );
    has(&problems, "rules[0].cidrs[1]", "not a CIDR block");
    has(
        &problems,
        "rules[0].cidrs[2]",
        "the network is 2001:db8::/32",
    );
}

#[test]
fn bad_domain_patterns_are_refused() {
    let long_label = "a".repeat(64);
    let long_name = vec!["abcdefghi"; 26].join(".");
    for (pattern, needle) in [
        ("*", "`*` alone"),
        ("api.*.com", "only allowed as the whole first label"),
        ("*api.com", "only allowed as the whole first label"),
        ("*.*.com", "only allowed as the whole first label"),
        ("a..com", "empty label"),
        (".a.com", "empty label"),
        ("", "must not be empty"),
        (long_label.as_str(), "longer than 63"),
        (long_name.as_str(), "longer than 253"),
        ("exa mple.com", "character"),
    ] {
        let problems = box_problems(json!({"mode": "custom", "allowedDomains": [pattern]}));
        has(&problems, "allowedDomains[0]", needle);
    }
}

#[test]
fn custom_box_policy_must_say_something() {
    for body in [
        json!({"mode": "custom"}),
        json!({"mode": "custom", "allowedDomains": [], "allowedCidrs": [], "deniedCidrs": []}),
    ] {
        let problems = box_problems(body);
        has(&problems, "mode", "use allow-all or deny-all");
    }
    has(
        &box_problems(json!({"mode": "open"})),
        "mode",
        "expected allow-all, deny-all or custom",
    );
    has(
        &box_problems(json!({"mode": "deny-all", "allowedCidrs": ["1.0.0.0/8"]})),
        "allowedCidrs",
        "only allowed with mode custom",
    );
    has(
        &box_problems(json!({"mode": "custom", "allowed_domains": ["a.com"]})),
        "allowed_domains",
        "unknown field",
    );
}

#[test]
fn lists_are_bounded() {
    let too_many: Vec<String> = (0..=MAX_LIST_ENTRIES)
        .map(|i| format!("n{i}.example"))
        .collect();
    let problems = box_problems(json!({"mode": "custom", "allowedDomains": too_many}));
    has(&problems, "allowedDomains", "at most 10000 are allowed");
}

#[test]
fn always_blocked_entries_are_accepted_with_a_warning() {
    let policy = BoxPolicy::from_json(
        &json!({"mode": "custom", "allowedCidrs": ["10.0.0.0/8", "104.16.0.0/12", "0.0.0.0/0", "fd00::/8"]}),
    )
    .expect("accepted");
    let warnings = policy.warnings(&AlwaysBlocked::default());
    let paths: Vec<_> = warnings.iter().map(|w| w.path.as_str()).collect();
    assert_eq!(
        paths,
        ["allowedCidrs[0]", "allowedCidrs[3]"],
        "{warnings:#?}"
    );
    assert!(
        warnings[0]
            .message
            .contains("10.0.0.0/8 is inside an always-blocked range (private use)")
    );

    let app = AppPolicy::from_json(&policy_with_rule(
        json!({"action": "allow", "direction": "egress", "cidrs": ["169.254.169.254/32"]}),
    ))
    .expect("accepted");
    let warnings = app.warnings(&AlwaysBlocked::default());
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].path, "rules[0].cidrs[0]");
    assert!(
        warnings[0].message.contains("cloud instance metadata"),
        "{warnings:?}"
    );
}

#[test]
fn flows_need_an_address_or_a_name_and_a_port_for_tcp() {
    let error = serde_json::from_value::<Flow>(json!({"direction": "egress", "protocol": "tcp"}))
        .expect_err("refused")
        .to_string();
    assert!(error.contains("needs ip, domain or both"), "{error}");
    assert!(
        error.contains("port: required for protocols tcp and udp"),
        "{error}"
    );
    let error = serde_json::from_value::<Flow>(
        json!({"direction": "egress", "protocol": "icmp", "port": 1, "ip": "x"}),
    )
    .expect_err("refused")
    .to_string();
    assert!(
        error.contains("port: not allowed for protocol icmp"),
        "{error}"
    );
    assert!(error.contains("ip: `x` is not an IP address"), "{error}");
}
