//! The `[kernel]` section: kernel features the data plane must not use
//! even where the kernel has them, so that their fallbacks run instead (a
//! test switch, or a way around a kernel whose feature misbehaves).
//! Avoiding a required feature is accepted here and refused at start,
//! where the error says what it is needed for.

use boxfence_dataplane::features::Feature;
use serde::Deserialize;

use super::ConfigError;

/// The `[kernel]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KernelFile {
    /// Names of features not to use (`Feature::name`).
    pub(crate) avoid: Option<Vec<String>>,
}

/// The `[kernel]` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KernelSettings {
    /// Features the data plane takes the fallback for.
    pub(crate) avoid: Vec<Feature>,
}

/// `overrides` over `file`; every name must be a feature's.
pub(super) fn resolve_kernel(
    overrides: KernelFile,
    file: KernelFile,
) -> Result<KernelSettings, ConfigError> {
    let avoid = overrides
        .avoid
        .or(file.avoid)
        .unwrap_or_default()
        .iter()
        .map(|name| {
            Feature::from_name(name).ok_or_else(|| ConfigError::Value {
                key: "kernel.avoid",
                message: format!(
                    "`{name}` is not a kernel feature; the features are {}",
                    Feature::ALL.map(Feature::name).join(", ")
                ),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(KernelSettings { avoid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<KernelSettings, ConfigError> {
        let file: KernelFile = toml::from_str(text).expect("parses");
        resolve_kernel(KernelFile::default(), file)
    }

    #[test]
    fn features_are_named_as_the_report_names_them() {
        let settings =
            resolve(r#"avoid = ["destroy_element", "hook_before_device"]"#).expect("known");
        assert_eq!(
            settings.avoid,
            [Feature::DestroyElement, Feature::HookBeforeDevice]
        );
        assert_eq!(resolve("").expect("none").avoid, []);
        let flags = KernelFile {
            avoid: Some(vec!["element_timeout_update".into()]),
        };
        let file = KernelFile {
            avoid: Some(vec!["destroy_element".into()]),
        };
        assert_eq!(
            resolve_kernel(flags, file).expect("flags win").avoid,
            [Feature::ElementTimeoutUpdate]
        );
    }

    #[test]
    fn an_unknown_feature_is_refused_naming_the_key_and_the_features() {
        let error = resolve(r#"avoid = ["destroy_element", "warp_drive"]"#)
            .expect_err("unknown")
            .to_string();
        for part in [
            "kernel.avoid",
            "warp_drive",
            "inet_ingress",
            "destroy_element",
        ] {
            assert!(error.contains(part), "{part:?} in {error}");
        }
    }
}
