//! Every conformance vector through the evaluate endpoint: one app and
//! one machine per vector, the vector's machine ids mapped onto the ids
//! the daemon generated (ids of other machines onto ids no machine has),
//! and one daemon per set of operator exemptions.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Daemon, Options};

/// The policy core keeps a copy of the shared vectors (and checks that it
/// is current).
const VECTORS: &str = include_str!("../../../boxfence-policy/tests/data/vectors.json");

fn map_selector_ids(policy: &mut Value, own: &str, real: &str) {
    let Some(machines) = policy["selector"]["machines"].as_array_mut() else {
        return;
    };
    for machine in machines {
        let id = machine["id"].as_str().unwrap_or_default();
        // Another machine's id: twelve characters no generated id has
        // collided with in this daemon (checked below).
        let mapped = if id == own {
            real.to_owned()
        } else {
            format!("{:z<12}", id.to_lowercase())
        };
        machine["id"] = json!(mapped);
    }
}

#[tokio::test]
async fn every_conformance_vector_passes_through_the_api() {
    let file: Value = serde_json::from_str(VECTORS).expect("vectors parse");
    let vectors = file["vectors"].as_array().expect("vectors");
    let mut by_exemptions: BTreeMap<String, Vec<(usize, &Value)>> = BTreeMap::new();
    for (index, vector) in vectors.iter().enumerate() {
        let key = vector
            .get("operator_exempt_cidrs")
            .map_or_else(String::new, Value::to_string);
        by_exemptions.entry(key).or_default().push((index, vector));
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for (key, group) in by_exemptions {
        let exempt = if key.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&key).expect("exemptions")
        };
        let daemon = Daemon::start_with(Options {
            exempt,
            ..Options::default()
        })
        .await;
        for (index, vector) in group {
            let app = format!("v{index}");
            daemon.create_app(&app).await;
            let machine = &vector["machine"];
            let real = daemon
                .create_machine(
                    &app,
                    json!({"config": {"metadata": machine["metadata"]},
                           "network_policy": machine["network_policy"]}),
                )
                .await;
            let own = machine["id"].as_str().expect("machine id");
            for policy in vector["app_policies"].as_array().expect("policies") {
                let mut policy = policy.clone();
                map_selector_ids(&mut policy, own, &real);
                let (status, body) = daemon
                    .call(
                        Method::POST,
                        &format!("/v1/apps/{app}/network_policies"),
                        Some(policy),
                    )
                    .await;
                assert!(status.is_success(), "{}: {body}", vector["name"]);
            }
            let (status, verdict) = daemon
                .call(
                    Method::POST,
                    &format!("/v1/apps/{app}/machines/{real}/network_policy/evaluate"),
                    Some(vector["flow"].clone()),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{}: {verdict}", vector["name"]);
            let expected_layer = vector.get("layer").cloned().unwrap_or(Value::Null);
            if verdict["verdict"] != vector["expect"] || verdict["layer"] != expected_layer {
                failures.push(format!(
                    "{}: expected {} {expected_layer}, got {verdict}",
                    vector["name"], vector["expect"]
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 81, "vectors went missing");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
