//! Typed async Rust SDK for the boxfence HTTP API, reusing the policy
//! core's types.
//!
//! ```no_run
//! # async fn demo() -> Result<(), boxfence_client::ClientError> {
//! use boxfence_client::{Box, BoxOptions, Client};
//! use boxfence_policy::BoxPolicy;
//!
//! let client = Client::from_env()?;
//! let mut sandbox = Box::create(&client, BoxOptions::default()).await?;
//! println!("{:?}", sandbox.network_policy()); // AllowAll
//! sandbox.update_network_policy(BoxPolicy::DenyAll).await?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod boxes;
mod client;
mod error;
mod types;

pub use boxes::{Box, BoxOptions};
/// The policy core, whose types the SDK takes and returns.
pub use boxfence_policy;
pub use client::{Client, DEFAULT_URL};
pub use error::{ApiErrorBody, ClientError};
pub use types::{
    Addresses, AppInfo, Applied, BoxGuest, BoxInfo, Deleted, Evaluation, ExecOutput, ExecRequest,
    MachineConfig, MachineGuest, MachineInfo, NewMachine, PolicyInfo, TokenInfo,
};
