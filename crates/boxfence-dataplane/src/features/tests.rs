use std::collections::BTreeMap;

use super::*;
use crate::testing::running_as_root;

fn with(found: &[(Feature, Presence)]) -> KernelFeatures {
    let mut all: BTreeMap<Feature, Presence> = Feature::ALL
        .into_iter()
        .map(|f| (f, Presence::Found))
        .collect();
    all.extend(found.iter().cloned());
    KernelFeatures::new("6.1.0-test", all)
}

#[test]
fn a_kernel_with_everything_takes_the_direct_paths() {
    let paths = with(&[]).paths();
    assert_eq!(
        paths,
        Paths {
            box_link: BoxLinkPath::SideBySide,
            removal: RemovalMode::Destroy,
            refresh: RefreshMode::InPlace,
            forwarding: FastPath::Flowtable,
        }
    );
    assert!(paths.describe().iter().all(|(_, _, fallback)| !fallback));
}

#[test]
fn each_missing_or_avoided_feature_takes_its_fallback() {
    let missing = Presence::Missing("EINVAL".into());
    let features = with(&[
        (Feature::HookBeforeDevice, missing.clone()),
        (Feature::DestroyElement, Presence::Avoided),
        (Feature::ElementTimeoutUpdate, missing.clone()),
        (Feature::Flowtable, missing),
    ]);
    assert_eq!(
        features.paths(),
        Paths {
            box_link: BoxLinkPath::LinkFirst,
            removal: RemovalMode::DeleteEach,
            refresh: RefreshMode::DeleteAndAdd,
            forwarding: FastPath::Hooks,
        }
    );
    assert!(features.paths().links_before_table());
    assert!(features.require().is_ok(), "optional features only");
}

#[test]
fn a_missing_required_feature_is_named_with_why_and_since_when() {
    let features = with(&[(
        Feature::InetIngress,
        Presence::Missing("Operation not supported".into()),
    )]);
    let error = features.require().expect_err("inet ingress is required");
    assert_eq!(error.feature, Feature::InetIngress);
    let text = error.to_string();
    for part in [
        "inet_ingress",
        "anti-spoofing",
        "Linux 5.10",
        "6.1.0-test",
        "Operation not supported",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
}

#[test]
fn a_required_feature_cannot_be_avoided() {
    let features = with(&[(Feature::Nflog, Presence::Avoided)]);
    let error = features.require().expect_err("nflog is required");
    assert_eq!(error.feature, Feature::Nflog);
    assert!(error.to_string().contains("avoided by the configuration"));
}

#[test]
fn names_round_trip() {
    for feature in Feature::ALL {
        assert_eq!(Feature::from_name(feature.name()), Some(feature));
    }
    assert_eq!(Feature::from_name("warp_drive"), None);
}

/// Only the flowtable decides whether links go first on a kernel that
/// hooks chains before their devices.
#[test]
fn a_flowtable_needs_its_links_before_the_table() {
    let without = with(&[(Feature::Flowtable, Presence::Avoided)]).paths();
    assert!(!without.links_before_table());
    assert!(with(&[]).paths().links_before_table());
}

/// This kernel (6.18) has every feature the probe tries but the
/// flowtable, which it has exactly when `nf_flow_table` is there (the
/// probe loads the module where it is one); the switch that avoids them
/// is honoured.
#[test]
fn kernel_probe_finds_this_kernels_features() {
    if !running_as_root("kernel_probe_finds_this_kernels_features") {
        return;
    }
    let features = KernelFeatures::probe(&[]).expect("probe runs");
    let flowtables = std::path::Path::new("/sys/module/nf_flow_table").exists();
    assert_eq!(
        features.has(Feature::Flowtable),
        flowtables,
        "nf_flow_table there: {flowtables}; {features:?}"
    );
    for feature in Feature::ALL
        .into_iter()
        .filter(|f| *f != Feature::Flowtable)
    {
        assert_eq!(
            features.found.get(&feature),
            Some(&Presence::Found),
            "{feature}: {features:?}"
        );
    }
    assert!(features.require().is_ok());
    let avoided = KernelFeatures::probe(&[Feature::DestroyElement]).expect("probe runs");
    assert_eq!(
        avoided.found.get(&Feature::DestroyElement),
        Some(&Presence::Avoided)
    );
    assert_eq!(avoided.paths().removal, RemovalMode::DeleteEach);
}
