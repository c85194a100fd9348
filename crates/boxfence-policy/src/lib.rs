//! The policy core of boxfence: both seeds' policy languages, their
//! validation, their combination into one machine's effective policy, the
//! compiled matchers the kernel sets are built from, and explain.
//!
//! Every semantic rule of DESIGN.md section 1 lives here once. This crate
//! does no I/O; the data plane compiles from it and never re-decides.

mod app_policy;
mod blocked;
mod box_policy;
mod cidr;
mod diagnostic;
mod domain;
mod effective;
mod explain;
mod flow;
mod flow_event;
pub mod guest;
mod host;
pub mod image;
pub mod matchers;
mod name_check;
#[cfg(feature = "openapi")]
pub mod openapi;
mod ports;
mod reader;

pub use app_policy::{Action, AppPolicy, Direction, MachineRef, Rule, Selector, read_metadata};
pub use blocked::{ALWAYS_BLOCKED, AlwaysBlocked, BlockCheck, BlockedBlock, ExemptionError};
pub use box_policy::{BoxPolicy, CustomPolicy};
pub use cidr::{Cidr, CidrError};
pub use diagnostic::{Diagnostic, Diagnostics, JsonPath, ValidationError};
pub use domain::{DomainError, DomainName, DomainPattern, canonical};
pub use effective::{
    BoxLayer, CompiledAppPolicy, CompiledRule, CustomLayer, EffectivePolicy, Machine, Peers,
};
pub use explain::{Finding, Layer, Reason, Verdict, evaluate, evaluate_name};
pub use flow::Flow;
pub use flow_event::{FlowEvent, FlowEventKind};
pub use guest::{Guest, GuestRequest, read_guest};
pub use host::{
    BinaryReport, CgroupVersion, FeatureReport, FeatureStatus, Forwarding, HostReport, PathReport,
    UplinkReport,
};
pub use name_check::{Claim, NameCheck, QUIC_PORT, check_name, refusal};
pub use ports::{PortRange, PortRule, Protocol};
pub use reader::{MAX_LIST_ENTRIES, ObjectReader};
