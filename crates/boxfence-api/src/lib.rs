//! The wire types of the boxfence HTTP API: every request and response
//! body, with serde for both sides and utoipa schemas from which the
//! OpenAPI document is generated. The server answers with these types and
//! the Rust client reads them, so the three cannot drift apart.
//!
//! Policies are the policy core's own types (`boxfence_policy`), whose
//! schemas live beside their validating readers.

#![forbid(unsafe_code)]

mod apps;
mod boxes;
mod errors;
mod flows;
mod machines;

pub use apps::{AppInfo, CreateApp, Deleted, Health, TokenInfo};
pub use boxes::{BoxExecOutput, BoxGuest, BoxInfo, BoxOptions, NetworkPolicyAnswer};
pub use boxfence_policy;
pub use errors::{ErrorBody, ErrorDetail};
pub use flows::{BoxFlowLog, FlowQuery, MAX_FLOW_LIMIT, MachineFlowLog};
pub use machines::{
    Addresses, Applied, AttachRequest, Attached, Checked, Evaluation, ExecOutput, ExecRequest,
    Finding, MachineConfig, MachineGuest, MachineInfo, MetadataPatch, NewMachine, PolicyInfo,
};

/// Patterns of names in paths and bodies, so the document and the
/// server's checks say the same.
pub mod patterns {
    /// App names: 1-63 of lowercase letters, digits and `-`, not first.
    pub const APP_NAME: &str = r"^[a-z0-9][a-z0-9-]{0,62}$";
    /// Machine names, runtime labels, policy names and ids.
    pub const NAME: &str = r"^[A-Za-z0-9._-]{1,128}$";
    /// Machine (box) ids.
    pub const MACHINE_ID: &str = r"^[a-z0-9]{12}$";
}
