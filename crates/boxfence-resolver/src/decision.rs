//! Whether a box may resolve a name, and which kernel sets an answer's
//! addresses go to. The policy core decides; this only reads its verdict
//! and the rules whose patterns matched.

use boxfence_policy::{BoxLayer, Direction, DomainName, EffectivePolicy, evaluate_name};

/// Where the addresses of an allowed answer are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LearnTarget {
    /// The box layer's learned set (its `allowedDomains` matched).
    Box,
    /// The learned set of one egress rule of an app policy (its `domains`
    /// matched), keyed by box.
    AppRule {
        /// The policy's fingerprint (names its kernel objects).
        fingerprint: u64,
        /// The rule's index in the policy.
        rule_index: usize,
    },
}

/// The resolver's decision on one name for one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameDecision {
    /// Forward upstream; learn the answer into these sets (none: the
    /// layers allow any destination, nothing to authorise).
    Answer(Vec<LearnTarget>),
    /// Refuse locally with this reason; nothing goes upstream.
    Refuse(String),
}

/// Decides `name` (canonical) for the box of `policy`.
pub fn decide(policy: &EffectivePolicy, name: &str) -> NameDecision {
    // Escaped dots or empty labels (`a\.b.example`, `x..b.example`) are
    // no host names: refused before any pattern could match them.
    if name.parse::<DomainName>().is_err() {
        return NameDecision::Refuse(format!("`{name}` is not a valid host name"));
    }
    let verdict = evaluate_name(policy, name);
    if !verdict.allowed() {
        let reason = verdict
            .deciding()
            .map(|f| f.reason.to_string())
            .unwrap_or_default();
        return NameDecision::Refuse(reason);
    }
    let mut targets = Vec::new();
    if let BoxLayer::Custom(custom) = &policy.box_layer
        && custom.default_deny()
        && custom.allowed_domains.lookup(name).is_some()
    {
        targets.push(LearnTarget::Box);
    }
    for (app_policy, rule) in policy.app_rules(Direction::Egress) {
        let matched = rule
            .peers
            .as_ref()
            .is_some_and(|peers| peers.domains.lookup(name).is_some());
        if matched {
            targets.push(LearnTarget::AppRule {
                fingerprint: app_policy.fingerprint,
                rule_index: rule.index,
            });
        }
    }
    NameDecision::Answer(targets)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use boxfence_policy::{AlwaysBlocked, AppPolicy, BoxPolicy, Machine};
    use serde_json::json;

    use super::*;

    fn policy(box_policy: serde_json::Value, rules: serde_json::Value) -> EffectivePolicy {
        let machine = Machine {
            id: "m1".into(),
            network_policy: BoxPolicy::from_json(&box_policy).expect("box policy"),
            ..Machine::default()
        };
        let app =
            AppPolicy::from_json(&json!({"name": "p", "selector": {"all": true}, "rules": rules}))
                .expect("policy");
        EffectivePolicy::from_policies(&machine, &[app], Arc::new(AlwaysBlocked::default()))
    }

    #[test]
    fn names_are_refused_with_the_deciding_reason() {
        let p = policy(
            json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
            json!([]),
        );
        assert_eq!(
            decide(&p, "api.github.com"),
            NameDecision::Answer(vec![LearnTarget::Box])
        );
        assert_eq!(
            decide(&p, "evil.example"),
            NameDecision::Refuse("box policy custom: not in allowedDomains/allowedCidrs".into())
        );
        let wildcard = policy(
            json!({"mode": "custom", "allowedDomains": ["*.github.com"]}),
            json!([]),
        );
        for bad in ["x..github.com", "a\\.github.com", "a b.github.com", ""] {
            assert!(
                matches!(decide(&wildcard, bad), NameDecision::Refuse(_)),
                "{bad:?}"
            );
        }
        let offline = policy(json!({"mode": "deny-all"}), json!([]));
        assert_eq!(
            decide(&offline, "api.github.com"),
            NameDecision::Refuse("box policy deny-all".into())
        );
    }

    #[test]
    fn answers_are_learned_only_where_patterns_matched() {
        let rules = json!([
            {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 443}], "domains": ["api.github.com"]},
            {"action": "allow", "direction": "egress", "ports": [{"protocol": "udp", "port": 53}]}
        ]);
        let p = policy(json!({"mode": "allow-all"}), rules);
        let NameDecision::Answer(targets) = decide(&p, "api.github.com") else {
            panic!("answered")
        };
        assert!(
            matches!(targets[..], [LearnTarget::AppRule { rule_index: 0, .. }]),
            "{targets:?}"
        );
        assert_eq!(
            decide(&p, "other.example"),
            NameDecision::Answer(vec![]),
            "a rule without peers answers any name"
        );
    }
}
