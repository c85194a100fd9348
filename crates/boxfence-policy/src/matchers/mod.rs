//! Compiled matchers: the lookup structures that evaluation and the kernel
//! sets are built from.

mod cidr_set;
mod domain_set;
mod port_set;

pub use cidr_set::{CidrSet, IpRange};
pub use domain_set::DomainSet;
pub use port_set::PortSet;
