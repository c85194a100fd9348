//! CNI errors: a code from the spec's table (or ours, from 100), a
//! message, and details, printed on stdout as the spec's error result.

use serde_json::{Value, json};

/// Why a command failed, with its CNI error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    /// 1: the configuration's `cniVersion` is not one this plugin speaks.
    #[error("incompatible CNI version {0}")]
    IncompatibleVersion(String),
    /// 3: the container has no attachment here.
    #[error("{0}")]
    UnknownContainer(String),
    /// 4: a required environment variable is missing or not valid.
    #[error("{0}")]
    InvalidEnvironment(String),
    /// 5: reading stdin or talking to the daemon failed.
    #[error("{0}")]
    Io(String),
    /// 6: stdin or an answer is not the JSON it should be.
    #[error("{0}")]
    Decode(String),
    /// 7: the network configuration (or what the runtime passed along
    /// with it: args, runtimeConfig) is not valid; the message names
    /// where.
    #[error("{0}")]
    InvalidConfig(String),
    /// 11: the daemon cannot do it now; the runtime may retry.
    #[error("{0}")]
    TryAgainLater(String),
    /// 50: the daemon is not there or not healthy (STATUS).
    #[error("{0}")]
    NotAvailable(String),
    /// 100: the kernel does not enforce what the daemon stored (CHECK).
    #[error("{0}")]
    NotEnforced(String),
    /// 101: the daemon refused or failed otherwise.
    #[error("{0}")]
    Daemon(String),
}

impl CniError {
    /// The code the spec (or, from 100, this plugin) gives it.
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion(_) => 1,
            Self::UnknownContainer(_) => 3,
            Self::InvalidEnvironment(_) => 4,
            Self::Io(_) => 5,
            Self::Decode(_) => 6,
            Self::InvalidConfig(_) => 7,
            Self::TryAgainLater(_) => 11,
            Self::NotAvailable(_) => 50,
            Self::NotEnforced(_) => 100,
            Self::Daemon(_) => 101,
        }
    }

    /// The error result, in `version`'s shape.
    pub fn to_json(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "code": self.code(),
            "msg": self.to_string(),
        })
    }
}
