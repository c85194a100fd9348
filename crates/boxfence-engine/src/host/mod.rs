//! The host report (`GET /v1/host`, `boxfence doctor`, the daemon's
//! start-up log): the kernel's features as a probe found them, the path
//! each part of the data plane takes, and the other prerequisites read
//! fresh. One function gathers it for the doctor and the daemon alike.

mod prerequisites;

use boxfence_dataplane::features::{Feature, KernelFeatures, Presence};
use std::path::Path;

use boxfence_policy::{
    BinaryReport, FeatureReport, FeatureStatus, HostReport, PathReport, UplinkReport,
};
use boxfence_sandbox::{Runtime, RuntimeKind};

use prerequisites::Prerequisites;
pub use prerequisites::default_route_interface;

/// The host report: `features` as a probe (or the engine) found them, or
/// why the kernel was not probed; `uplinks` the interfaces box traffic
/// leaves by (`None`: no data plane sends any, so none is judged).
/// Everything else is read now, in the calling thread's network namespace.
pub fn gather(features: Result<&KernelFeatures, &str>, uplinks: Option<&[String]>) -> HostReport {
    assemble(features, Prerequisites::read(uplinks))
}

/// Adds to `report` what name checks need (`[network] name_check` on):
/// without a queue and a way for rules to reach it, the daemon would
/// refuse to start.
pub fn require_name_check(report: &mut HostReport, features: &KernelFeatures) {
    if let Err(missing) = features.require_for_name_check() {
        report.problems.push(missing.to_string());
        report.ok = false;
    }
}

/// Adds to `report` the binaries boxes need, the OCI runtime `runtime`
/// and the box init `init`, each required: a missing one is a problem
/// (creates would fail with a 5xx naming it).
pub fn require_sandbox(report: &mut HostReport, runtime: RuntimeKind, init: &Path) {
    let runtime_path = Runtime::locate(runtime);
    let init_path = init.is_file().then(|| init.to_owned());
    for (name, path, purpose) in [
        (
            runtime.name(),
            runtime_path,
            "the OCI runtime boxes run in ([runtime] oci_runtime)",
        ),
        (
            "catatonit",
            init_path,
            "each box's init ([runtime] init; Debian package catatonit)",
        ),
    ] {
        if path.is_none() {
            report.problems.push(format!(
                "{name} is not installed: {purpose}; creating a box fails"
            ));
        }
        report.binaries.push(BinaryReport {
            name: name.into(),
            required: true,
            path: path.map(|p| p.display().to_string()),
            purpose: purpose.into(),
        });
    }
    report.ok = report.problems.is_empty();
}

/// The report from what was found; judges `ok`.
fn assemble(features: Result<&KernelFeatures, &str>, host: Prerequisites) -> HostReport {
    let mut problems = Vec::new();
    let (features, paths) = match features {
        Ok(features) => {
            problems.extend(features.require().err().map(|missing| missing.to_string()));
            (feature_reports(features), path_reports(features))
        }
        Err(why) => {
            problems.push(format!("the kernel's features were not probed: {why}"));
            (Vec::new(), Vec::new())
        }
    };
    problems.extend(
        host.uplinks
            .as_deref()
            .map(uplink_problems)
            .unwrap_or_default(),
    );
    HostReport {
        ok: problems.is_empty(),
        problems,
        kernel: host.kernel,
        features,
        paths,
        forwarding: host.forwarding,
        cgroup: host.cgroup,
        binaries: host.binaries,
        uplinks: host.uplinks.unwrap_or_default(),
    }
}

fn feature_reports(features: &KernelFeatures) -> Vec<FeatureReport> {
    Feature::ALL
        .into_iter()
        .map(|feature| {
            let (status, answer) = match features.found.get(&feature) {
                Some(Presence::Found) => (FeatureStatus::Found, None),
                Some(Presence::Avoided) => (FeatureStatus::Avoided, None),
                Some(Presence::Missing(answer)) => (FeatureStatus::Missing, Some(answer.clone())),
                None => (FeatureStatus::Missing, Some("not probed".to_owned())),
            };
            FeatureReport {
                name: feature.name().to_owned(),
                status,
                answer,
                required: feature.required(),
                since: feature.since().to_owned(),
                purpose: feature.purpose().to_owned(),
            }
        })
        .collect()
}

fn path_reports(features: &KernelFeatures) -> Vec<PathReport> {
    features
        .paths()
        .describe()
        .into_iter()
        .map(|(part, path, fallback)| PathReport {
            part: part.to_owned(),
            path: path.to_owned(),
            fallback,
        })
        .collect()
}

fn uplink_problems(uplinks: &[UplinkReport]) -> Vec<String> {
    if uplinks.is_empty() {
        return vec![
            "no uplink: none is configured and the host has no default route, \
             so box traffic has no way out"
                .to_owned(),
        ];
    }
    uplinks
        .iter()
        .filter_map(|uplink| {
            if !uplink.present {
                Some(format!("uplink {} does not exist", uplink.name))
            } else if !uplink.up {
                Some(format!("uplink {} is not up", uplink.name))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
