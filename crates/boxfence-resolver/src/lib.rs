//! The built-in DNS resolver (DESIGN.md 1.6): it answers only boxes,
//! refuses locally every name a box may not reach (nothing is sent
//! upstream for it), removes answers that point into always-blocked
//! ranges, and authorises the addresses of an allowed answer in the kernel
//! before the box receives it.

#![forbid(unsafe_code)]

pub mod answer;
pub mod decision;
pub mod directory;
pub mod histogram;
pub mod rate;
pub mod server;
mod sockets;
mod supervisor;
pub mod tcp;
pub mod upstream;

pub use server::{Learner, Learning, Refusal, Resolver, ResolverConfig, Stats};
pub use tcp::TcpLimits;
pub use upstream::UpstreamError;
