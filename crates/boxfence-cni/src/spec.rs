//! What the runtime hands the plugin (CNI spec 1.1, section "Parameters"):
//! the command and container in environment variables, the network
//! configuration on stdin.

use std::path::PathBuf;

use serde_json::Value;

use crate::error::CniError;

/// The versions whose configurations and results this plugin speaks.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Where the daemon's unix socket is unless the configuration says.
pub const DEFAULT_SOCKET: &str = "/run/boxfence/api.sock";

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container's namespace.
    Add,
    /// Detach it; nothing there is no error.
    Del,
    /// Verify it is attached as the daemon says (0.4.0 and later).
    Check,
    /// Remove this network's attachments the runtime no longer knows
    /// (1.1.0).
    Gc,
    /// Whether the plugin can serve ADDs now (1.1.0).
    Status,
    /// The versions this plugin speaks.
    Version,
}

impl Command {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "ADD" => Self::Add,
            "DEL" => Self::Del,
            "CHECK" => Self::Check,
            "GC" => Self::Gc,
            "STATUS" => Self::Status,
            "VERSION" => Self::Version,
            _ => return None,
        })
    }
}

/// The environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (ADD, DEL, CHECK).
    pub container_id: String,
    /// `CNI_NETNS` (ADD, CHECK; DEL may lack it).
    pub netns: Option<String>,
    /// `CNI_IFNAME` (ADD, DEL, CHECK).
    pub ifname: String,
    /// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
    pub args: Option<String>,
}

impl Env {
    /// Reads the variables the spec requires for the command, through
    /// `var` (the process environment, or a test's).
    pub fn read(var: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let present = |name: &str| var(name).filter(|value| !value.is_empty());
        let command = present("CNI_COMMAND")
            .ok_or_else(|| CniError::InvalidEnvironment("CNI_COMMAND is not set".into()))?;
        let command = Command::parse(&command).ok_or_else(|| {
            CniError::InvalidEnvironment(format!(
                "CNI_COMMAND `{command}` is none of ADD, DEL, CHECK, GC, STATUS, VERSION"
            ))
        })?;
        let per_container = matches!(command, Command::Add | Command::Del | Command::Check);
        let required = |name: &str| -> Result<String, CniError> {
            if !per_container {
                return Ok(String::new());
            }
            present(name).ok_or_else(|| CniError::InvalidEnvironment(format!("{name} is not set")))
        };
        let container_id = required("CNI_CONTAINERID")?;
        if per_container && !is_container_id(&container_id) {
            return Err(CniError::InvalidEnvironment(format!(
                "CNI_CONTAINERID `{container_id}` must be letters, digits, '_', '.' and '-'"
            )));
        }
        let ifname = required("CNI_IFNAME")?;
        let netns = present("CNI_NETNS");
        if matches!(command, Command::Add | Command::Check) && netns.is_none() {
            return Err(CniError::InvalidEnvironment("CNI_NETNS is not set".into()));
        }
        if command != Command::Version && present("CNI_PATH").is_none() {
            return Err(CniError::InvalidEnvironment("CNI_PATH is not set".into()));
        }
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            args: present("CNI_ARGS"),
        })
    }
}

fn is_container_id(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The network configuration on stdin.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// `cniVersion`: the shape of results and errors.
    pub cni_version: String,
    /// `name`: the network.
    pub name: String,
    /// `app`: the boxfence app whose machines the containers become.
    pub app: String,
    /// `socket`: the daemon's unix socket.
    pub socket: PathBuf,
    /// The whole document (args, runtimeConfig, prevResult, GC's list).
    pub raw: Value,
}

impl NetConf {
    /// Parses and checks the configuration.
    pub fn parse(stdin: &[u8]) -> Result<Self, CniError> {
        let raw: Value = serde_json::from_slice(stdin).map_err(|error| {
            CniError::Decode(format!("the network configuration is not JSON: {error}"))
        })?;
        if !raw.is_object() {
            return Err(CniError::InvalidConfig(
                "the network configuration must be a JSON object".into(),
            ));
        }
        let text = |key: &str| -> Result<String, CniError> {
            match raw.get(key) {
                Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
                Some(_) => Err(CniError::InvalidConfig(format!(
                    "`{key}` must be a non-empty string"
                ))),
                None => Err(CniError::InvalidConfig(format!("`{key}` is required"))),
            }
        };
        let cni_version = text("cniVersion")?;
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(CniError::IncompatibleVersion(format!(
                "{cni_version} (this plugin speaks {})",
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        let socket = match raw.get("socket") {
            None => PathBuf::from(DEFAULT_SOCKET),
            Some(Value::String(path)) if path.starts_with('/') => PathBuf::from(path),
            Some(_) => {
                return Err(CniError::InvalidConfig(
                    "`socket` must be the absolute path of the daemon's unix socket".into(),
                ));
            }
        };
        Ok(Self {
            name: text("name")?,
            app: text("app")?,
            socket,
            cni_version,
            raw,
        })
    }

    /// Whether the configuration's version is `major.minor` or later.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self.cni_version.split('.').map(|n| n.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
    }
}

/// The answer to VERSION, for a configuration that asked in `version`.
pub fn version_answer(version: &str) -> Value {
    serde_json::json!({
        "cniVersion": version,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}
