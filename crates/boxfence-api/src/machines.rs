//! The Machines API shape (snake_case): machines, their commands and
//! verdicts, and stored app policies.

use std::collections::BTreeMap;

use boxfence_policy::openapi::{metadata_schema, nullable, schema as from_json};
use boxfence_policy::{BoxPolicy, Diagnostic, Layer, Rule, Selector};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

/// Metadata in a request: `null` reads as none.
pub(crate) fn request_metadata() -> RefOr<Schema> {
    from_json(nullable(metadata_schema(0)))
}

/// An answer that carries warnings: entries accepted but without effect
/// (inside always-blocked ranges), each with its JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Applied<T> {
    /// The object.
    #[serde(flatten)]
    pub value: T,
    /// Warnings, each with the JSON path of the entry.
    #[serde(default)]
    pub warnings: Vec<Diagnostic>,
}

/// A machine's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Addresses {
    /// IPv4 address.
    #[schema(format = Ipv4)]
    pub ipv4: String,
    /// IPv6 address.
    #[schema(format = Ipv6)]
    pub ipv6: String,
}

/// A machine's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineConfig {
    /// String keys (1-256 characters) and values (at most 1024) that
    /// selectors match.
    #[serde(default)]
    #[schema(schema_with = request_metadata)]
    pub metadata: BTreeMap<String, String>,
    /// Its size; in a request, each part left out is the daemon's
    /// `[runtime]` default; absent in answers for machines made before
    /// sizes were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<MachineGuest>,
    /// The image of its root, in the host's image store (`boxfence image
    /// import`); `:latest` where no tag is given. Absent: the default
    /// root, a read-only view of the host's system directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[a-z0-9][a-zA-Z0-9._/:@-]{0,254}$")]
    pub image: Option<String>,
}

/// A machine's size (Machines API: `memory_mb`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineGuest {
    /// CPUs' worth of time, 1-64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 64)]
    pub cpus: Option<u32>,
    /// Memory in MiB, 32-262144.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 32, maximum = 262144)]
    pub memory_mb: Option<u32>,
}

/// `POST /v1/apps/{app}/machines`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMachine {
    /// Unique in the app; defaults to the generated id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub name: Option<String>,
    /// Configuration.
    #[serde(default)]
    #[schema(schema_with = nullable_config)]
    pub config: MachineConfig,
    /// The box policy; default `allow-all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<BoxPolicy>,
    /// Attach an existing network namespace (a container runtime's)
    /// instead of making one: the machine gets its link, addresses and
    /// routes there, and no sandbox (exec answers 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<AttachRequest>,
}

fn nullable_config() -> RefOr<Schema> {
    from_json(json!({ "oneOf": [
        { "$ref": "#/components/schemas/MachineConfig" }, { "type": "null" } ] }))
}

/// A network namespace to attach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// Absolute path of the namespace: `/proc/<pid>/ns/net` or a bind
    /// mount of one.
    pub netns: String,
    /// The interface made inside it; default `eth0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// `netns` (default) or `cni` (the CNI plugin, with `container_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The runtime's container id (`cni` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

impl utoipa::PartialSchema for AttachRequest {
    fn schema() -> RefOr<Schema> {
        let properties = |kind: Value, container_id: Value| {
            json!({
                "netns": { "type": "string", "pattern": "^/[^\\u0000]*$", "maxLength": 4096,
                    "description": "Absolute path of the namespace: `/proc/<pid>/ns/net` or \
                        a bind mount of one." },
                "ifname": nullable(json!({ "type": "string",
                    "pattern": IFNAME,
                    "description": "The interface made inside it; default `eth0`: 1-15 \
                        printable ASCII characters but `/`, `:` and space, not `.` or `..`." })),
                "kind": kind,
                "container_id": container_id,
            })
        };
        let container_id = json!({ "type": "string", "pattern": r"^[A-Za-z0-9._-]{1,256}$",
            "description": "The runtime's container id." });
        from_json(json!({
            "description": "A network namespace to attach: by path (`kind` `netns`, the \
                default), or a CNI plugin's (`kind` `cni`, with `container_id`).",
            "oneOf": [
                {
                    "type": "object",
                    "title": "ByPath",
                    "properties": properties(
                        json!({ "type": ["string", "null"], "enum": ["netns", null] }),
                        json!({ "type": "null" }),
                    ),
                    "required": ["netns"],
                    "additionalProperties": false,
                },
                {
                    "type": "object",
                    "title": "Cni",
                    "properties": properties(
                        json!({ "type": "string", "enum": ["cni"] }),
                        container_id,
                    ),
                    "required": ["netns", "kind", "container_id"],
                    "additionalProperties": false,
                },
            ],
        }))
    }
}

impl ToSchema for AttachRequest {}

/// Interface names as the server takes them: no `.` or `..`, without
/// lookaround, which not every JSON Schema checker has.
const IFNAME: &str = r"^(?:[!-\-0-9;-~][!-.0-9;-~]{0,14}|\.[!-\-0-9;-~]|\.[!-.0-9;-~]{2,14})$";

/// What an attached machine is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Attached {
    /// `cni` (a CNI plugin's ADD) or `netns` (attached by path).
    #[schema(pattern = "^(netns|cni)$")]
    pub kind: String,
    /// The runtime's container id (`cni` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The namespace's path as given.
    pub netns: String,
    /// The interface inside it.
    pub ifname: String,
    /// That interface's hardware address.
    pub mac: String,
    /// The gateways of its default routes, and its DNS servers (the
    /// built-in resolver).
    pub gateways: Addresses,
}

/// A machine (Machines API view of a box).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MachineInfo {
    /// Generated id, 12 characters of `[a-z0-9]`.
    pub id: String,
    /// Name, unique in the app (the id when none was given).
    pub name: String,
    /// The app.
    pub app_name: String,
    /// The runtime label given through the Box API, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Configuration.
    pub config: MachineConfig,
    /// The box policy.
    pub network_policy: BoxPolicy,
    /// The machine's addresses.
    pub addresses: Addresses,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The network namespace someone else made that it is attached to
    /// (absent for machines boxfence made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<Attached>,
}

/// A check's answer: the kernel enforces what is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Checked {
    /// The machine.
    pub id: String,
    /// Always true (a difference answers 409).
    pub enforced: bool,
}

/// A JSON merge patch of metadata: a string sets a key, `null` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataPatch(pub BTreeMap<String, Option<String>>);

impl utoipa::PartialSchema for MetadataPatch {
    fn schema() -> RefOr<Schema> {
        let mut schema = metadata_schema(0);
        schema["additionalProperties"] = json!({ "type": ["string", "null"], "maxLength": 1024 });
        from_json(schema)
    }
}

impl ToSchema for MetadataPatch {}

/// A command to run in a machine or box.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments; the program (not empty) is looked up in
    /// `PATH`.
    #[schema(schema_with = argv)]
    pub command: Vec<String>,
    /// Written to the command's standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Seconds before the command's process tree is killed: default 60,
    /// at most the daemon's `[exec] max_timeout` (600 unless configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 600)]
    pub timeout: Option<f64>,
}

fn argv() -> RefOr<Schema> {
    from_json(json!({
        "type": "array",
        "prefixItems": [{ "type": "string", "minLength": 1 }],
        "items": { "type": "string" },
        "minItems": 1,
    }))
}

/// What a command run in a machine did (Machines API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExecOutput {
    /// Exit status; 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// An app policy as stored, with its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyInfo {
    /// Stable id.
    pub id: String,
    /// Unique within the app.
    pub name: String,
    /// Which machines of the app it applies to.
    pub selector: Selector,
    /// Allow rules.
    pub rules: Vec<Rule>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// The verdict on a flow: allowed only if every layer allows it; the
/// first layer that denies decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Verdict)]
pub struct Evaluation {
    /// `allow` or `deny`.
    #[schema(pattern = "^(allow|deny)$")]
    pub verdict: String,
    /// On denials, the layer that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// Why the deciding layer decided, in words.
    pub reason: String,
    /// Each checked layer's finding, in order; a denial is last.
    pub findings: Vec<Finding>,
    /// The name check a domain-authorised TCP flow meets, e.g. `name
    /// check: TLS SNI or HTTP Host must match api.github.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_check: Option<String>,
    /// Limits the user should know about (e.g. CDNs behind a domain).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caveats: Vec<String>,
}

impl Evaluation {
    /// True when the flow would be allowed.
    pub fn allowed(&self) -> bool {
        self.verdict == "allow"
    }
}

/// What one layer found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// The layer.
    pub layer: Layer,
    /// Whether it let the flow through.
    pub allowed: bool,
    /// The finding's `kind` (`rule_matched`, `denied_cidr`, ...) and the
    /// policy entry it names.
    #[schema(value_type = Object)]
    pub reason: Value,
}
