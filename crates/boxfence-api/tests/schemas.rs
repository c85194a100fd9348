//! Every schema of the document builds.

use boxfence_policy::{AppPolicy, BoxPolicy, Flow, MachineRef, PortRule, Protocol, Rule, Selector};
use utoipa::PartialSchema;

#[test]
fn every_policy_schema_builds() {
    for schema in [
        BoxPolicy::schema(),
        AppPolicy::schema(),
        Selector::schema(),
        MachineRef::schema(),
        Rule::schema(),
        PortRule::schema(),
        Flow::schema(),
        Protocol::schema(),
        boxfence_api::MetadataPatch::schema(),
    ] {
        assert!(serde_json::to_value(schema).is_ok());
    }
}
