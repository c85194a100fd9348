//! What the runtime says about the container, turned into the machine's
//! metadata (so app policies' selectors match containers) and its box
//! policy. Sources, later ones winning per key:
//!
//! - `CNI_ARGS`: `K8S_POD_NAME`, `K8S_POD_NAMESPACE`, `K8S_POD_UID` (as
//!   `k8s.pod.name`, ...), `label.<key>=<value>`, and `boxfence.policy=`
//!   a box policy's JSON (podman passes its own `CNI_ARGS` along);
//! - the configuration's `args.cni.labels` (`[{"key", "value"}]`, the CNI
//!   conventions' labels), the label `boxfence.dev/policy` being the policy;
//! - `runtimeConfig.io.kubernetes.cri.pod-annotations` (containerd's
//!   capability): `boxfence.dev/policy`, and `boxfence.dev/label.<key>`.
//!
//! Every machine also gets `cni.network`, the network's name, which GC
//! uses to find the network's own attachments.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::CniError;
use crate::spec::NetConf;

/// The metadata key that names the network.
pub const NETWORK_KEY: &str = "cni.network";

/// The label or annotation that carries a box policy.
const POLICY_LABEL: &str = "boxfence.dev/policy";
/// The `CNI_ARGS` key that carries a box policy.
const POLICY_ARG: &str = "boxfence.policy";
/// The annotation prefix of metadata.
const LABEL_ANNOTATION: &str = "boxfence.dev/label.";
/// The containerd capability of pod annotations.
const POD_ANNOTATIONS: &str = "io.kubernetes.cri.pod-annotations";

/// A box policy as given, and where (for error messages).
#[derive(Debug, Clone, PartialEq)]
pub struct GivenPolicy {
    /// Its JSON.
    pub value: Value,
    /// Where it came from, e.g. `CNI_ARGS boxfence.policy`.
    pub source: String,
}

/// The machine's metadata and box policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// Metadata for selectors.
    pub metadata: BTreeMap<String, String>,
    /// The box policy, if one was given.
    pub policy: Option<GivenPolicy>,
}

impl Identity {
    /// Gathers both from `CNI_ARGS` (`args`) and the configuration.
    pub fn gather(args: Option<&str>, conf: &NetConf) -> Result<Self, CniError> {
        let mut identity = Self::default();
        identity
            .metadata
            .insert(NETWORK_KEY.to_owned(), conf.name.clone());
        for pair in args.unwrap_or_default().split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let source = format!("CNI_ARGS {key}");
            match key {
                "K8S_POD_NAME" => identity.set("k8s.pod.name", value),
                "K8S_POD_NAMESPACE" => identity.set("k8s.pod.namespace", value),
                "K8S_POD_UID" => identity.set("k8s.pod.uid", value),
                POLICY_ARG => identity.policy = Some(parse_policy(value, source)?),
                _ => {
                    if let Some(label) = key.strip_prefix("label.") {
                        identity.set(label, value);
                    }
                }
            }
        }
        let labels = &conf.raw["args"]["cni"]["labels"];
        if !labels.is_null() {
            let invalid = || {
                CniError::InvalidConfig(
                    "args.cni.labels must be a list of {\"key\", \"value\"} strings".into(),
                )
            };
            for (index, label) in labels.as_array().ok_or_else(invalid)?.iter().enumerate() {
                let (Some(key), Some(value)) = (label["key"].as_str(), label["value"].as_str())
                else {
                    return Err(invalid());
                };
                if key == POLICY_LABEL {
                    let source = format!("args.cni.labels[{index}] ({POLICY_LABEL})");
                    identity.policy = Some(parse_policy(value, source)?);
                } else {
                    identity.set(key, value);
                }
            }
        }
        let annotations = &conf.raw["runtimeConfig"][POD_ANNOTATIONS];
        if let Some(annotations) = annotations.as_object() {
            for (key, value) in annotations {
                let Some(value) = value.as_str() else {
                    continue;
                };
                if key == POLICY_LABEL {
                    let source = format!("runtimeConfig.{POD_ANNOTATIONS}[{key}]");
                    identity.policy = Some(parse_policy(value, source)?);
                } else if let Some(label) = key.strip_prefix(LABEL_ANNOTATION) {
                    identity.set(label, value);
                }
            }
        }
        Ok(identity)
    }

    fn set(&mut self, key: &str, value: &str) {
        self.metadata.insert(key.to_owned(), value.to_owned());
    }
}

fn parse_policy(text: &str, source: String) -> Result<GivenPolicy, CniError> {
    let value = serde_json::from_str(text).map_err(|error| {
        CniError::InvalidConfig(format!("{source}: the box policy is not JSON: {error}"))
    })?;
    Ok(GivenPolicy { value, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(extra: Value) -> NetConf {
        let mut raw = serde_json::json!({"cniVersion": "1.0.0", "name": "boxnet", "type": "boxfence-cni", "app": "web"});
        if let (Some(raw), Some(extra)) = (raw.as_object_mut(), extra.as_object()) {
            raw.extend(extra.clone());
        }
        NetConf::parse(raw.to_string().as_bytes()).expect("valid")
    }

    #[test]
    fn args_labels_and_annotations_become_metadata_and_policy() {
        let conf = conf(serde_json::json!({
            "args": {"cni": {"labels": [{"key": "team", "value": "search"}]}},
            "runtimeConfig": {POD_ANNOTATIONS: {
                "boxfence.dev/label.tier": "db",
                "boxfence.dev/policy": "{\"mode\": \"deny-all\"}",
                "unrelated": "x"}}
        }));
        let args = "IgnoreUnknown=1;K8S_POD_NAME=api-0;K8S_POD_NAMESPACE=prod;label.role=web;\
                    boxfence.policy={\"mode\": \"allow-all\"}";
        let identity = Identity::gather(Some(args), &conf).expect("valid");
        let expected: BTreeMap<String, String> = [
            ("cni.network", "boxnet"),
            ("k8s.pod.name", "api-0"),
            ("k8s.pod.namespace", "prod"),
            ("role", "web"),
            ("team", "search"),
            ("tier", "db"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(identity.metadata, expected);
        let policy = identity.policy.expect("policy");
        assert_eq!(policy.value["mode"], "deny-all", "annotations come last");
        assert!(
            policy.source.contains("pod-annotations"),
            "{}",
            policy.source
        );
    }

    #[test]
    fn a_policy_that_is_not_json_names_its_source() {
        let error = Identity::gather(Some("boxfence.policy={mode"), &conf(Value::Null))
            .expect_err("not JSON");
        assert_eq!(error.code(), 7);
        assert!(
            error.to_string().starts_with("CNI_ARGS boxfence.policy:"),
            "{error}"
        );
    }
}
