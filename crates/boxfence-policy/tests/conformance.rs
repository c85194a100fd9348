//! Runs every vector of `shared/conformance/vectors.json` against
//! `evaluate`, naming each vector that fails.

use std::collections::BTreeMap;
use std::sync::Arc;

use boxfence_policy::{
    AlwaysBlocked, AppPolicy, BoxPolicy, Cidr, EffectivePolicy, Flow, Machine, evaluate,
};
use serde::Deserialize;

/// The vectors live beside the project, in the shared folder; a copy is
/// kept in the repository so a clean clone tests without it.
const VECTORS: &str = include_str!("data/vectors.json");

#[derive(Deserialize)]
struct File {
    format: u32,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    machine: VectorMachine,
    app_policies: Vec<AppPolicy>,
    #[serde(default)]
    operator_exempt_cidrs: Vec<Cidr>,
    flow: Flow,
    expect: String,
    layer: Option<String>,
}

#[derive(Deserialize)]
struct VectorMachine {
    id: String,
    metadata: BTreeMap<String, String>,
    network_policy: BoxPolicy,
}

#[test]
fn every_conformance_vector_passes() {
    let file: File = serde_json::from_str(VECTORS).expect("vectors.json parses");
    assert_eq!(file.format, 1, "unknown vectors format");
    assert!(file.vectors.len() >= 81, "vectors went missing");
    let mut failures = Vec::new();
    for vector in &file.vectors {
        let blocked = AlwaysBlocked::with_exemptions(&vector.operator_exempt_cidrs, &[])
            .expect("exemptions are valid");
        let machine = Machine {
            id: vector.machine.id.clone(),
            metadata: vector.machine.metadata.clone(),
            network_policy: vector.machine.network_policy.clone(),
            addresses: Vec::new(),
        };
        let policy =
            EffectivePolicy::from_policies(&machine, &vector.app_policies, Arc::new(blocked));
        let verdict = evaluate(&policy, &vector.flow);
        let got = if verdict.allowed() { "allow" } else { "deny" };
        let got_layer = verdict.denied_by().map(|layer| layer.as_str());
        if got != vector.expect || got_layer != vector.layer.as_deref() {
            failures.push(format!(
                "{}: expected {} {:?}, got {got} {got_layer:?} ({})",
                vector.name,
                vector.expect,
                vector.layer,
                serde_json::to_string(&verdict).unwrap_or_default()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_vendored_vectors_match_the_shared_ones_when_present() {
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/vectors.json"
    );
    if let Ok(text) = std::fs::read_to_string(shared) {
        assert_eq!(
            text, VECTORS,
            "tests/data/vectors.json is stale: copy {shared} over it"
        );
    }
}
