//! The flow log: its query, and the switch for logging allowed flows.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Most events one answer holds (a box keeps at most 1,000).
pub const MAX_FLOW_LIMIT: usize = 1000;

/// `?verdict=deny&since=…&limit=…&follow=true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlowQuery {
    /// Only events of this verdict.
    #[param(pattern = "^(allow|deny)$")]
    pub verdict: Option<String>,
    /// Only events at or after this time (milliseconds since the epoch).
    #[param(minimum = 0)]
    pub since: Option<u64>,
    /// At most this many of the latest events (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Stream events as Server-Sent Events (`event: flow`, one
    /// `FlowEvent` as data), history first.
    pub follow: Option<bool>,
}

/// `{"log_allowed": true|false}` (Machines API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineFlowLog {
    /// Also log the machine's allowed new connections (off by default).
    pub log_allowed: bool,
}

/// `{"logAllowed": true|false}` (Box API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoxFlowLog {
    /// Also log the box's allowed new connections (off by default).
    pub log_allowed: bool,
}
