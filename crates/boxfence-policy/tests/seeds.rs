//! Every JSON example of both seed documents parses, copied verbatim (the
//! box seed's TypeScript object literals with their keys quoted as JSON).

use boxfence_policy::{AppPolicy, BoxPolicy, Direction, Rule, Selector};

fn app_policy(text: &str) -> AppPolicy {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

fn box_policy(text: &str) -> BoxPolicy {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("{error}\n{text}"))
}

#[test]
fn machines_seed_restricting_egress_to_http_and_https() {
    let policy = app_policy(
        r#"{
    "name": "specific-egress",
    "selector": {
      "all": true
    },
    "rules": [
      {
        "action": "allow",
        "direction": "egress",
        "ports": [
          { "protocol": "tcp", "port": 80 },
          { "protocol": "tcp", "port": 443 }
        ]
      }
    ]
  }"#,
    );
    assert_eq!(policy.name, "specific-egress");
    assert!(policy.selector.all);
    assert_eq!(policy.rules[0].ports.as_ref().map(Vec::len), Some(2));
}

#[test]
fn machines_seed_selector_all() {
    let selector: Selector = serde_json::from_str(r#"{ "all": true }"#).expect("parses");
    assert!(selector.all);
}

#[test]
fn machines_seed_selector_machine_ids() {
    let selector: Selector =
        serde_json::from_str(r#"{ "machines": [ { "id": "abc" }, { "id": "def" } ] }"#)
            .expect("parses");
    let ids: Vec<_> = selector.machines.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["abc", "def"]);
}

#[test]
fn machines_seed_selector_metadata() {
    let selector: Selector =
        serde_json::from_str(r#"{ "metadata": { "role": "web", "env": "production" } }"#)
            .expect("parses");
    assert_eq!(selector.metadata.len(), 2);
}

#[test]
fn machines_seed_rule_example() {
    let rule: Rule = serde_json::from_str(
        r#"{
  "action": "allow",
  "direction": "egress",
  "ports": [
    { "protocol": "tcp", "port": 443 }
  ]
}"#,
    )
    .expect("parses");
    assert_eq!(rule.direction, Direction::Egress);
}

#[test]
fn box_seed_default_allow_all() {
    assert_eq!(
        box_policy(r#"{ "mode": "allow-all" }"#),
        BoxPolicy::AllowAll
    );
}

#[test]
fn box_seed_create_with_domains() {
    let policy = box_policy(
        r#"{
    "mode": "custom",
    "allowedDomains": ["api.github.com", "registry.npmjs.org"]
  }"#,
    );
    let BoxPolicy::Custom(custom) = policy else {
        panic!("custom")
    };
    assert_eq!(custom.allowed_domains.len(), 2);
}

#[test]
fn box_seed_domains_and_cidrs() {
    let policy = box_policy(
        r#"{
    "mode": "custom",
    "allowedDomains": ["api.github.com", "*.githubusercontent.com"],
    "allowedCidrs": ["104.16.0.0/12"]
  }"#,
    );
    let BoxPolicy::Custom(custom) = policy else {
        panic!("custom")
    };
    assert_eq!(
        custom.allowed_domains[1].to_string(),
        "*.githubusercontent.com"
    );
    assert_eq!(custom.allowed_cidrs[0].to_string(), "104.16.0.0/12");
}

#[test]
fn box_seed_update_to_deny_all() {
    assert_eq!(box_policy(r#"{ "mode": "deny-all" }"#), BoxPolicy::DenyAll);
}

#[test]
fn box_seed_switch_back_to_allow_all() {
    assert_eq!(
        box_policy(r#"{ "mode": "allow-all" }"#),
        BoxPolicy::AllowAll
    );
}

#[test]
fn box_seed_allow_only_github_and_npm() {
    let policy = box_policy(
        r#"{
  "mode": "custom",
  "allowedDomains": ["github.com", "*.github.com", "registry.npmjs.org"]
}"#,
    );
    let BoxPolicy::Custom(custom) = policy else {
        panic!("custom")
    };
    assert_eq!(custom.allowed_domains.len(), 3);
}

#[test]
fn box_seed_block_all_outbound() {
    assert_eq!(box_policy(r#"{ "mode": "deny-all" }"#), BoxPolicy::DenyAll);
}

#[test]
fn box_seed_allow_a_public_cidr() {
    let policy = box_policy(
        r#"{
  "mode": "custom",
  "allowedCidrs": ["104.16.0.0/12"]
}"#,
    );
    assert!(matches!(policy, BoxPolicy::Custom(ref c) if c.allowed_cidrs.len() == 1));
}

#[test]
fn box_seed_block_a_cidr() {
    let policy = box_policy(
        r#"{
  "mode": "custom",
  "deniedCidrs": ["104.16.120.0/24"]
}"#,
    );
    assert!(matches!(policy, BoxPolicy::Custom(ref c) if c.denied_cidrs.len() == 1));
}

#[test]
fn serialized_policies_parse_back_to_the_same_value() {
    let text = r#"{"name":"p","selector":{"all":true,"metadata":{"a":"b"}},"rules":[
        {"action":"allow","direction":"egress","ports":[{"protocol":"tcp","port":8000,"end_port":8100},{"protocol":"icmp"}],
         "cidrs":["151.101.0.0/16"],"domains":["*.GitHub.com."]}]}"#;
    let policy = app_policy(text);
    let again = app_policy(&serde_json::to_string(&policy).expect("serializes"));
    assert_eq!(policy, again);
    assert_eq!(
        policy.rules[0].domains[0].to_string(),
        "*.github.com",
        "stored lowercase, no trailing dot"
    );
    let custom = box_policy(
        r#"{"mode":"custom","allowedDomains":["bücher.example"],"deniedCidrs":["2001:db8::/32"]}"#,
    );
    let json = serde_json::to_string(&custom).expect("serializes");
    assert_eq!(
        json,
        r#"{"mode":"custom","allowedDomains":["xn--bcher-kva.example"],"deniedCidrs":["2001:db8::/32"]}"#
    );
    assert_eq!(box_policy(&json), custom);
}
