use super::*;
use crate::testing::running_as_root;

fn with(found: &[(Feature, Presence)]) -> KernelFeatures {
    KernelFeatures::found_except("6.1.0-test", found)
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
            queue: QueueBy::Expression,
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
        (Feature::Flowtable, missing.clone()),
        (Feature::QueueExpression, missing),
    ]);
    assert_eq!(
        features.paths(),
        Paths {
            box_link: BoxLinkPath::LinkFirst,
            removal: RemovalMode::DeleteEach,
            refresh: RefreshMode::DeleteAndAdd,
            forwarding: FastPath::Hooks,
            queue: QueueBy::XtTarget,
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
fn nfqueue_is_required_only_with_name_checks() {
    let features = with(&[(
        Feature::Nfqueue,
        Presence::Missing("No such file or directory".into()),
    )]);
    assert!(features.require().is_ok(), "name checks off: not needed");
    let error = features
        .require_for_name_check()
        .expect_err("name checks need it");
    assert_eq!(error.feature, Feature::Nfqueue);
    let text = error.to_string();
    for part in [
        "nfqueue",
        "TLS SNI",
        "name_check = \"off\"",
        "No such file or directory",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    assert!(with(&[]).require_for_name_check().is_ok());
}

/// Either way of queueing will do; with neither, the preferred one is
/// named, with both kernels' answers.
#[test]
fn name_checks_need_one_way_to_queue() {
    let missing = |answer: &str| Presence::Missing(answer.into());
    let by_target = with(&[(Feature::QueueExpression, missing("ENOENT"))]);
    assert!(by_target.require_for_name_check().is_ok());
    assert_eq!(by_target.paths().queue, QueueBy::XtTarget);
    let by_expression = with(&[(Feature::QueueTarget, Presence::Avoided)]);
    assert!(by_expression.require_for_name_check().is_ok());
    assert_eq!(by_expression.paths().queue, QueueBy::Expression);

    let neither = with(&[
        (
            Feature::QueueExpression,
            missing("No such file or directory"),
        ),
        (Feature::QueueTarget, Presence::Avoided),
    ]);
    assert!(neither.require().is_ok(), "name checks off: not needed");
    let error = neither
        .require_for_name_check()
        .expect_err("name checks need a way");
    assert_eq!(error.feature, Feature::QueueExpression);
    let text = error.to_string();
    for part in [
        "queue_expression",
        "queue_target",
        "No such file or directory",
        "avoided by the configuration",
        "Linux 3.14",
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
fn mainline_has_a_feature_from_its_version_on() {
    let f = Feature::DestroyElement; // 6.3
    assert!(!f.mainline_has("5.10.0-32-amd64"));
    assert!(!f.mainline_has("6.1.0-50-amd64"));
    assert!(f.mainline_has("6.3.0"));
    assert!(f.mainline_has("6.12.117+deb13-amd64"));
    assert!(f.mainline_has("7.0.1"));
    assert!(Feature::Nflog.mainline_has("5.10.0-32-amd64"));
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

/// The probe finds what mainline added by this kernel's version and
/// nothing newer: every feature on the host (6.18), the required ones
/// alone on 5.10 and 6.1, all but the hook before its device on 6.12 (the
/// matrix, `scripts/test-kernels`, whose Debian kernels backport none of
/// these); the flowtable exactly when `nf_flow_table` is there (the probe
/// loads the module where it is one). Which ways of queueing a kernel has
/// is a choice of its build (the host lacks `nft_queue`; Debian's 5.10
/// refuses the xtables target in an `inet` table), but every kernel here
/// has one. The switch that avoids a feature is honoured.
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
    let built_in_or_not = [
        Feature::Flowtable,
        Feature::QueueExpression,
        Feature::QueueTarget,
    ];
    assert!(
        features.has(Feature::QueueExpression) || features.has(Feature::QueueTarget),
        "a way to queue: {features:?}"
    );
    for feature in Feature::ALL
        .into_iter()
        .filter(|f| !built_in_or_not.contains(f))
    {
        assert_eq!(
            features.found.get(&feature) == Some(&Presence::Found),
            feature.mainline_has(&features.release),
            "{feature} (since {}): {features:?}",
            feature.since()
        );
    }
    assert!(features.require().is_ok());
    let avoided = KernelFeatures::probe(&[Feature::DestroyElement]).expect("probe runs");
    // A feature the kernel lacks stays missing, with the kernel's answer.
    let destroy = avoided.found.get(&Feature::DestroyElement);
    if features.has(Feature::DestroyElement) {
        assert_eq!(destroy, Some(&Presence::Avoided));
    } else {
        assert!(matches!(destroy, Some(Presence::Missing(_))), "{destroy:?}");
    }
    assert_eq!(avoided.paths().removal, RemovalMode::DeleteEach);
}
