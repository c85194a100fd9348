//! The parts of the OCI runtime specification (config.json and the
//! process of `runtime exec`) that boxfence writes, as serde types. Only
//! what is used is modelled; the runtime fills in its defaults for the
//! rest.

use serde::Serialize;

/// The OCI runtime spec version these types follow.
pub const OCI_VERSION: &str = "1.0.2";

/// config.json of a bundle.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// [`OCI_VERSION`].
    pub oci_version: &'static str,
    /// The container's first process.
    pub process: Process,
    /// The root filesystem.
    pub root: Root,
    /// The container's hostname (needs a UTS namespace).
    pub hostname: String,
    /// Mounts, in order, over the root.
    pub mounts: Vec<Mount>,
    /// Linux specifics.
    pub linux: Linux,
}

/// A process: the container's first, or one started by `exec`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// No terminal: output goes to the pipes the runtime was given.
    pub terminal: bool,
    /// Who it runs as, inside the user namespace.
    pub user: User,
    /// Program and arguments.
    pub args: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    /// Working directory, inside the container.
    pub cwd: String,
    /// Its capability sets.
    pub capabilities: Capabilities,
    /// `no_new_privs`: nothing it executes gains privileges.
    pub no_new_privileges: bool,
}

/// A user inside the container.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct User {
    /// Its uid.
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
}

/// The capability sets of a process (names like `CAP_KILL`).
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    /// The bounding set.
    pub bounding: Vec<String>,
    /// The effective set.
    pub effective: Vec<String>,
    /// The permitted set.
    pub permitted: Vec<String>,
}

impl Capabilities {
    /// The same `names` in every set that matters for a root process.
    pub fn all_of(names: &[&str]) -> Self {
        let names: Vec<String> = names.iter().map(|&n| n.to_owned()).collect();
        Self {
            bounding: names.clone(),
            effective: names.clone(),
            permitted: names,
        }
    }
}

/// The root filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct Root {
    /// Its directory (relative to the bundle, or absolute).
    pub path: String,
    /// Mounted read-only once the other mounts are in place.
    pub readonly: bool,
}

/// A mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    /// Where, inside the container.
    pub destination: String,
    /// The filesystem type (`bind` for bind mounts).
    #[serde(rename = "type")]
    pub kind: String,
    /// What is mounted.
    pub source: String,
    /// Mount options (`ro`, `nosuid`, `size=64m`, ...).
    pub options: Vec<String>,
}

/// Linux specifics of config.json.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// Container uid → host uid.
    pub uid_mappings: Vec<IdMapping>,
    /// Container gid → host gid.
    pub gid_mappings: Vec<IdMapping>,
    /// Namespaces: new ones, or existing ones by path.
    pub namespaces: Vec<Namespace>,
    /// The container's cgroup, relative to the cgroup root(s).
    pub cgroups_path: String,
    /// Its cgroup limits.
    pub resources: Resources,
    /// The syscall filter.
    pub seccomp: Seccomp,
    /// Paths made unreadable (a file or directory is covered).
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    pub readonly_paths: Vec<String>,
}

/// One contiguous id mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdMapping {
    /// First id inside the container.
    #[serde(rename = "containerID")]
    pub container_id: u32,
    /// First id on the host.
    #[serde(rename = "hostID")]
    pub host_id: u32,
    /// How many ids.
    pub size: u32,
}

/// A namespace of the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Namespace {
    /// `user`, `pid`, `mount`, `ipc`, `uts`, `network`, `cgroup`.
    #[serde(rename = "type")]
    pub kind: String,
    /// An existing namespace to join; none: a new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Cgroup limits (the runtime writes them to v1 or v2 controllers,
/// whichever the host mounts).
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    /// Memory.
    pub memory: MemoryLimit,
    /// Processes and threads.
    pub pids: PidsLimit,
    /// CPU time.
    pub cpu: CpuLimit,
}

/// A memory limit.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemoryLimit {
    /// Bytes.
    pub limit: i64,
}

/// A limit on tasks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PidsLimit {
    /// Processes and threads at once.
    pub limit: i64,
}

/// A CPU bandwidth limit: `quota` µs of CPU time per `period` µs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuLimit {
    /// Microseconds of CPU time per period.
    pub quota: i64,
    /// The period, in microseconds.
    pub period: u64,
}

/// A seccomp filter in the OCI form.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seccomp {
    /// What any syscall not named gets.
    pub default_action: &'static str,
    /// The errno of `SCMP_ACT_ERRNO` by default.
    pub default_errno_ret: u32,
    /// Architectures the filter covers.
    pub architectures: Vec<&'static str>,
    /// Rules, the first that matches applies.
    pub syscalls: Vec<SyscallRule>,
}

/// One seccomp rule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Syscall names.
    pub names: Vec<String>,
    /// `SCMP_ACT_ALLOW` or `SCMP_ACT_ERRNO`.
    pub action: &'static str,
    /// The errno for `SCMP_ACT_ERRNO`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions, all of which must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<SyscallArg>,
}

/// A condition on a syscall argument.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyscallArg {
    /// Which argument (0-based).
    pub index: u32,
    /// The value compared with.
    pub value: u64,
    /// The second value (the mask's result for `SCMP_CMP_MASKED_EQ`).
    pub value_two: u64,
    /// `SCMP_CMP_EQ`, `SCMP_CMP_MASKED_EQ`, ...
    pub op: &'static str,
}
