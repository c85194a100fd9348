//! The API's answers as Rust types. Policies are the policy core's own
//! types, so what the SDK hands out has passed the same validation.

use std::collections::BTreeMap;

use boxfence_policy::{AppPolicy, BoxPolicy, Diagnostic};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Its name.
    pub app_name: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A stored app policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// The policy, with its id.
    #[serde(flatten)]
    pub policy: AppPolicy,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// An answer that carries warnings (entries accepted without effect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied<T> {
    /// The object.
    #[serde(flatten)]
    pub value: T,
    /// Warnings with the JSON path of each entry.
    #[serde(default)]
    pub warnings: Vec<Diagnostic>,
}

/// A machine's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// IPv4.
    pub ipv4: String,
    /// IPv6.
    pub ipv6: String,
}

/// A machine's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineConfig {
    /// Metadata that selectors match.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Its size; in a request, each part left out is the daemon's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<MachineGuest>,
    /// The image of its root, in the host's image store; none: the
    /// default root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// A machine's size (Machines API: `memory_mb`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineGuest {
    /// CPUs' worth of time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
}

/// A box's size (Box API: `memoryMb`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoxGuest {
    /// CPUs' worth of time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
}

/// A machine (Machines API view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// App.
    pub app_name: String,
    /// Runtime label, if any.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Configuration.
    pub config: MachineConfig,
    /// Box policy.
    pub network_policy: BoxPolicy,
    /// Addresses.
    pub addresses: Addresses,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// What to create a machine with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewMachine {
    /// Name, unique in the app; default the id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Configuration.
    pub config: MachineConfig,
    /// Box policy; default allow-all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<BoxPolicy>,
}

/// A box (Box API view of a machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BoxInfo {
    /// Id.
    pub id: String,
    /// App.
    pub app: String,
    /// Name.
    pub name: String,
    /// Runtime label, if any.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Box policy.
    pub network_policy: BoxPolicy,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its size.
    #[serde(default)]
    pub guest: Option<BoxGuest>,
    /// Its image; none: the default root.
    #[serde(default)]
    pub image: Option<String>,
    /// Addresses.
    pub addresses: Addresses,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A command to run in a machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExecRequest {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Standard input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Seconds before the command is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Exit status.
    #[serde(alias = "exitCode")]
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The verdict on a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// `allow` or `deny`.
    pub verdict: String,
    /// On denials, the layer that decided.
    #[serde(default)]
    pub layer: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// Each checked layer's finding.
    #[serde(default)]
    pub findings: Vec<Value>,
    /// The name check a domain-authorised flow meets: `name check: TLS
    /// SNI or HTTP Host must match api.github.com`.
    #[serde(default)]
    pub name_check: Option<String>,
    /// Limits to know about.
    #[serde(default)]
    pub caveats: Vec<String>,
}

impl Evaluation {
    /// True when the flow would be allowed.
    pub fn allowed(&self) -> bool {
        self.verdict == "allow"
    }
}

/// A minted app token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// Its app.
    pub app_name: String,
    /// The token; shown only once.
    pub token: String,
}

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// What was deleted.
    pub id: String,
}
