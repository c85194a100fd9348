//! The `[runtime]` section: how boxes' containers are made (which OCI
//! runtime, the default size of a box, the pids limit, uid ranges).

use std::path::PathBuf;

use boxfence_engine::SandboxConfig;
use boxfence_policy::guest;
use boxfence_sandbox::{DEFAULT_INIT, Limits, RuntimeKind};
use serde::Deserialize;

use super::ConfigError;

/// Processes and threads a box may have at once.
const DEFAULT_PIDS_MAX: u32 = 1024;
/// Size of a box's /tmp in MiB.
const DEFAULT_TMP_MB: u32 = 256;
/// First host uid of zone 0's range (systemd's range for containers
/// starts here).
const DEFAULT_UID_BASE: u32 = 524_288;

/// The `[runtime]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuntimeFile {
    /// `crun`, `runc` or `runsc`.
    pub(crate) oci_runtime: Option<String>,
    pub(crate) cpus: Option<u32>,
    pub(crate) memory_mb: Option<u32>,
    pub(crate) pids_max: Option<u32>,
    pub(crate) tmp_mb: Option<u32>,
    pub(crate) uid_base: Option<u32>,
    pub(crate) init: Option<PathBuf>,
    /// The image store; none: `<state_dir>/images`.
    pub(crate) images: Option<PathBuf>,
}

/// `overrides` over `file` over the defaults.
pub(super) fn resolve_runtime(
    overrides: RuntimeFile,
    file: RuntimeFile,
) -> Result<SandboxConfig, ConfigError> {
    let name = overrides
        .oci_runtime
        .or(file.oci_runtime)
        .unwrap_or_else(|| RuntimeKind::Crun.name().to_owned());
    let runtime = RuntimeKind::from_name(&name).ok_or_else(|| ConfigError::Value {
        key: "runtime.oci_runtime",
        message: format!(
            "`{name}` is not a runtime boxfence drives; use one of {}",
            RuntimeKind::ALL.map(RuntimeKind::name).join(", ")
        ),
    })?;
    let positive = |key: &'static str, value: u32| {
        if value == 0 {
            Err(ConfigError::Value {
                key,
                message: "must be at least 1".into(),
            })
        } else {
            Ok(value)
        }
    };
    // The defaults must be sizes a request could ask for.
    let within = |key: &'static str, value: u32, range: std::ops::RangeInclusive<u32>| {
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::Value {
                key,
                message: format!("must be from {} to {}", range.start(), range.end()),
            })
        }
    };
    let limits = Limits {
        cpus: within(
            "runtime.cpus",
            overrides.cpus.or(file.cpus).unwrap_or(guest::DEFAULT.cpus),
            guest::CPUS,
        )?,
        memory_mb: within(
            "runtime.memory_mb",
            overrides
                .memory_mb
                .or(file.memory_mb)
                .unwrap_or(guest::DEFAULT.memory_mb),
            guest::MEMORY_MB,
        )?,
        pids_max: positive(
            "runtime.pids_max",
            overrides
                .pids_max
                .or(file.pids_max)
                .unwrap_or(DEFAULT_PIDS_MAX),
        )?,
        tmp_mb: positive(
            "runtime.tmp_mb",
            overrides.tmp_mb.or(file.tmp_mb).unwrap_or(DEFAULT_TMP_MB),
        )?,
    };
    let uid_base = overrides
        .uid_base
        .or(file.uid_base)
        .unwrap_or(DEFAULT_UID_BASE);
    boxfence_sandbox::UidRange::for_zone(uid_base, 0).map_err(|error| ConfigError::Value {
        key: "runtime.uid_base",
        message: error.to_string(),
    })?;
    Ok(SandboxConfig {
        runtime,
        init: overrides
            .init
            .or(file.init)
            .unwrap_or_else(|| DEFAULT_INIT.into()),
        limits,
        uid_base,
        // None: the daemon's `<state_dir>/images`, set with the state
        // directory (a package keeps them on disk, its state on tmpfs).
        images: overrides.images.or(file.images),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<SandboxConfig, ConfigError> {
        let file: RuntimeFile = toml::from_str(text).expect("parses");
        resolve_runtime(RuntimeFile::default(), file)
    }

    #[test]
    fn defaults_and_choices() {
        let config = resolve("").expect("defaults");
        assert_eq!(config.runtime, RuntimeKind::Crun);
        assert_eq!(config.limits.pids_max, 1024);
        let runc = resolve("oci_runtime = \"runc\"\npids_max = 64").expect("runc");
        assert_eq!(
            (runc.runtime, runc.limits.pids_max),
            (RuntimeKind::Runc, 64)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = resolve("oci_runtime = \"docker\"").expect_err("unknown");
        assert!(error.to_string().contains("runtime.oci_runtime"), "{error}");
        assert!(error.to_string().contains("crun, runc, runsc"), "{error}");
        let error = resolve("pids_max = 0").expect_err("zero");
        assert!(error.to_string().contains("runtime.pids_max"), "{error}");
        let error = resolve("uid_base = 1000").expect_err("among host users");
        assert!(error.to_string().contains("runtime.uid_base"), "{error}");
    }
}
