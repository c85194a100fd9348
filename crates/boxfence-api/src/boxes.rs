//! The Box API shape (camelCase): boxes with their network policy.

use std::collections::BTreeMap;

use boxfence_policy::{BoxPolicy, Diagnostic};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::machines::{Addresses, ExecOutput, request_metadata};

/// `POST /v1/boxes`: what to create a box with (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = CreateBox)]
pub struct BoxOptions {
    /// A label, e.g. `node`, kept and shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub runtime: Option<String>,
    /// The box policy; default `allow-all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<BoxPolicy>,
    /// String keys and values that app-policy selectors match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(schema_with = request_metadata)]
    pub metadata: BTreeMap<String, String>,
    /// The app; default `default` (created on first use), or the app of
    /// an app-scoped token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub app: Option<String>,
    /// Its size; each part left out is the daemon's `[runtime]` default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<BoxGuest>,
    /// The image of its root, in the host's image store; absent: a
    /// read-only view of the host's system directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-z0-9][a-zA-Z0-9._/:@-]{0,254}$")]
    pub image: Option<String>,
}

/// A box's size (Box API: `memoryMb`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoxGuest {
    /// CPUs' worth of time, 1-64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 64)]
    pub cpus: Option<u32>,
    /// Memory in MiB, 32-262144.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 32, maximum = 262144)]
    pub memory_mb: Option<u32>,
}

/// A box (Box API view of a machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoxInfo {
    /// Generated id, 12 characters of `[a-z0-9]`.
    pub id: String,
    /// The app it belongs to.
    pub app: String,
    /// Name (the id unless created through the Machines API with one).
    pub name: String,
    /// The runtime label given at creation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The box policy.
    pub network_policy: BoxPolicy,
    /// Metadata that app-policy selectors match.
    pub metadata: BTreeMap<String, String>,
    /// Its size (absent for boxes made before sizes were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<BoxGuest>,
    /// Its image (absent: the default root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The box's addresses.
    pub addresses: Addresses,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A box policy update's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicyAnswer {
    /// The policy now in force.
    pub network_policy: BoxPolicy,
    /// Warnings, each with the JSON path of the entry.
    #[serde(default)]
    pub warnings: Vec<Diagnostic>,
}

/// What a command run in a box did (Box API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoxExecOutput {
    /// Exit status; 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<ExecOutput> for BoxExecOutput {
    fn from(output: ExecOutput) -> Self {
        Self {
            exit_code: output.exit_code,
            stdout: output.stdout,
            stderr: output.stderr,
        }
    }
}

impl From<BoxExecOutput> for ExecOutput {
    fn from(output: BoxExecOutput) -> Self {
        Self {
            exit_code: output.exit_code,
            stdout: output.stdout,
            stderr: output.stderr,
        }
    }
}
