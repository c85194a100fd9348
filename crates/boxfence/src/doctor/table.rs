//! The doctor's report for people: the host report's sections and the
//! checks as aligned tables, then each problem, then the verdict.

use boxfence_policy::HostReport;

use super::Check;
use crate::output::table_text;

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_owned()
}

fn needed(required: bool) -> String {
    if required { "required" } else { "optional" }.to_owned()
}

fn sysctl(value: Option<bool>) -> &'static str {
    match value {
        Some(true) => "on",
        Some(false) => "off",
        None => "unreadable",
    }
}

/// The whole report as text.
pub(super) fn render(host: &HostReport, checks: &[Check]) -> String {
    let mut sections = vec![format!(
        "kernel {}, cgroup {}, forwarding: IPv4 {}, IPv6 {}\n",
        host.kernel,
        host.cgroup.name(),
        sysctl(host.forwarding.ipv4),
        sysctl(host.forwarding.ipv6),
    )];
    if !host.features.is_empty() {
        let rows: Vec<Vec<String>> = host
            .features
            .iter()
            .map(|f| {
                let what = match &f.answer {
                    Some(answer) => format!("{} (the kernel answered: {answer})", f.purpose),
                    None => f.purpose.clone(),
                };
                vec![
                    f.name.clone(),
                    f.status.name().to_owned(),
                    needed(f.required),
                    f.since.clone(),
                    what,
                ]
            })
            .collect();
        sections.push(table_text(
            &["FEATURE", "STATUS", "NEEDED", "SINCE", "WHAT FOR"],
            &rows,
        ));
        let rows: Vec<Vec<String>> = host
            .paths
            .iter()
            .map(|p| vec![p.part.clone(), p.path.clone(), yes_no(p.fallback)])
            .collect();
        sections.push(table_text(&["PART", "PATH", "FALLBACK"], &rows));
    }
    let rows: Vec<Vec<String>> = host
        .uplinks
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                yes_no(u.present),
                yes_no(u.up),
                yes_no(u.default_route),
            ]
        })
        .collect();
    // None at all is a problem, said below.
    if !rows.is_empty() {
        sections.push(table_text(
            &["UPLINK", "PRESENT", "UP", "DEFAULT ROUTE"],
            &rows,
        ));
    }
    let rows: Vec<Vec<String>> = host
        .binaries
        .iter()
        .map(|b| {
            vec![
                b.name.clone(),
                needed(b.required),
                b.path.clone().unwrap_or_else(|| "not found".into()),
                b.purpose.clone(),
            ]
        })
        .collect();
    sections.push(table_text(&["BINARY", "NEEDED", "PATH", "WHAT FOR"], &rows));
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| vec![c.name.into(), c.status.name().into(), c.detail.clone()])
        .collect();
    sections.push(table_text(&["CHECK", "STATUS", "DETAIL"], &rows));
    let mut verdict: String = host
        .problems
        .iter()
        .map(|problem| format!("problem: {problem}\n"))
        .collect();
    let failed = checks.iter().any(|c| c.status == super::Status::Fail);
    verdict.push_str(match (host.ok, failed) {
        (true, false) => "ok: boxfence can keep its promises on this host\n",
        (false, _) => "NOT OK: see the problems above\n",
        (true, true) => "NOT OK: a check failed\n",
    });
    sections.push(verdict);
    sections.join("\n")
}

#[cfg(test)]
mod tests {
    use boxfence_policy::{
        BinaryReport, CgroupVersion, FeatureReport, FeatureStatus, Forwarding, PathReport,
        UplinkReport,
    };

    use super::super::Status;
    use super::*;

    fn report() -> HostReport {
        HostReport {
            ok: true,
            problems: Vec::new(),
            kernel: "6.1.0-test".into(),
            features: vec![
                FeatureReport {
                    name: "inet_ingress".into(),
                    status: FeatureStatus::Found,
                    answer: None,
                    required: true,
                    since: "5.10".into(),
                    purpose: "anti-spoofing".into(),
                },
                FeatureReport {
                    name: "destroy_element".into(),
                    status: FeatureStatus::Missing,
                    answer: Some("Operation not supported".into()),
                    required: false,
                    since: "6.3".into(),
                    purpose: "one message per set".into(),
                },
            ],
            paths: vec![PathReport {
                part: "learned address removal".into(),
                path: "DELSETELEM per address".into(),
                fallback: true,
            }],
            forwarding: Forwarding {
                ipv4: Some(true),
                ipv6: None,
            },
            cgroup: CgroupVersion::Hybrid,
            binaries: vec![BinaryReport {
                name: "nft".into(),
                required: false,
                path: None,
                purpose: "for operators".into(),
            }],
            uplinks: vec![UplinkReport {
                name: "eth0".into(),
                present: true,
                up: false,
                default_route: true,
            }],
        }
    }

    fn line_of<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("a line starting {start:?} in\n{text}"))
    }

    #[test]
    fn each_section_is_a_table_with_its_findings() {
        let checks = [Check {
            name: "ipvs",
            status: Status::Warn,
            detail: "2 virtual services".into(),
        }];
        let text = render(&report(), &checks);
        assert_eq!(
            line_of(&text, "kernel"),
            "kernel 6.1.0-test, cgroup hybrid, forwarding: IPv4 on, IPv6 unreadable"
        );
        let words = |start| -> Vec<&str> { line_of(&text, start).split_whitespace().collect() };
        assert_eq!(
            words("FEATURE"),
            ["FEATURE", "STATUS", "NEEDED", "SINCE", "WHAT", "FOR"]
        );
        assert_eq!(
            words("inet_ingress"),
            ["inet_ingress", "found", "required", "5.10", "anti-spoofing"]
        );
        assert!(
            line_of(&text, "destroy_element")
                .ends_with("(the kernel answered: Operation not supported)"),
            "{text}"
        );
        assert!(line_of(&text, "learned address removal").ends_with("yes"));
        assert_eq!(words("eth0"), ["eth0", "yes", "no", "yes"]);
        assert_eq!(
            words("nft"),
            ["nft", "optional", "not", "found", "for", "operators"]
        );
        assert_eq!(words("ipvs"), ["ipvs", "warn", "2", "virtual", "services"]);
        // Columns line up under their headers.
        let header = line_of(&text, "FEATURE");
        let row = line_of(&text, "destroy_element");
        assert_eq!(header.find("STATUS"), row.find("missing"));
        assert!(text.ends_with("ok: boxfence can keep its promises on this host\n"));
    }

    #[test]
    fn problems_and_failed_checks_are_said_last() {
        let mut host = report();
        host.ok = false;
        host.problems = vec!["uplink eth0 is not up".into()];
        host.features.clear();
        host.uplinks.clear();
        let text = render(&host, &[]);
        for header in ["FEATURE", "PART", "UPLINK"] {
            assert!(!text.contains(header), "{header} in {text}");
        }
        assert!(
            text.ends_with("problem: uplink eth0 is not up\nNOT OK: see the problems above\n"),
            "{text}"
        );
        let failed = [Check {
            name: "rewrite_after_judgement",
            status: Status::Fail,
            detail: "dnat".into(),
        }];
        assert!(render(&report(), &failed).ends_with("NOT OK: a check failed\n"));
    }
}
