//! Name checks (issue 19): the name a domain-authorised TCP flow claims
//! (TLS SNI, HTTP Host) is judged by the layers that authorised its
//! address; CIDR-authorised flows are never checked; HTTP/3 to a
//! domain-authorised address is refused.

use std::sync::Arc;

use boxfence_policy::{
    AlwaysBlocked, AppPolicy, BoxPolicy, Claim, EffectivePolicy, Flow, Layer, Machine, Reason,
    check_name, evaluate, refusal,
};
use serde_json::{Value, json};

fn effective(box_policy: Value, rules: Value) -> EffectivePolicy {
    let machine = Machine {
        id: "m1".into(),
        metadata: Default::default(),
        network_policy: BoxPolicy::from_json(&box_policy).expect("box policy"),
        addresses: vec!["10.200.0.2".parse().expect("ip")],
    };
    let policies: Vec<AppPolicy> = match rules {
        Value::Null => Vec::new(),
        rules => vec![
            AppPolicy::from_json(
                &json!({"name": "web", "selector": {"all": true}, "rules": rules}),
            )
            .expect("app policy"),
        ],
    };
    EffectivePolicy::from_policies(&machine, &policies, Arc::new(AlwaysBlocked::default()))
}

fn flow(protocol: &str, port: u16, ip: &str, domain: Option<&str>) -> Flow {
    let mut value = json!({"direction": "egress", "protocol": protocol, "port": port, "ip": ip});
    if let Some(domain) = domain {
        value["domain"] = json!(domain);
    }
    serde_json::from_value(value).expect("flow")
}

const CDN: &str = "104.16.1.5";

#[test]
fn a_claimed_name_passes_only_where_the_box_layer_allows_it() {
    let policy = effective(
        json!({"mode": "custom", "allowedDomains": ["registry.npmjs.org", "*.githubusercontent.com"]}),
        Value::Null,
    );
    let to_cdn = flow("tcp", 443, CDN, None);
    for (claim, allowed) in [
        (Claim::Sni("registry.npmjs.org"), true),
        (Claim::Sni("REGISTRY.npmjs.org."), true),
        (Claim::Host("raw.githubusercontent.com"), true),
        (Claim::Sni("githubusercontent.com"), false),
        (Claim::Sni("evil.example"), false),
        (Claim::Host("evil.example"), false),
        (Claim::Sni("not a name"), false),
        (Claim::NoSni, false),
        (Claim::Unrecognised, false),
    ] {
        let check = check_name(&policy, &to_cdn, claim);
        assert_eq!(check.allowed(), allowed, "{claim:?}");
        let layer = if matches!(claim, Claim::Sni(_) | Claim::NoSni) {
            Layer::Sni
        } else {
            Layer::Host
        };
        assert_eq!(check.layer, layer, "{claim:?}");
        if !allowed {
            assert_eq!(check.verdict.denied_by(), Some(Layer::BoxPolicy));
        }
    }
    let check = check_name(&policy, &to_cdn, Claim::Sni("evil.example"));
    assert_eq!(
        refusal(Claim::Sni("evil.example"), &check),
        "TLS SNI evil.example is not allowed here: box policy custom: not in allowedDomains/allowedCidrs"
    );
}

#[test]
fn an_address_in_allowed_cidrs_needs_no_name() {
    let policy = effective(
        json!({"mode": "custom", "allowedDomains": ["registry.npmjs.org"], "allowedCidrs": ["104.16.0.0/12"]}),
        Value::Null,
    );
    let to_cdn = flow("tcp", 22, CDN, None);
    assert!(check_name(&policy, &to_cdn, Claim::Unrecognised).allowed());
    assert!(check_name(&policy, &to_cdn, Claim::Sni("evil.example")).allowed());
    let verdict = evaluate(&policy, &flow("tcp", 443, CDN, Some("registry.npmjs.org")));
    assert_eq!(verdict.required_names().count(), 0, "authorised by a CIDR");
}

#[test]
fn app_rule_domains_are_checked_per_port_and_rule() {
    let rules = json!([
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}], "domains": ["*.github.com"]},
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 80}], "domains": ["example.org"]},
        {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 8080}]}
    ]);
    let policy = effective(json!({"mode": "allow-all"}), rules);
    let https = flow("tcp", 443, CDN, None);
    assert!(check_name(&policy, &https, Claim::Sni("api.github.com")).allowed());
    let check = check_name(&policy, &https, Claim::Sni("example.org"));
    assert!(!check.allowed(), "example.org only on port 80");
    assert_eq!(check.verdict.denied_by(), Some(Layer::AppPolicy));
    assert!(
        check_name(
            &policy,
            &flow("tcp", 80, CDN, None),
            Claim::Host("example.org")
        )
        .allowed()
    );
    assert!(
        check_name(&policy, &flow("tcp", 8080, CDN, None), Claim::Unrecognised).allowed(),
        "a rule without peers authorises no name"
    );

    let verdict = evaluate(&policy, &flow("tcp", 443, CDN, Some("api.github.com")));
    let names: Vec<String> = verdict.required_names().map(|p| p.to_string()).collect();
    assert_eq!(names, ["*.github.com"]);
    let Some(Reason::RuleMatched { domain, .. }) = verdict.deciding().map(|f| f.reason) else {
        panic!("{verdict:?}")
    };
    assert_eq!(
        domain.map(ToString::to_string).as_deref(),
        Some("*.github.com")
    );
    let json = serde_json::to_value(verdict).expect("serializes");
    assert_eq!(
        json["name_check"],
        "name check: TLS SNI or HTTP Host must match *.github.com"
    );
}

#[test]
fn http3_to_a_domain_authorised_address_is_refused_while_names_are_checked() {
    let policy = effective(
        json!({"mode": "custom", "allowedDomains": ["api.github.com"], "allowedCidrs": ["104.17.0.0/16"]}),
        Value::Null,
    );
    let quic = flow("udp", 443, CDN, Some("api.github.com"));
    let verdict = evaluate(&policy, &quic);
    assert_eq!(verdict.denied_by(), Some(Layer::Sni));
    assert!(matches!(
        verdict.deciding().map(|f| f.reason),
        Some(Reason::QuicRefused)
    ));
    assert!(evaluate(&policy.clone().with_name_check(false), &quic).allowed());
    assert!(
        evaluate(
            &policy,
            &flow("udp", 443, "104.17.0.5", Some("api.github.com"))
        )
        .allowed(),
        "a CIDR-authorised address keeps HTTP/3"
    );
    assert!(evaluate(&policy, &flow("udp", 53, CDN, Some("api.github.com"))).allowed());
}
