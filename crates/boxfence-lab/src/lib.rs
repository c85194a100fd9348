//! A sealed network lab for boxfence's end-to-end tests (DESIGN.md
//! section 4).
//!
//! [`Lab::new`] builds two network namespaces: the **lab host**, where the
//! daemon under test runs and whose only link is a veth to the
//! **internet**, which runs test servers on documentation addresses (and
//! the two 104.16.0.0/12 hosts the seeds name). No packet of a lab can
//! reach the root namespace or beyond; [`Lab::assert_sealed`] proves it.
//! Dropping the lab removes everything it and the daemon created.
//!
//! ```no_run
//! use boxfence_lab::{Lab, SERVER_V4, ServerReply, require_root};
//!
//! if require_root("example") {
//!     let lab = Lab::new().expect("lab");
//!     let out = lab
//!         .host_exec(["curl", "-sS", "-m", "5", &format!("http://{SERVER_V4}/")])
//!         .expect("curl runs");
//!     let reply = ServerReply::parse(&String::from_utf8_lossy(&out.stdout)).expect("reply");
//!     assert_eq!(reply.server, SERVER_V4);
//! }
//! ```

#![forbid(unsafe_code)]

mod addresses;
mod curl;
mod delayed_dns;
mod dns;
mod error;
mod exec;
pub mod harness;
mod lab;
mod names;
mod netns;
mod processes;
mod reply;
mod root;
mod seal;
mod servers;
mod small_fs;
mod speed;
mod tls;
mod topology;

pub use addresses::{
    CDN_INSIDE_DENIED_V4, CDN_OUTSIDE_DENIED_V4, DNS_V4, DNS_V6, GATEWAY_V4, GATEWAY_V6, HOLD_PORT,
    HTTP_ALT_PORT, HTTP_PORT, HTTPS_PORT, INTERNET_LINK, LAB_HOST_V4, LAB_HOST_V6, OTHER_V4,
    QUIC_ECHO_PORT, SERVER_ADDRS, SERVER_LINK, SERVER_V4, SERVER_V6, TCP_PORTS, UDP_ECHO_PORT,
    UPLINK, UPLINK_PREFIX_V4, UPLINK_PREFIX_V6,
};
pub use curl::{CURL_STATUS, curl_outcome};
pub use delayed_dns::DelayedDns;
pub use dns::{DNS_RECORDS, LabDns};
pub use error::LabError;
pub use lab::Lab;
pub use reply::ServerReply;
pub use root::require_root;
pub use small_fs::SmallFs;
pub use speed::emulated;
