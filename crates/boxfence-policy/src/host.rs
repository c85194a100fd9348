//! The host report: what a host offers boxfence (the kernel's features,
//! the path each part of the data plane takes, the other prerequisites),
//! as `GET /v1/host` answers it and `boxfence doctor` prints it.
//!
//! Only the wire type lives here, because this is the one crate the
//! server, the client and the CLI all share (as with [`crate::FlowEvent`]);
//! the engine fills it in.

use serde::{Deserialize, Serialize};

/// What a host offers boxfence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostReport {
    /// True when boxfence can keep its promises here: the kernel was
    /// probed, has every required feature, and every uplink is present
    /// and up. `problems` says why not.
    pub ok: bool,
    /// Each reason `ok` is false, in words.
    pub problems: Vec<String>,
    /// The running kernel's release (`uname -r`).
    pub kernel: String,
    /// Each kernel feature boxfence uses, as probing found it; empty when
    /// the kernel was not probed (`problems` says why).
    pub features: Vec<FeatureReport>,
    /// The path each part of the data plane takes for those features;
    /// empty when the kernel was not probed.
    pub paths: Vec<PathReport>,
    /// The forwarding sysctls (`boxfence serve` turns both on).
    pub forwarding: Forwarding,
    /// The cgroup hierarchy the host mounts (reported; boxfence itself
    /// needs none).
    pub cgroup: CgroupVersion,
    /// Programs boxfence runs or operators may want; only boxfence
    /// itself is required.
    pub binaries: Vec<BinaryReport>,
    /// The interfaces box traffic leaves by (the configured uplink, else
    /// the default route's).
    pub uplinks: Vec<UplinkReport>,
}

/// One kernel feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureReport {
    /// Its name, as `[kernel] avoid` takes it.
    pub name: String,
    /// What probing found.
    pub status: FeatureStatus,
    /// The kernel's answer when it refused the feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Whether boxfence cannot work without it (else a fallback runs).
    pub required: bool,
    /// The oldest mainline kernel that has it.
    pub since: String,
    /// What boxfence does with it.
    pub purpose: String,
}

/// What probing found of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FeatureStatus {
    /// The kernel did it; it is used.
    Found,
    /// The kernel has it, but the configuration says not to use it.
    Avoided,
    /// The kernel refused it.
    Missing,
}

impl FeatureStatus {
    /// Its name, as the JSON says it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::Avoided => "avoided",
            Self::Missing => "missing",
        }
    }
}

/// The path one part of the data plane takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PathReport {
    /// The part, e.g. `box link`.
    pub part: String,
    /// The path it takes.
    pub path: String,
    /// Whether that is the fallback for a feature not found or avoided.
    pub fallback: bool,
}

/// The forwarding sysctls; `null` when one cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Forwarding {
    /// `net.ipv4.ip_forward`.
    pub ipv4: Option<bool>,
    /// `net.ipv6.conf.all.forwarding`.
    pub ipv6: Option<bool>,
}

/// How the host mounts cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// The unified hierarchy (cgroup v2) only.
    V2,
    /// The legacy hierarchies (cgroup v1) only.
    V1,
    /// Legacy hierarchies with the unified one beside them.
    Hybrid,
    /// No cgroup mount was found.
    Unknown,
}

impl CgroupVersion {
    /// Its name, as the JSON says it.
    pub fn name(self) -> &'static str {
        match self {
            Self::V2 => "v2",
            Self::V1 => "v1",
            Self::Hybrid => "hybrid",
            Self::Unknown => "unknown",
        }
    }
}

/// A program, found on `PATH` or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BinaryReport {
    /// Its name.
    pub name: String,
    /// Whether boxfence needs it at run time.
    pub required: bool,
    /// Where it is; `null` when it was not found.
    pub path: Option<String>,
    /// What it is for.
    pub purpose: String,
}

/// An interface box traffic leaves by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UplinkReport {
    /// Its name.
    pub name: String,
    /// Whether the host has it.
    pub present: bool,
    /// Whether it is up with its carrier (`IFF_UP` and `IFF_RUNNING`).
    pub up: bool,
    /// Whether a default route of the host leaves by it.
    pub default_route: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_json_names() {
        for status in [
            FeatureStatus::Found,
            FeatureStatus::Avoided,
            FeatureStatus::Missing,
        ] {
            assert_eq!(serde_json::json!(status), status.name());
        }
        for version in [
            CgroupVersion::V2,
            CgroupVersion::V1,
            CgroupVersion::Hybrid,
            CgroupVersion::Unknown,
        ] {
            assert_eq!(serde_json::json!(version), version.name());
        }
    }
}
