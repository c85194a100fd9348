//! Machines on network namespaces someone else made (issue 14): a
//! container runtime's, attached through the CNI plugin or by path. The
//! request names the namespace; the daemon pins its identity, so that it
//! can tell later whether the namespace's owner is gone.

use std::path::Path;

use boxfence_engine::{Attachment as EngineAttachment, MachineSpec, netns_identity};
use boxfence_policy::{Diagnostics, JsonPath, ObjectReader};
use boxfence_store::{AttachKind, Attachment, StoredMachine};
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// What `"attach"` of a machine create asks for, read but not yet
/// checked against the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttachRequest {
    pub(crate) kind: AttachKind,
    pub(crate) container_id: Option<String>,
    pub(crate) netns: String,
    pub(crate) ifname: String,
}

/// The interface name inside when the request names none.
const DEFAULT_IFNAME: &str = "eth0";

const IFNAME_RULE: &str =
    "an interface name: 1-15 printable ASCII characters but '/', ':' and space, not '.' or '..'";
const CONTAINER_ID_RULE: &str = "1-256 characters of letters, digits, '.', '_' and '-'";
const NETNS_RULE: &str =
    "an absolute path to a network namespace (/proc/<pid>/ns/net or a bind mount of one)";

fn is_ifname(text: &str) -> bool {
    (1..=15).contains(&text.len())
        && text != "."
        && text != ".."
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn is_container_id(text: &str) -> bool {
    (1..=256).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_netns_path(text: &str) -> bool {
    text.starts_with('/') && text.chars().count() <= 4096 && !text.contains('\0')
}

/// Reads `{"netns", "ifname"?, "kind"?, "container_id"?}`: `kind` is
/// `netns` (the default) or `cni`, which needs `container_id`.
pub(crate) fn read_attach(
    value: &Value,
    path: &JsonPath,
    out: &mut Diagnostics,
) -> Option<AttachRequest> {
    let object = ObjectReader::new(
        value,
        path,
        &["netns", "ifname", "kind", "container_id"],
        out,
    )?;
    let netns = match object.required("netns", out) {
        Some(_) => object.string("netns", is_netns_path, NETNS_RULE, out),
        None => None,
    };
    let ifname = match object.optional("ifname") {
        None => Some(DEFAULT_IFNAME.to_owned()),
        Some(_) => object.string("ifname", is_ifname, IFNAME_RULE, out),
    };
    let kind = match object.optional("kind") {
        None => Some(AttachKind::Netns),
        Some((Value::String(kind), _)) if kind == "netns" => Some(AttachKind::Netns),
        Some((Value::String(kind), _)) if kind == "cni" => Some(AttachKind::Cni),
        Some((_, path)) => {
            out.push(&path, "must be `netns` or `cni`");
            None
        }
    };
    let container_id = object.string("container_id", is_container_id, CONTAINER_ID_RULE, out);
    match (kind, &container_id) {
        (Some(AttachKind::Cni), None) if object.optional("container_id").is_none() => {
            out.push(&path.field("container_id"), "required when `kind` is `cni`");
        }
        (Some(AttachKind::Netns), Some(_)) => {
            out.push(
                &path.field("container_id"),
                "only for `kind` `cni` (a runtime's container)",
            );
        }
        _ => {}
    }
    Some(AttachRequest {
        kind: kind?,
        container_id,
        netns: netns?,
        ifname: ifname?,
    })
}

/// The identity of the namespace at `path` now, if it is there.
fn identity(path: &str) -> Option<(u64, u64)> {
    netns_identity(Path::new(path)).ok()
}

/// Whether the namespace's owner is gone: its path no longer names the
/// namespace that was attached (boxfence's own binding keeps the
/// namespace itself alive, so only the path tells).
pub(crate) fn is_gone(attachment: &Attachment) -> bool {
    identity(&attachment.netns) != Some(attachment.netns_id)
}

/// The machine as the data plane needs to know it.
pub(crate) fn spec(stored: &StoredMachine) -> MachineSpec {
    MachineSpec {
        id: stored.machine.id.clone(),
        addresses: crate::machines::addresses(stored),
        guest: stored.machine.guest,
        image: stored.machine.image.clone(),
        attachment: stored
            .machine
            .attached
            .as_ref()
            .map(|attached| EngineAttachment {
                netns: attached.netns.clone().into(),
                ifname: attached.ifname.clone(),
            }),
    }
}

impl AppState {
    /// Checks an attach request against the host: the path must name a
    /// network namespace (404 naming `attach.netns` when it does not: the
    /// request is well formed, the host has no such namespace), not the
    /// daemon's own (409), and none attached already.
    pub(crate) async fn prepare_attachment(
        &self,
        request: AttachRequest,
    ) -> Result<Attachment, ApiError> {
        let netns_id = netns_identity(Path::new(&request.netns)).map_err(|error| {
            ApiError::not_found_at(
                "attach.netns",
                format!("`{}` cannot be read: {error}", request.netns),
            )
        })?;
        let own = identity("/proc/self/ns/net");
        if own == Some(netns_id) {
            return Err(ApiError::Conflict(
                "attach.netns is the daemon's own network namespace, which no machine may take"
                    .into(),
            ));
        }
        // Namespace files all live on the kernel's nsfs: any other file
        // is none (the data plane's setns tells a network one from others).
        if own.is_some_and(|(device, _)| device != netns_id.0) {
            return Err(ApiError::not_found_at(
                "attach.netns",
                format!("`{}` is not a network namespace", request.netns),
            ));
        }
        let taken = self
            .store
            .machines(None)
            .await?
            .into_iter()
            .find(|machine| {
                machine
                    .machine
                    .attached
                    .as_ref()
                    .is_some_and(|attached| attached.netns_id == netns_id)
            });
        if let Some(machine) = taken {
            return Err(ApiError::Conflict(format!(
                "network namespace {} is attached already, as machine {} of app {}",
                request.netns, machine.machine.id, machine.machine.app
            )));
        }
        let gateways = self.pool.gateways();
        Ok(Attachment {
            kind: request.kind,
            container_id: request.container_id,
            netns: request.netns,
            netns_id,
            ifname: request.ifname,
            gateways: (gateways.ipv4, gateways.ipv6),
        })
    }

    /// At start, before the data plane is reconciled: forgets attached
    /// machines whose namespace's owner is gone (the reconcile then removes
    /// their links and bindings). Returns how many.
    pub(crate) async fn forget_gone_attachments(&self) -> Result<usize, ApiError> {
        let mut forgotten = 0;
        for machine in self.store.machines(None).await? {
            let Some(attached) = &machine.machine.attached else {
                continue;
            };
            if is_gone(attached) {
                tracing::info!(machine = %machine.machine.id, netns = %attached.netns,
                    "the attached network namespace is gone: forgetting the machine");
                self.store.delete_machine(&machine.machine.id).await?;
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }
}

/// Refuses exec on an attached machine, saying why.
pub(crate) fn refuse_exec(machine: &StoredMachine) -> Result<(), ApiError> {
    match &machine.machine.attached {
        None => Ok(()),
        Some(attached) => Err(ApiError::Conflict(format!(
            "machine {} is attached to a network namespace its runtime made ({}): boxfence \
             runs no processes there, exec through the runtime",
            machine.machine.id,
            match attached.kind {
                AttachKind::Cni => "cni",
                AttachKind::Netns => "netns",
            }
        ))),
    }
}
