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

pub use boxes::Box;
/// The API's wire types, which the server answers with.
pub use boxfence_api;
pub use boxfence_api::{
    Addresses, AppInfo, Applied, BoxGuest, BoxInfo, BoxOptions, Deleted, ErrorDetail, Evaluation,
    ExecOutput, ExecRequest, MachineConfig, MachineGuest, MachineInfo, NewMachine, PolicyInfo,
    TokenInfo,
};
/// The policy core, whose types the SDK takes and returns.
pub use boxfence_policy;
pub use client::{Client, DEFAULT_URL};
pub use error::ClientError;
