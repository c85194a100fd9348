//! What the API answers: the same stored objects in the Machines API's
//! snake_case and the Box API's camelCase.

use std::collections::BTreeMap;

use boxfence_policy::{BoxPolicy, Diagnostic};
use boxfence_store::{App, StoredMachine, StoredPolicy};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::schemas::{AppPolicySchema, BoxPolicySchema};

/// An app.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AppView {
    /// The app's name.
    pub(crate) app_name: String,
    /// When it was created (RFC 3339).
    pub(crate) created_at: String,
}

impl From<App> for AppView {
    fn from(app: App) -> Self {
        Self {
            app_name: app.name,
            created_at: app.created_at,
        }
    }
}

/// A machine's addresses.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AddressesView {
    /// IPv4 address.
    pub ipv4: String,
    /// IPv6 address.
    pub ipv6: String,
}

/// A machine's configuration (Machines API).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MachineConfigView {
    /// Metadata that selectors match.
    pub(crate) metadata: BTreeMap<String, String>,
    /// Its size (absent for machines made before sizes were kept: they
    /// have the daemon's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) guest: Option<GuestView>,
    /// Its image (absent: the default root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
}

/// A machine's size (Machines API).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GuestView {
    /// CPUs' worth of time.
    pub(crate) cpus: u32,
    /// Memory in MiB.
    pub(crate) memory_mb: u32,
}

/// A box's size (Box API).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BoxGuestView {
    /// CPUs' worth of time.
    pub(crate) cpus: u32,
    /// Memory in MiB.
    pub(crate) memory_mb: u32,
}

/// A machine (Machines API view of a box).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MachineView {
    /// Generated id, 12 characters of `[a-z0-9]`.
    pub(crate) id: String,
    /// Name, unique in the app (the id when none was given).
    pub(crate) name: String,
    /// The app.
    pub(crate) app_name: String,
    /// The runtime label given through the Box API, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) runtime: Option<String>,
    /// Configuration.
    pub(crate) config: MachineConfigView,
    /// The box policy.
    #[schema(value_type = BoxPolicySchema)]
    pub(crate) network_policy: BoxPolicy,
    /// The machine's addresses.
    pub(crate) addresses: AddressesView,
    /// RFC 3339.
    pub(crate) created_at: String,
    /// RFC 3339.
    pub(crate) updated_at: String,
}

impl From<StoredMachine> for MachineView {
    fn from(stored: StoredMachine) -> Self {
        let machine = stored.machine;
        Self {
            id: machine.id,
            name: machine.name,
            app_name: machine.app,
            runtime: machine.runtime,
            config: MachineConfigView {
                metadata: machine.metadata,
                guest: machine.guest.map(|guest| GuestView {
                    cpus: guest.cpus,
                    memory_mb: guest.memory_mb,
                }),
                image: machine.image,
            },
            network_policy: machine.network_policy,
            addresses: AddressesView {
                ipv4: machine.ipv4.to_string(),
                ipv6: machine.ipv6.to_string(),
            },
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }
}

/// A box (Box API view of a machine).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BoxView {
    /// Generated id, 12 characters of `[a-z0-9]`.
    pub(crate) id: String,
    /// The app it belongs to.
    pub(crate) app: String,
    /// Name (the id unless created through the Machines API with one).
    pub(crate) name: String,
    /// The runtime label given at creation, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) runtime: Option<String>,
    /// The box policy.
    #[schema(value_type = BoxPolicySchema)]
    pub(crate) network_policy: BoxPolicy,
    /// Metadata that app-policy selectors match.
    pub(crate) metadata: BTreeMap<String, String>,
    /// Its size (absent for boxes made before sizes were kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) guest: Option<BoxGuestView>,
    /// Its image (absent: the default root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) image: Option<String>,
    /// The box's addresses.
    pub(crate) addresses: AddressesView,
    /// RFC 3339.
    pub(crate) created_at: String,
    /// RFC 3339.
    pub(crate) updated_at: String,
}

impl From<StoredMachine> for BoxView {
    fn from(stored: StoredMachine) -> Self {
        let machine = stored.machine;
        Self {
            id: machine.id,
            app: machine.app,
            name: machine.name,
            runtime: machine.runtime,
            network_policy: machine.network_policy,
            metadata: machine.metadata,
            guest: machine.guest.map(|guest| BoxGuestView {
                cpus: guest.cpus,
                memory_mb: guest.memory_mb,
            }),
            image: machine.image,
            addresses: AddressesView {
                ipv4: machine.ipv4.to_string(),
                ipv6: machine.ipv6.to_string(),
            },
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }
}

/// An app policy as stored, with its id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PolicyView {
    /// Id, name, selector and rules.
    #[serde(flatten)]
    #[schema(inline, value_type = AppPolicySchema)]
    pub(crate) policy: Value,
    /// RFC 3339.
    pub(crate) created_at: String,
    /// RFC 3339.
    pub(crate) updated_at: String,
}

impl From<StoredPolicy> for PolicyView {
    fn from(stored: StoredPolicy) -> Self {
        Self {
            policy: serde_json::to_value(&stored.policy).unwrap_or(Value::Null),
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }
}

/// A success answer that also carries warnings: entries accepted but
/// without effect (inside always-blocked ranges).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WithWarnings<T> {
    /// The object.
    #[serde(flatten)]
    pub(crate) value: T,
    /// Warnings, each with the JSON path of the entry.
    #[schema(value_type = Vec<crate::error::DiagnosticSchema>)]
    pub(crate) warnings: Vec<Diagnostic>,
}

/// A box policy update's answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkPolicyView {
    /// The policy now in force.
    #[schema(value_type = BoxPolicySchema)]
    pub(crate) network_policy: BoxPolicy,
    /// Warnings, each with the JSON path of the entry.
    #[schema(value_type = Vec<crate::error::DiagnosticSchema>)]
    pub(crate) warnings: Vec<Diagnostic>,
}

/// The answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deleted {
    /// The id or name of what was deleted.
    pub(crate) id: String,
    /// Always true.
    pub(crate) deleted: bool,
}

impl Deleted {
    pub(crate) fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            deleted: true,
        }
    }
}

/// A minted token; its text is shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenView {
    /// The token's public id.
    pub(crate) id: String,
    /// The app it is scoped to.
    pub(crate) app_name: String,
    /// Send as `Authorization: Bearer <token>`; not shown again.
    pub(crate) token: String,
}

/// What a command run in a machine did (Machines API).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ExecView {
    /// Exit status; 128 + signal number when killed by a signal.
    pub(crate) exit_code: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// What a command run in a box did (Box API).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BoxExecView {
    /// Exit status; 128 + signal number when killed by a signal.
    pub(crate) exit_code: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`, or `unhealthy` while a part of the data plane does not work.
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
    /// What does not work, one sentence per part, starting with its name
    /// (`resolver: ...`); absent when healthy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) problems: Vec<String>,
}
