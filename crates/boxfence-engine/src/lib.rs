//! The engine: what the control plane asks of the data plane.
//!
//! The server stores desired state, then calls an [`Engine`] to make the
//! kernel match it before it answers 2xx. Without a data plane (a host
//! where boxfence cannot manage network namespaces), [`Unavailable`]
//! refuses every machine operation, so the API never pretends.

#![forbid(unsafe_code)]

mod address_pool;
mod allowed;
mod denials;
mod dns;
mod ephemeral;
pub mod flowlog;
pub mod host;
mod linux;
mod metrics;
mod name_check;
mod set_writer;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use boxfence_dataplane::links::BoxSide;
use boxfence_policy::{EffectivePolicy, FlowEvent, HostReport};
use serde::{Deserialize, Serialize};

pub use address_pool::{AddressPool, PoolError};
pub use boxfence_dataplane::links::box_mac;
pub use boxfence_dataplane::netns_identity;
pub use dns::{QUERY_RATE_PER_BOX, ResolverHandle};
pub use ephemeral::{EphemeralRun, RUN_MARK, run_pool};
pub use linux::{LinuxConfig, LinuxEngine, SandboxConfig, SharedLinuxEngine};
pub use metrics::EngineMetrics;

/// The addresses a machine owns, for as long as it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MachineAddresses {
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address.
    pub ipv6: Ipv6Addr,
}

/// A machine as the data plane needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineSpec {
    /// The machine's id (names its netns and host-side interface).
    pub id: String,
    /// Its addresses, allocated by the control plane from the pools.
    pub addresses: MachineAddresses,
    /// Its size; none: the configured default.
    pub guest: Option<boxfence_policy::Guest>,
    /// The foreign network namespace it is attached to; none: the engine
    /// makes its namespace and its sandbox.
    pub attachment: Option<Attachment>,
    /// The image of its root (a name in the host's image store); none:
    /// the default root.
    pub image: Option<String>,
}

/// A network namespace someone else made (a container runtime), that a
/// machine enforces the layers on: it gets the box's link, addresses and
/// routes, and no sandbox (its processes are the runtime's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Where the namespace is (`/proc/<pid>/ns/net`, a bind mount); read
    /// only when the machine is made.
    pub netns: PathBuf,
    /// The name of the box side's interface in it.
    pub ifname: String,
}

impl Attachment {
    /// The box side of the machine's link: named as asked, with a
    /// hardware address derived from its IPv4 address, which the runtime
    /// is told.
    pub fn side(&self, addresses: &MachineAddresses) -> BoxSide {
        BoxSide {
            ifname: Some(self.ifname.clone()),
            mac: Some(box_mac(addresses.ipv4)),
        }
    }
}

/// A command to run inside a machine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments; the program is looked up in `PATH`.
    pub command: Vec<String>,
    /// Bytes written to the command's standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// How long the command may run before its process tree is killed.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "seconds")]
    pub timeout: Option<Duration>,
}

/// What a command inside a machine did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Exit status; 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// Standard output (lossy UTF-8, bounded).
    pub stdout: String,
    /// Standard error (lossy UTF-8, bounded).
    pub stderr: String,
}

/// Why the data plane could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// This daemon runs without a data plane.
    #[error("no data plane: {0}")]
    Unavailable(String),
    /// The machine is not known to the data plane.
    #[error("machine {0} not found in the data plane")]
    NoSuchMachine(String),
    /// The kernel refused a change; affected machines were put in deny-all.
    #[error("applying to the kernel failed (affected machines fail closed): {0}")]
    Kernel(String),
    /// A command could not be started inside the machine.
    #[error("exec failed: {0}")]
    Exec(String),
    /// The box's container could not be made, used or removed (the OCI
    /// runtime missing, say).
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// The kernel does not hold what the engine enforces for a machine
    /// (what a check found, each problem named).
    #[error("not enforced as stored: {0}")]
    Diverged(String),
    /// The machine names an image this host's image store does not have.
    #[error("no image `{0}` on this host (boxfence image import)")]
    NoSuchImage(String),
    /// The kernel lacks a feature the data plane cannot work without.
    #[error(transparent)]
    Unsupported(#[from] boxfence_dataplane::features::MissingFeature),
}

/// The data plane as the control plane sees it. Every method returns only
/// once the kernel enforces the result.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Creates the machine's network with `policy` enforced from its first
    /// packet.
    async fn create_machine(
        &self,
        machine: &MachineSpec,
        policy: &EffectivePolicy,
    ) -> Result<(), EngineError>;

    /// Removes the machine's network and its flows.
    async fn delete_machine(&self, id: &str) -> Result<(), EngineError>;

    /// Enforces new effective policies for running machines, atomically:
    /// all of them or, on failure, those machines fail closed.
    async fn apply(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError>;

    /// Makes the data plane match the store: creates what is missing,
    /// repairs what differs, removes machines the store no longer has.
    async fn reconcile(
        &self,
        machines: &[(MachineSpec, EffectivePolicy)],
    ) -> Result<(), EngineError>;

    /// Checks, without changing anything, that the kernel holds what the
    /// engine enforces for the machine: its link on both sides, its
    /// addresses, and the ruleset as the model has it.
    async fn check_machine(&self, id: &str) -> Result<(), EngineError> {
        let _ = id;
        Err(EngineError::Unavailable("no data plane to check".into()))
    }

    /// Runs a command inside the machine.
    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, EngineError>;

    /// The machine's recent flow events, oldest first (see
    /// [`flowlog::FlowLog::history`]). None without a data plane.
    fn flows(
        &self,
        id: &str,
        since_ms: Option<u64>,
        verdict: Option<&str>,
        limit: usize,
    ) -> Vec<FlowEvent> {
        let _ = (id, since_ms, verdict, limit);
        Vec::new()
    }

    /// Turns logging of a machine's allowed new connections on or off
    /// (off by default).
    async fn set_log_allowed(&self, id: &str, on: bool) -> Result<(), EngineError> {
        let _ = (id, on);
        Err(EngineError::Unavailable(
            "no data plane to log flows".into(),
        ))
    }

    /// The data plane's metrics in the Prometheus text format.
    fn metrics_text(&self) -> String {
        String::new()
    }

    /// Every flow event from now on, of every machine.
    fn subscribe_flows(&self) -> Option<tokio::sync::broadcast::Receiver<FlowEvent>> {
        None
    }

    /// Whether this host can make a machine from `image` (an engine
    /// without images refuses nothing here: its create fails instead).
    fn check_image(&self, image: &str) -> Result<(), EngineError> {
        let _ = image;
        Ok(())
    }

    /// Whether the data plane's services work now; if not, a sentence per
    /// part that does not, starting with its name (`resolver: ...`).
    fn health(&self) -> Result<(), Vec<String>> {
        Ok(())
    }

    /// What the host offers the data plane: the kernel features this
    /// engine found and uses, the path each part takes, and the other
    /// prerequisites read now.
    fn host_report(&self) -> HostReport {
        host::gather(Err("this engine drives no kernel"), None)
    }
}

/// An engine for a daemon without a data plane: refuses machine work.
#[derive(Debug, Clone)]
pub struct Unavailable {
    /// Why there is no data plane, said in every refusal.
    pub reason: String,
}

#[async_trait]
impl Engine for Unavailable {
    async fn create_machine(
        &self,
        _: &MachineSpec,
        _: &EffectivePolicy,
    ) -> Result<(), EngineError> {
        Err(EngineError::Unavailable(self.reason.clone()))
    }

    async fn delete_machine(&self, _: &str) -> Result<(), EngineError> {
        Err(EngineError::Unavailable(self.reason.clone()))
    }

    async fn apply(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError> {
        if policies.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Unavailable(self.reason.clone()))
        }
    }

    async fn reconcile(
        &self,
        machines: &[(MachineSpec, EffectivePolicy)],
    ) -> Result<(), EngineError> {
        if machines.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Unavailable(self.reason.clone()))
        }
    }

    async fn exec(&self, _: &str, _: &ExecRequest) -> Result<ExecOutput, EngineError> {
        Err(EngineError::Unavailable(self.reason.clone()))
    }

    fn host_report(&self) -> HostReport {
        host::gather(Err(&self.reason), None)
    }
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_f64(duration.as_secs_f64()),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let seconds = Option::<f64>::deserialize(deserializer)?;
        seconds
            .map(|s| Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
