//! OpenAPI descriptions of the bodies the policy core validates. They are
//! for documentation only: requests are parsed by the policy core's
//! validators, which report every problem with its path.

#![allow(dead_code)]

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// An app policy (Machines API shape).
#[derive(ToSchema)]
#[schema(as = AppPolicy)]
pub(crate) struct AppPolicySchema {
    /// Give it to update that policy; without it, a policy with the same
    /// `name` in the app is updated (idempotent apply).
    id: Option<String>,
    /// Unique within the app; 1-128 of letters, digits, `.`, `_`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    name: String,
    /// Which machines of the app it applies to.
    selector: SelectorSchema,
    /// Allow rules.
    rules: Vec<RuleSchema>,
}

/// Fields given together must all match; at least one is required.
#[derive(ToSchema)]
#[schema(as = Selector)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectorSchema {
    /// `true` selects every machine of the app (`false` is refused).
    all: Option<bool>,
    /// Selects any listed machine; not empty.
    machines: Option<Vec<MachineRefSchema>>,
    /// Selects machines whose metadata has every pair; not empty.
    metadata: Option<BTreeMap<String, String>>,
}

/// A machine named in a selector.
#[derive(ToSchema)]
#[schema(as = MachineRef)]
#[serde(deny_unknown_fields)]
pub(crate) struct MachineRefSchema {
    /// The machine's id.
    id: String,
}

/// An allow rule.
#[derive(ToSchema)]
#[schema(as = Rule)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSchema {
    /// Only `allow`.
    #[schema(pattern = "^allow$")]
    action: String,
    /// `ingress` or `egress`.
    #[schema(pattern = "^(ingress|egress)$")]
    direction: String,
    /// Absent: every protocol and port. Not empty.
    ports: Option<Vec<PortSchema>>,
    /// Remote ranges (destinations for egress, sources for ingress).
    cidrs: Option<Vec<String>>,
    /// Destination names, exact or `*.suffix` (egress only).
    domains: Option<Vec<String>>,
}

/// A protocol and port (range).
#[derive(ToSchema)]
#[schema(as = PortRule)]
#[serde(deny_unknown_fields)]
pub(crate) struct PortSchema {
    /// `tcp`, `udp` or `icmp` (no port).
    #[schema(pattern = "^(tcp|udp|icmp)$")]
    protocol: String,
    /// 1-65535; required for tcp and udp.
    #[schema(minimum = 1, maximum = 65535)]
    port: Option<u16>,
    /// Last port of an inclusive range.
    #[schema(minimum = 1, maximum = 65535)]
    end_port: Option<u16>,
}

/// A box policy: `{"mode": "allow-all"}` (default), `{"mode": "deny-all"}`,
/// or `custom` with at least one non-empty list.
#[derive(ToSchema)]
#[schema(as = NetworkPolicy)]
#[serde(untagged)]
pub(crate) enum BoxPolicySchema {
    /// `allow-all` or `deny-all`.
    Mode(ModePolicySchema),
    /// `custom`.
    Custom(CustomPolicySchema),
}

/// `allow-all`: no restriction; `deny-all`: the box is offline.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModePolicySchema {
    /// `allow-all` or `deny-all`.
    #[schema(pattern = "^(allow-all|deny-all)$")]
    mode: String,
}

/// Allowed domains and CIDRs (default deny), or only denied CIDRs
/// (default allow). At least one list is non-empty.
#[derive(ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CustomPolicySchema {
    /// `custom`.
    #[schema(pattern = "^custom$")]
    mode: String,
    /// Exact names or `*.suffix`.
    allowed_domains: Option<Vec<String>>,
    /// CIDR blocks the box may reach, e.g. `104.16.0.0/12`.
    allowed_cidrs: Option<Vec<String>>,
    /// CIDR blocks the box may never reach; beat every allow.
    denied_cidrs: Option<Vec<String>>,
}

/// A hypothetical flow to evaluate.
#[derive(ToSchema)]
#[schema(as = Flow)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlowSchema {
    /// `egress` or `ingress`.
    direction: String,
    /// `tcp`, `udp` or `icmp`; any other IP protocol (which only a rule
    /// without `ports` allows) may be given by its number, 0-255.
    protocol: String,
    /// Remote port for egress, the machine's port for ingress; not for icmp
    /// nor a protocol given by number.
    #[schema(minimum = 1, maximum = 65535)]
    port: Option<u16>,
    /// The remote address.
    ip: Option<String>,
    /// The name the remote address was resolved from (egress only).
    domain: Option<String>,
    /// The source address the packet carries (egress only; anti-spoofing).
    source: Option<String>,
}

/// The verdict on a flow.
#[derive(ToSchema)]
#[schema(as = Verdict)]
pub(crate) struct VerdictSchema {
    /// `allow` or `deny`.
    verdict: String,
    /// On denials: `anti_spoof`, `always_blocked`, `box_policy` or
    /// `app_policy`.
    layer: Option<String>,
    /// Why the deciding layer decided, in words.
    reason: String,
    /// Each checked layer's finding, in order.
    findings: Vec<serde_json::Value>,
    /// The name check a domain-authorised TCP flow meets (issue 19), e.g.
    /// `name check: TLS SNI or HTTP Host must match api.github.com`.
    name_check: Option<String>,
    /// Limits the user should know about (e.g. CDNs behind a domain).
    caveats: Option<Vec<String>>,
}

/// `POST /v1/apps`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAppBody {
    /// 1-63 of lowercase letters, digits and `-`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    app_name: String,
}

/// `POST /v1/apps/{app}/machines`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateMachineBody {
    /// Unique in the app; defaults to the generated id.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    name: Option<String>,
    /// Configuration.
    config: Option<MachineConfigBody>,
    /// The box policy; default `allow-all`.
    network_policy: Option<BoxPolicySchema>,
}

/// A machine's configuration.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MachineConfigBody {
    /// String keys and values that selectors match.
    metadata: Option<BTreeMap<String, String>>,
    /// Its size; each part defaults to the daemon's `[runtime]`.
    guest: Option<GuestBody>,
    /// The image of its root, in the host's image store (`boxfence image
    /// import`); `:latest` where no tag is given. Absent: the default
    /// root, a read-only view of the host's system directories.
    image: Option<String>,
}

/// A machine's size.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuestBody {
    /// CPUs' worth of time, 1-64.
    #[schema(minimum = 1, maximum = 64)]
    cpus: Option<u32>,
    /// Memory in MiB, 32-262144.
    #[schema(minimum = 32, maximum = 262144)]
    memory_mb: Option<u32>,
}

/// A box's size.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub(crate) struct BoxGuestBody {
    /// CPUs' worth of time, 1-64.
    #[schema(minimum = 1, maximum = 64)]
    cpus: Option<u32>,
    /// Memory in MiB, 32-262144.
    #[schema(minimum = 32, maximum = 262144)]
    memory_mb: Option<u32>,
}

/// `POST /v1/boxes`.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBoxBody {
    /// A label, e.g. `node`, kept and shown.
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    runtime: Option<String>,
    /// The box policy; default `allow-all`.
    network_policy: Option<BoxPolicySchema>,
    /// String keys and values that app-policy selectors match.
    metadata: Option<BTreeMap<String, String>>,
    /// The app; default `default` (created on first use), or the app of
    /// an app-scoped token.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    app: Option<String>,
    /// Its size; each part defaults to the daemon's `[runtime]`.
    guest: Option<BoxGuestBody>,
    /// The image of its root, in the host's image store; absent: the
    /// default root.
    image: Option<String>,
}

/// A command to run in a machine.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecBody {
    /// Program and arguments; the program is looked up in `PATH`.
    command: Vec<String>,
    /// Written to the command's standard input.
    stdin: Option<String>,
    /// Seconds before the command's process tree is killed: default 60,
    /// at most the daemon's `[exec] max_timeout` (600 unless configured).
    timeout: Option<f64>,
}

/// A JSON merge patch of metadata: a string sets a key, `null` removes it.
#[derive(ToSchema)]
pub(crate) struct MetadataPatch(BTreeMap<String, Option<String>>);
