//! One table test per rule of DESIGN.md section 1, named after the rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use boxfence_policy::{
    AlwaysBlocked, AppPolicy, BoxPolicy, Cidr, EffectivePolicy, ExemptionError, Flow, Layer,
    Machine, Reason, evaluate, evaluate_name,
};
use serde_json::{Value, json};

/// A machine `m1` with `metadata`, `box_policy`, and the app's `policies`.
struct Case {
    machine: Machine,
    policies: Vec<AppPolicy>,
    blocked: AlwaysBlocked,
}

impl Case {
    fn new(box_policy: Value, policies: &[Value]) -> Self {
        Self {
            machine: Machine {
                id: "m1".into(),
                metadata: BTreeMap::new(),
                network_policy: BoxPolicy::from_json(&box_policy).expect("valid box policy"),
                addresses: vec![
                    "10.200.0.2".parse().expect("ip"),
                    "fd00:b0f::2".parse().expect("ip"),
                ],
            },
            policies: policies
                .iter()
                .map(|p| AppPolicy::from_json(p).expect("valid app policy"))
                .collect(),
            blocked: AlwaysBlocked::default(),
        }
    }

    fn metadata(mut self, pairs: &[(&str, &str)]) -> Self {
        self.machine.metadata = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        self
    }

    fn exempt(mut self, cidrs: &[&str]) -> Self {
        let cidrs: Vec<Cidr> = cidrs.iter().map(|c| c.parse().expect("cidr")).collect();
        self.blocked = AlwaysBlocked::with_exemptions(&cidrs, &[]).expect("valid exemptions");
        self
    }

    fn effective(&self) -> EffectivePolicy {
        EffectivePolicy::from_policies(
            &self.machine,
            &self.policies,
            Arc::new(self.blocked.clone()),
        )
    }

    /// `(allowed, denying layer)` for each flow.
    fn decide(&self, flow: Value) -> (bool, Option<Layer>) {
        let flow: Flow = serde_json::from_value(flow).expect("valid flow");
        let policy = self.effective();
        let verdict = evaluate(&policy, &flow);
        (verdict.allowed(), verdict.denied_by())
    }

    fn assert_flows(&self, table: &[(Value, Option<Layer>)]) {
        for (flow, expected_denial) in table {
            let (allowed, layer) = self.decide(flow.clone());
            assert_eq!(layer, *expected_denial, "flow {flow}");
            assert_eq!(allowed, expected_denial.is_none(), "flow {flow}");
        }
    }
}

const ALLOWED: Option<Layer> = None;
const BY_APP: Option<Layer> = Some(Layer::AppPolicy);
const BY_BOX: Option<Layer> = Some(Layer::BoxPolicy);
const BY_BLOCKED: Option<Layer> = Some(Layer::AlwaysBlocked);

fn egress(protocol: &str, port: u16, ip: &str) -> Value {
    json!({"direction": "egress", "protocol": protocol, "port": port, "ip": ip})
}

fn ingress(port: u16, ip: &str) -> Value {
    json!({"direction": "ingress", "protocol": "tcp", "port": port, "ip": ip})
}

fn to_name(port: u16, domain: &str) -> Value {
    json!({"direction": "egress", "protocol": "tcp", "port": port, "domain": domain})
}

fn policy(name: &str, selector: Value, rules: Value) -> Value {
    json!({"name": name, "selector": selector, "rules": rules})
}

fn egress_ports(ports: &[u16]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({"protocol": "tcp", "port": p}))
        .collect();
    json!([{"action": "allow", "direction": "egress", "ports": ports}])
}

const ALLOW_ALL: fn() -> Value = || json!({"mode": "allow-all"});

#[test]
fn rule_1_2_selector_all_matches_every_machine() {
    Case::new(
        ALLOW_ALL(),
        &[policy("p", json!({"all": true}), egress_ports(&[443]))],
    )
    .assert_flows(&[(egress("tcp", 80, "93.184.215.14"), BY_APP)]);
}

#[test]
fn rule_1_2_selector_machines_matches_listed_ids_only() {
    let listed = policy(
        "p",
        json!({"machines": [{"id": "m1"}]}),
        egress_ports(&[443]),
    );
    let other = policy(
        "q",
        json!({"machines": [{"id": "m2"}]}),
        egress_ports(&[443]),
    );
    Case::new(ALLOW_ALL(), &[listed]).assert_flows(&[(egress("tcp", 80, "93.184.215.14"), BY_APP)]);
    Case::new(ALLOW_ALL(), &[other]).assert_flows(&[(egress("tcp", 80, "93.184.215.14"), ALLOWED)]);
}

#[test]
fn rule_1_2_metadata_selector_needs_every_pair() {
    let web_prod = policy(
        "p",
        json!({"metadata": {"role": "web", "env": "production"}}),
        egress_ports(&[443]),
    );
    let flow = egress("tcp", 80, "93.184.215.14");
    Case::new(ALLOW_ALL(), std::slice::from_ref(&web_prod))
        .metadata(&[("role", "web"), ("env", "production"), ("extra", "x")])
        .assert_flows(&[(flow.clone(), BY_APP)]);
    Case::new(ALLOW_ALL(), std::slice::from_ref(&web_prod))
        .metadata(&[("role", "web")])
        .assert_flows(&[(flow.clone(), ALLOWED)]);
    Case::new(ALLOW_ALL(), &[web_prod])
        .metadata(&[("role", "web"), ("env", "dev")])
        .assert_flows(&[(flow, ALLOWED)]);
}

#[test]
fn rule_1_2_selector_fields_combine_with_and() {
    let both = policy(
        "p",
        json!({"machines": [{"id": "m1"}], "metadata": {"role": "web"}}),
        egress_ports(&[443]),
    );
    let flow = egress("tcp", 80, "93.184.215.14");
    Case::new(ALLOW_ALL(), std::slice::from_ref(&both)).assert_flows(&[(flow.clone(), ALLOWED)]);
    Case::new(ALLOW_ALL(), &[both])
        .metadata(&[("role", "web")])
        .assert_flows(&[(flow, BY_APP)]);
}

#[test]
fn rule_1_3_two_policies_egress_rules_union() {
    let web = policy("web", json!({"all": true}), egress_ports(&[80, 443]));
    let dns = policy(
        "dns",
        json!({"all": true}),
        json!([{"action": "allow", "direction": "egress", "ports": [{"protocol": "udp", "port": 53}]}]),
    );
    Case::new(ALLOW_ALL(), &[web, dns]).assert_flows(&[
        (egress("tcp", 443, "93.184.215.14"), ALLOWED),
        (egress("udp", 53, "93.184.215.14"), ALLOWED),
        (egress("tcp", 53, "93.184.215.14"), BY_APP),
        (egress("udp", 443, "93.184.215.14"), BY_APP),
    ]);
}

#[test]
fn rule_1_3_a_policy_with_only_ingress_rules_leaves_egress_open() {
    let ssh_in = policy(
        "ssh",
        json!({"all": true}),
        json!([{"action": "allow", "direction": "ingress", "ports": [{"protocol": "tcp", "port": 22}]}]),
    );
    Case::new(ALLOW_ALL(), &[ssh_in]).assert_flows(&[
        (egress("udp", 9999, "93.184.215.14"), ALLOWED),
        (ingress(22, "93.184.215.14"), ALLOWED),
        (ingress(23, "93.184.215.14"), BY_APP),
    ]);
}

#[test]
fn rule_1_3_port_ranges_are_inclusive_and_icmp_has_no_port() {
    let rules = json!([{"action": "allow", "direction": "egress",
        "ports": [{"protocol": "tcp", "port": 8000, "end_port": 8100}, {"protocol": "icmp"}]}]);
    Case::new(ALLOW_ALL(), &[policy("p", json!({"all": true}), rules)]).assert_flows(&[
        (egress("tcp", 8000, "93.184.215.14"), ALLOWED),
        (egress("tcp", 8100, "93.184.215.14"), ALLOWED),
        (egress("tcp", 7999, "93.184.215.14"), BY_APP),
        (egress("udp", 8050, "93.184.215.14"), BY_APP),
        (
            json!({"direction": "egress", "protocol": "icmp", "ip": "93.184.215.14"}),
            ALLOWED,
        ),
    ]);
}

#[test]
fn rule_1_3_rule_peers_narrow_and_either_matches() {
    let rules = json!([{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}],
        "cidrs": ["151.101.0.0/16"], "domains": ["api.github.com"]}]);
    Case::new(ALLOW_ALL(), &[policy("p", json!({"all": true}), rules)]).assert_flows(&[
        (egress("tcp", 443, "151.101.3.4"), ALLOWED),
        (to_name(443, "api.github.com"), ALLOWED),
        (to_name(443, "github.com"), BY_APP),
        (egress("tcp", 443, "93.184.215.14"), BY_APP),
        (egress("tcp", 80, "151.101.3.4"), BY_APP),
    ]);
}

#[test]
fn rule_1_4_deny_all_takes_the_box_offline_both_ways() {
    let open_ingress = policy(
        "in",
        json!({"all": true}),
        json!([{"action": "allow", "direction": "ingress"}]),
    );
    let case = Case::new(json!({"mode": "deny-all"}), &[open_ingress]);
    case.assert_flows(&[
        (egress("tcp", 443, "93.184.215.14"), BY_BOX),
        (to_name(443, "api.github.com"), BY_BOX),
        (ingress(8080, "151.101.0.10"), BY_BOX),
    ]);
    let effective = case.effective();
    assert_eq!(
        evaluate_name(&effective, "api.github.com").denied_by(),
        BY_BOX,
        "DNS is refused"
    );
}

#[test]
fn rule_1_3_a_protocol_no_port_rule_names_is_allowed_only_where_every_protocol_is() {
    // UDP-Lite (136): no `ports` entry can name it; its flows carry no port.
    let udp_lite = |ip: &str| json!({"direction": "egress", "protocol": 136, "ip": ip});
    let server = "93.184.215.14";
    Case::new(ALLOW_ALL(), &[]).assert_flows(&[(udp_lite(server), ALLOWED)]);
    Case::new(
        ALLOW_ALL(),
        &[policy("p", json!({"all": true}), egress_ports(&[80, 443]))],
    )
    .assert_flows(&[(udp_lite(server), BY_APP)]);
    let any_protocol =
        json!([{"action": "allow", "direction": "egress", "cidrs": ["93.184.215.0/24"]}]);
    Case::new(
        ALLOW_ALL(),
        &[policy("p", json!({"all": true}), any_protocol)],
    )
    .assert_flows(&[(udp_lite(server), ALLOWED), (udp_lite("1.1.1.1"), BY_APP)]);
    Case::new(
        json!({"mode": "custom", "allowedCidrs": ["93.184.215.0/24"]}),
        &[],
    )
    .assert_flows(&[(udp_lite(server), ALLOWED), (udp_lite("1.1.1.1"), BY_BOX)]);
    Case::new(json!({"mode": "deny-all"}), &[]).assert_flows(&[(udp_lite(server), BY_BOX)]);
}

#[test]
fn rule_1_4_denied_cidrs_beat_allowed_cidrs_and_domains() {
    let case = Case::new(
        json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"], "allowedDomains": ["api.github.com"],
               "deniedCidrs": ["104.16.120.0/24"]}),
        &[],
    );
    case.assert_flows(&[
        (egress("tcp", 443, "104.16.120.5"), BY_BOX),
        (egress("tcp", 443, "104.17.0.5"), ALLOWED),
        (json!({"direction": "egress", "protocol": "tcp", "port": 443, "ip": "104.16.120.5", "domain": "api.github.com"}), BY_BOX),
    ]);
    let flow: Flow = serde_json::from_value(egress("tcp", 443, "104.16.120.5")).expect("flow");
    let effective = case.effective();
    let verdict = evaluate(&effective, &flow);
    let reason = verdict.deciding().map(|f| f.reason.to_string());
    assert_eq!(
        reason.as_deref(),
        Some("box policy custom: in deniedCidrs 104.16.120.0/24")
    );
}

#[test]
fn rule_1_4_only_denied_cidrs_custom_is_default_allow() {
    let case = Case::new(
        json!({"mode": "custom", "deniedCidrs": ["104.16.120.0/24"]}),
        &[],
    );
    case.assert_flows(&[
        (egress("tcp", 443, "104.17.0.5"), ALLOWED),
        (egress("tcp", 443, "104.16.120.9"), BY_BOX),
        (to_name(443, "anything.example"), ALLOWED),
    ]);
}

#[test]
fn rule_1_4_allow_lists_make_the_box_default_deny() {
    let case = Case::new(
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    case.assert_flows(&[
        (to_name(443, "api.github.com"), ALLOWED),
        (egress("tcp", 443, "140.82.112.6"), BY_BOX),
        (json!({"direction": "egress", "protocol": "tcp", "port": 443, "ip": "140.82.112.6", "domain": "api.github.com"}), ALLOWED),
        (ingress(8080, "151.101.0.10"), ALLOWED),
    ]);
}

#[test]
fn rule_1_4_wildcard_matches_any_depth_but_never_the_apex() {
    let case = Case::new(
        json!({"mode": "custom", "allowedDomains": ["*.github.com"]}),
        &[],
    );
    case.assert_flows(&[
        (to_name(443, "a.github.com"), ALLOWED),
        (to_name(443, "a.b.github.com"), ALLOWED),
        (to_name(443, "A.B.GitHub.COM."), ALLOWED),
        (to_name(443, "github.com"), BY_BOX),
        (to_name(443, "evilgithub.com"), BY_BOX),
        (to_name(443, "a.github.com.evil"), BY_BOX),
    ]);
}

#[test]
fn rule_1_5_private_ranges_are_denied_even_when_allowed() {
    let allow_everything = json!({"mode": "custom", "allowedCidrs": ["0.0.0.0/0", "::/0"]});
    let app_allows = policy(
        "p",
        json!({"all": true}),
        json!([{"action": "allow", "direction": "egress", "cidrs": ["0.0.0.0/0", "::/0"]}]),
    );
    let case = Case::new(allow_everything, &[app_allows]);
    case.assert_flows(&[
        (egress("tcp", 80, "169.254.169.254"), BY_BLOCKED),
        (egress("tcp", 80, "10.0.0.1"), BY_BLOCKED),
        (egress("tcp", 80, "::ffff:10.0.0.1"), BY_BLOCKED),
        (egress("tcp", 80, "64:ff9b::a00:1"), BY_BLOCKED),
        (egress("tcp", 80, "2001:0:a00:1::1"), BY_BLOCKED),
        (egress("udp", 53, "fd00:ec2::254"), BY_BLOCKED),
        (egress("tcp", 80, "104.16.1.1"), ALLOWED),
        (egress("tcp", 80, "2606:4700::1"), ALLOWED),
    ]);
    let flow: Flow = serde_json::from_value(egress("tcp", 80, "169.254.169.254")).expect("flow");
    let effective = case.effective();
    let verdict = evaluate(&effective, &flow);
    let Some(Reason::AlwaysBlocked { block }) = verdict.deciding().map(|f| f.reason) else {
        panic!("not always-blocked: {verdict:?}")
    };
    assert_eq!(block.cidr, "169.254.169.254/32");
}

#[test]
fn rule_1_5_operator_exemption_lifts_only_its_range() {
    let case = Case::new(
        json!({"mode": "custom", "allowedCidrs": ["0.0.0.0/0"]}),
        &[],
    )
    .exempt(&["198.51.100.0/24", "10.1.0.0/16"]);
    case.assert_flows(&[
        (egress("tcp", 80, "198.51.100.10"), ALLOWED),
        (egress("tcp", 80, "10.1.2.3"), ALLOWED),
        (egress("tcp", 80, "10.0.0.1"), BY_BLOCKED),
        (egress("tcp", 80, "203.0.113.10"), BY_BLOCKED),
    ]);
    let pool: Cidr = "10.200.0.0/16".parse().expect("cidr");
    let overlapping: Cidr = "10.0.0.0/8".parse().expect("cidr");
    assert!(matches!(
        AlwaysBlocked::with_exemptions(&[overlapping], &[pool]),
        Err(ExemptionError::OverlapsBoxPool { .. })
    ));
}

#[test]
fn rule_1_5_the_first_layer_that_denies_is_the_reason() {
    let only_443 = policy("p", json!({"all": true}), egress_ports(&[443]));
    let case = Case::new(
        json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}),
        &[only_443],
    );
    case.assert_flows(&[
        (egress("tcp", 8080, "10.0.0.1"), BY_BLOCKED),
        (egress("tcp", 443, "93.184.215.14"), BY_BOX),
        (egress("tcp", 8080, "104.16.1.1"), BY_APP),
        (egress("tcp", 443, "104.16.1.1"), ALLOWED),
    ]);
}

#[test]
fn rule_1_5_anti_spoofing_denies_a_foreign_source_first() {
    let case = Case::new(ALLOW_ALL(), &[]);
    case.assert_flows(&[
        (json!({"direction": "egress", "protocol": "tcp", "port": 80, "ip": "10.0.0.1", "source": "10.200.0.3"}), Some(Layer::AntiSpoof)),
        (json!({"direction": "egress", "protocol": "tcp", "port": 80, "ip": "93.184.215.14", "source": "fd00:b0f::2"}), ALLOWED),
    ]);
}

#[test]
fn rule_1_6_a_name_is_answered_iff_some_connection_to_it_could_be_allowed() {
    let github_443 = policy(
        "p",
        json!({"all": true}),
        json!([{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}], "domains": ["api.github.com"]},
               {"action": "allow", "direction": "egress", "cidrs": ["151.101.0.0/16"]}]),
    );
    let answers = |case: &Case, name: &str| evaluate_name(&case.effective(), name).allowed();
    let case = Case::new(ALLOW_ALL(), std::slice::from_ref(&github_443));
    assert!(answers(&case, "api.github.com"));
    assert!(
        !answers(&case, "evil.example"),
        "a rule with only cidrs answers no names"
    );

    let ports_only = policy("q", json!({"all": true}), egress_ports(&[443]));
    assert!(
        answers(&Case::new(ALLOW_ALL(), &[ports_only]), "evil.example"),
        "a rule without peers answers any name"
    );
    assert!(answers(&Case::new(ALLOW_ALL(), &[]), "evil.example"));

    let cidrs_only = Case::new(
        json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}),
        &[],
    );
    assert!(
        !answers(&cidrs_only, "cdn.example"),
        "allowedCidrs alone resolve no names"
    );
    let domains = Case::new(
        json!({"mode": "custom", "allowedDomains": ["*.npmjs.org"]}),
        &[github_443],
    );
    assert!(
        !answers(&domains, "registry.npmjs.org"),
        "box allows it but no app rule does"
    );
}

#[test]
fn rule_1_8_a_verdict_names_the_policy_and_rule_that_decided() {
    let rules = json!([{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 80}]},
                       {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}], "domains": ["api.github.com"]}]);
    let mut named = policy("web", json!({"all": true}), rules);
    named["id"] = json!("pol1");
    let case = Case::new(
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[named],
    );
    let effective = case.effective();
    let flow: Flow = serde_json::from_value(to_name(443, "api.github.com")).expect("flow");
    let verdict = evaluate(&effective, &flow);
    let Some(Reason::RuleMatched {
        policy_id,
        policy_name,
        rule_index,
        ..
    }) = verdict.deciding().map(|f| f.reason)
    else {
        panic!("{verdict:?}")
    };
    assert_eq!(
        (policy_id, policy_name, rule_index),
        (Some("pol1"), "web", 1)
    );
    let json = serde_json::to_value(verdict).expect("serializes");
    assert_eq!(json["verdict"], "allow");
    assert_eq!(json["findings"][0]["layer"], "box_policy");
    assert_eq!(json["findings"][1]["reason"]["policy_name"], "web");
    assert_eq!(
        json["name_check"],
        "name check: TLS SNI or HTTP Host must match api.github.com and api.github.com",
        "checked names close the CDN gap: {json}"
    );
    assert!(json.get("caveats").is_none(), "{json}");
    let unchecked = effective.clone().with_name_check(false);
    let json = serde_json::to_value(evaluate(&unchecked, &flow)).expect("serializes");
    assert!(json.get("name_check").is_none(), "{json}");
    assert!(
        json["caveats"][0]
            .as_str()
            .is_some_and(|c| c.contains("CDN")),
        "{json}"
    );

    let denied: Flow = serde_json::from_value(egress("udp", 53, "93.184.215.14")).expect("flow");
    let json = serde_json::to_value(evaluate(&effective, &denied)).expect("serializes");
    assert_eq!(json["verdict"], "deny");
    assert_eq!(json["layer"], "box_policy");
    assert_eq!(
        json["reason"],
        "box policy custom: not in allowedDomains/allowedCidrs"
    );
}
