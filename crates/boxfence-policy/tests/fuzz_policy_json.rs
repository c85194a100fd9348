//! Fuzz target for policy JSON, on the stable toolchain (bolero).
//!
//! Each input is parsed as an app policy, a box policy and a flow, both as
//! a whole document and spliced into templates of each (as a JSON string in
//! a field that takes a domain, a CIDR, an address or a metadata key, and as
//! raw text in a list), so random bytes reach the domain, CIDR and port
//! validators. Nothing may panic; a document that parses must serialize and
//! parse back to an equal value; what parses is compiled and evaluated.
//!
//! Under `cargo test` bolero runs a bounded random engine (one second by
//! default; `BOLERO_RANDOM_ITERATIONS=N` or `BOLERO_RANDOM_TEST_TIME_MS=N`
//! changes that). Coverage-guided with libFuzzer (needs the nightly
//! toolchain and `cargo install cargo-bolero`), from the workspace root;
//! cargo-bolero builds with `--profile fuzz`, which the environment defines:
//!
//! ```text
//! CARGO_PROFILE_FUZZ_INHERITS=release CARGO_PROFILE_FUZZ_CODEGEN_UNITS=1 \
//!     cargo +nightly bolero test -p boxfence-policy -T 5min fuzz_policy_json
//! ```
//!
//! The corpus and any crash land in `tests/__fuzz__/policy_json/`
//! (`corpus/`, `crashes/`); plain `cargo test` replays every file there.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use boxfence_policy::{
    AlwaysBlocked, AppPolicy, BoxPolicy, Direction, EffectivePolicy, Flow, Machine, Protocol,
    evaluate, evaluate_name,
};
use serde_json::Value;

/// Templates with a `@` where the input goes as a JSON string.
const STRING_TEMPLATES: [&str; 8] = [
    r#"{"name":"web","selector":{"all":true},"rules":[{"action":"allow","direction":"egress","domains":[@]}]}"#,
    r#"{"name":"web","selector":{"all":true},"rules":[{"action":"allow","direction":"ingress","cidrs":[@]}]}"#,
    r#"{"name":"web","selector":{"metadata":{@:"x"}},"rules":[]}"#,
    r#"{"mode":"custom","allowedDomains":[@]}"#,
    r#"{"mode":"custom","allowedCidrs":[@],"deniedCidrs":[@]}"#,
    r#"{"direction":"egress","protocol":"tcp","port":443,"domain":@}"#,
    r#"{"direction":"egress","protocol":"udp","port":53,"ip":@,"source":@}"#,
    r#"{"name":@,"id":@,"selector":{"machines":[{"id":@}]},"rules":[]}"#,
];

/// Templates with a `@` where the input goes as raw JSON text.
const RAW_TEMPLATES: [&str; 4] = [
    r#"{"name":"web","selector":{"all":true},"rules":[{"action":"allow","direction":"egress","ports":[@]}]}"#,
    r#"{"name":"web","selector":{"all":true},"rules":[@]}"#,
    r#"{"name":"web","selector":{@},"rules":[]}"#,
    r#"{"mode":"custom",@}"#,
];

#[test]
fn fuzz_policy_json() {
    bolero::check!().for_each(|input: &[u8]| {
        check_document(input);
        let text = String::from_utf8_lossy(input);
        let quoted = serde_json::to_string(&text).expect("a string serializes");
        for template in STRING_TEMPLATES {
            check_document(template.replace('@', &quoted).as_bytes());
        }
        for template in RAW_TEMPLATES {
            check_document(template.replace('@', &text).as_bytes());
        }
    });
}

/// Parses `bytes` as each document type and checks what must hold.
fn check_document(bytes: &[u8]) {
    if let Ok(policy) = serde_json::from_slice::<AppPolicy>(bytes) {
        let again: AppPolicy = serde_json::from_slice(&to_json(&policy))
            .unwrap_or_else(|e| panic!("{policy:?} does not read back: {e}"));
        assert_eq!(again, policy, "app policy changed in a round trip");
        let _ = policy.warnings(&blocked());
        exercise_app_policy(policy);
    }
    if let Ok(policy) = serde_json::from_slice::<BoxPolicy>(bytes) {
        let again: BoxPolicy = serde_json::from_slice(&to_json(&policy))
            .unwrap_or_else(|e| panic!("{policy:?} does not read back: {e}"));
        assert_eq!(again, policy, "box policy changed in a round trip");
        let _ = policy.warnings(&blocked());
        exercise_box_policy(policy);
    }
    if let Ok(flow) = serde_json::from_slice::<Flow>(bytes) {
        let again: Flow = serde_json::from_slice(&to_json(&flow))
            .unwrap_or_else(|e| panic!("{flow:?} does not read back: {e}"));
        assert_eq!(again, flow, "flow changed in a round trip");
        for policy in sample_policies() {
            let _ = serde_json::to_string(&evaluate(policy, &flow)).expect("verdict serializes");
            if let Some(name) = &flow.domain {
                let _ = evaluate_name(policy, name).allowed();
            }
        }
    }
    // The validating entry points agree with serde on every JSON value.
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        assert_eq!(
            AppPolicy::from_json(&value).ok(),
            serde_json::from_value::<AppPolicy>(value.clone()).ok()
        );
        assert_eq!(
            BoxPolicy::from_json(&value).ok(),
            serde_json::from_value::<BoxPolicy>(value).ok()
        );
    }
}

/// The default always-blocked table, built once.
fn blocked() -> Arc<AlwaysBlocked> {
    static BLOCKED: OnceLock<Arc<AlwaysBlocked>> = OnceLock::new();
    BLOCKED.get_or_init(Arc::default).clone()
}

fn to_json(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("a parsed document serializes")
}

fn machine(network_policy: BoxPolicy) -> Machine {
    Machine {
        id: "m1".into(),
        metadata: BTreeMap::from([("env".into(), "prod".into())]),
        network_policy,
        addresses: vec!["10.200.0.2".parse().expect("address")],
    }
}

/// Flows that every compiled policy is asked about.
fn sample_flows() -> &'static [Flow] {
    static FLOWS: OnceLock<Vec<Flow>> = OnceLock::new();
    FLOWS.get_or_init(|| {
        let flow = |direction, protocol, port, ip: &str, domain: Option<&str>| Flow {
            direction,
            protocol,
            port,
            ip: Some(ip.parse().expect("address")),
            domain: domain.map(str::to_owned),
            source: None,
        };
        vec![
            flow(
                Direction::Egress,
                Protocol::Tcp,
                Some(443),
                "8.8.8.8",
                Some("api.github.com"),
            ),
            flow(
                Direction::Egress,
                Protocol::Udp,
                Some(53),
                "2606:4700::1111",
                None,
            ),
            flow(
                Direction::Egress,
                Protocol::Icmp,
                None,
                "10.0.0.1",
                Some("a.b.example"),
            ),
            flow(Direction::Ingress, Protocol::Tcp, Some(22), "1.1.1.1", None),
        ]
    })
}

/// Effective policies that parsed flows are evaluated against.
fn sample_policies() -> &'static [EffectivePolicy] {
    static POLICIES: OnceLock<Vec<EffectivePolicy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let app: AppPolicy = serde_json::from_str(
            r#"{"name":"web","selector":{"all":true},"rules":[
                {"action":"allow","direction":"egress","ports":[{"protocol":"tcp","port":443}],
                 "domains":["*.github.com"],"cidrs":["8.8.0.0/16"]},
                {"action":"allow","direction":"ingress","ports":[{"protocol":"tcp","port":22}]}]}"#,
        )
        .expect("sample app policy");
        let custom: BoxPolicy = serde_json::from_str(
            r#"{"mode":"custom","allowedDomains":["*.github.com","example.com"],
                "allowedCidrs":["2606:4700::/32"],"deniedCidrs":["8.8.4.0/24"]}"#,
        )
        .expect("sample box policy");
        [BoxPolicy::AllowAll, BoxPolicy::DenyAll, custom]
            .into_iter()
            .map(|box_policy| {
                EffectivePolicy::from_policies(
                    &machine(box_policy),
                    std::slice::from_ref(&app),
                    blocked(),
                )
            })
            .collect()
    })
}

fn exercise_app_policy(policy: AppPolicy) {
    let effective =
        EffectivePolicy::from_policies(&machine(BoxPolicy::AllowAll), &[policy], blocked());
    exercise(&effective);
}

fn exercise_box_policy(policy: BoxPolicy) {
    let effective = EffectivePolicy::from_policies(&machine(policy), &[], blocked());
    exercise(&effective);
}

fn exercise(effective: &EffectivePolicy) {
    for flow in sample_flows() {
        let _ = serde_json::to_string(&evaluate(effective, flow)).expect("verdict serializes");
    }
    for name in [
        "api.github.com",
        "GITHUB.com.",
        "xn--bcher-kva.de",
        "bücher.de",
    ] {
        let _ = evaluate_name(effective, name).allowed();
    }
}
