use boxfence_policy::{CgroupVersion, Forwarding};

use super::prerequisites::{cgroup_version, find_on, ipv4_defaults, ipv6_defaults};
use super::*;

fn kernel(found: &[(Feature, Presence)]) -> KernelFeatures {
    KernelFeatures::found_except("6.1.0-test", found)
}

fn uplink(name: &str, present: bool, up: bool) -> UplinkReport {
    UplinkReport {
        name: name.into(),
        present,
        up,
        default_route: true,
    }
}

fn host(uplinks: Vec<UplinkReport>) -> Prerequisites {
    with_uplinks(Some(uplinks))
}

fn with_uplinks(uplinks: Option<Vec<UplinkReport>>) -> Prerequisites {
    Prerequisites {
        kernel: "6.1.0-test".into(),
        forwarding: Forwarding {
            ipv4: Some(true),
            ipv6: None,
        },
        cgroup: CgroupVersion::V2,
        binaries: Vec::new(),
        uplinks,
    }
}

#[test]
fn a_kernel_with_every_feature_and_an_uplink_is_ok() {
    let report = assemble(Ok(&kernel(&[])), host(vec![uplink("eth0", true, true)]));
    assert!(report.ok, "{report:?}");
    assert!(report.problems.is_empty());
    let names: Vec<&str> = report.features.iter().map(|f| f.name.as_str()).collect();
    let all: Vec<&str> = Feature::ALL.into_iter().map(Feature::name).collect();
    assert_eq!(names, all, "every feature, in report order");
    assert!(
        report
            .features
            .iter()
            .all(|f| f.status == FeatureStatus::Found && f.answer.is_none())
    );
    let inet = &report.features[0];
    assert!(inet.required && inet.since == "5.10" && inet.purpose.contains("anti-spoofing"));
    assert_eq!(report.paths.len(), 5);
    assert!(report.paths.iter().all(|p| !p.fallback), "{report:?}");
}

#[test]
fn an_avoided_optional_feature_shows_and_its_part_takes_the_fallback() {
    let features = kernel(&[(Feature::DestroyElement, Presence::Avoided)]);
    let report = assemble(Ok(&features), host(vec![uplink("eth0", true, true)]));
    assert!(report.ok, "optional: {report:?}");
    let destroy = report
        .features
        .iter()
        .find(|f| f.name == "destroy_element")
        .expect("listed");
    assert_eq!(
        (destroy.status, destroy.required),
        (FeatureStatus::Avoided, false)
    );
    let fallbacks: Vec<&str> = report
        .paths
        .iter()
        .filter(|p| p.fallback)
        .map(|p| p.part.as_str())
        .collect();
    assert_eq!(fallbacks, ["learned address removal"]);
}

#[test]
fn a_missing_required_feature_is_a_problem_naming_it_why_and_since() {
    let features = kernel(&[(
        Feature::InetIngress,
        Presence::Missing("Operation not supported".into()),
    )]);
    let report = assemble(Ok(&features), host(vec![uplink("eth0", true, true)]));
    assert!(!report.ok);
    let inet = &report.features[0];
    assert_eq!(inet.status, FeatureStatus::Missing);
    assert_eq!(inet.answer.as_deref(), Some("Operation not supported"));
    let [problem] = report.problems.as_slice() else {
        panic!("one problem: {report:?}");
    };
    for part in [
        "inet_ingress",
        "anti-spoofing",
        "5.10",
        "Operation not supported",
    ] {
        assert!(problem.contains(part), "{part:?} in {problem}");
    }
}

#[test]
fn an_unprobed_kernel_is_a_problem_with_its_reason() {
    let report = assemble(
        Err("this daemon runs without a data plane"),
        host(vec![uplink("eth0", true, true)]),
    );
    assert!(!report.ok);
    assert!(report.features.is_empty() && report.paths.is_empty());
    assert!(
        report.problems[0].contains("not probed: this daemon runs without a data plane"),
        "{report:?}"
    );
}

#[test]
fn an_uplink_that_is_absent_down_or_none_at_all_is_a_problem() {
    let report = assemble(
        Ok(&kernel(&[])),
        host(vec![
            uplink("gone0", false, false),
            uplink("down0", true, false),
        ]),
    );
    assert_eq!(
        report.problems,
        ["uplink gone0 does not exist", "uplink down0 is not up"]
    );
    let report = assemble(Ok(&kernel(&[])), host(Vec::new()));
    assert!(!report.ok);
    assert!(report.problems[0].starts_with("no uplink"), "{report:?}");
    // Without a data plane no traffic leaves, by any uplink.
    let report = assemble(Err("no data plane"), with_uplinks(None));
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.uplinks.is_empty());
}

#[test]
fn the_cgroup_version_is_read_off_the_mount_table() {
    let v2 = "sysfs /sys sysfs rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\n";
    let v1 = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\n\
              cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n";
    let hybrid = format!("{v1}cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n");
    assert_eq!(cgroup_version(v2), CgroupVersion::V2);
    assert_eq!(cgroup_version(v1), CgroupVersion::V1);
    assert_eq!(cgroup_version(&hybrid), CgroupVersion::Hybrid);
    assert_eq!(
        cgroup_version("proc /proc proc rw 0 0\n"),
        CgroupVersion::Unknown
    );
}

#[test]
fn default_routes_are_read_off_the_route_tables_lowest_metric_first() {
    let ipv4 = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n\
                dead0\t00000000\t0100A8C0\t0000\t0\t0\t1\t00000000\t0\t0\t0\n";
    assert_eq!(ipv4_defaults(ipv4), ["eth0", "wlan0"]);
    let zero = "00000000000000000000000000000000";
    let ipv6 = format!(
        "{zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth1\n\
         20010db8000000000000000000000000 40 {zero} 00 {zero} 00000100 00000001 00000000 00000001 eth1\n\
         {zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200 lo\n"
    );
    assert_eq!(ipv6_defaults(&ipv6), ["eth1"]);
    assert!(ipv4_defaults("").is_empty() && ipv6_defaults("garbage").is_empty());
}

#[test]
fn programs_are_found_on_the_search_path() {
    let found = find_on("/nonexistent:/usr/bin:/bin", "sh").expect("sh is installed");
    assert!(found.ends_with("sh"));
    assert_eq!(find_on("/nonexistent", "sh"), None);
    assert_eq!(find_on("/usr/bin:/bin", "no-such-program-here"), None);
}

/// Reads this host as it is: needs no root (the kernel is not probed).
#[test]
fn gather_reads_this_host() {
    let report = gather(
        Err("not asked"),
        Some(&["lo".to_owned(), "bfnope0".to_owned()]),
    );
    assert!(!report.kernel.is_empty());
    assert!(report.forwarding.ipv4.is_some(), "{report:?}");
    let own = &report.binaries[0];
    assert!(own.required && own.path.is_some(), "{report:?}");
    assert!(report.binaries[1..].iter().all(|b| !b.required));
    assert_eq!(
        report.uplinks[0],
        UplinkReport {
            name: "lo".into(),
            present: true,
            up: true,
            default_route: false,
        }
    );
    assert!(!report.uplinks[1].present);
    assert!(
        report
            .problems
            .contains(&"uplink bfnope0 does not exist".to_owned()),
        "{report:?}"
    );
}
