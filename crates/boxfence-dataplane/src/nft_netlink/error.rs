//! What can go wrong talking nf_tables over netlink.

use std::time::Duration;

use nix::errno::Errno;

/// A set-element batch failed; nothing of it was applied unless said otherwise.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// A system call on the netlink socket failed (`op` names it).
    #[error("netlink {op}: {errno}")]
    Socket {
        /// The call, e.g. `socket`, `bind`, `send`, `recv`.
        op: &'static str,
        /// The error it returned.
        errno: Errno,
    },
    /// The kernel refused one message of the batch, so the whole transaction was aborted.
    #[error(
        "nf_tables {operation} of {elements} element(s) in set `{set}` of table `inet {table}` failed: {errno}{}",
        hint(*errno)
    )]
    Kernel {
        /// The message kind: `NEWSETELEM`, `DELSETELEM` or `DESTROYSETELEM`.
        operation: &'static str,
        /// The table (family `inet`).
        table: String,
        /// The set the message was for.
        set: String,
        /// How many elements the refused message carried.
        elements: usize,
        /// The kernel's error.
        errno: Errno,
    },
    /// The kernel refused one ruleset command, so the whole transaction was aborted.
    #[error("nf_tables refused `{command}`: {errno}{}", hint(*errno))]
    Command {
        /// The command as nft text.
        command: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// The kernel refused the batch as a whole (no `CAP_NET_ADMIN`, or the commit failed).
    #[error("nf_tables batch for table `inet {table}` failed: {errno}")]
    Batch {
        /// The table.
        table: String,
        /// The kernel's error.
        errno: Errno,
    },
    /// The kernel did not acknowledge every message in time; the outcome is unknown.
    #[error("no complete nf_tables reply for table `inet {table}` within {waited:?}")]
    Timeout {
        /// The table.
        table: String,
        /// How long we waited.
        waited: Duration,
    },
    /// A table or set name is empty, longer than 255 bytes, or contains NUL.
    #[error("invalid nf_tables name {0:?}")]
    InvalidName(String),
    /// An interface name is empty, longer than 15 bytes, or contains NUL.
    #[error("invalid interface name {0:?} (1 to 15 bytes, no NUL)")]
    InvalidIfname(String),
    /// A timeout is under one millisecond or too large for the kernel.
    #[error("invalid timeout {timeout:?} for set `{set}` (from 1 ms to about 584 years)")]
    InvalidTimeout {
        /// The set.
        set: String,
        /// The timeout asked for.
        timeout: Duration,
    },
    /// The batch does not fit the socket's send buffer even after enlarging it.
    #[error("nf_tables batch of {bytes} bytes is larger than the socket can send")]
    TooLarge {
        /// The encoded size.
        bytes: usize,
    },
    /// A rule or element of the model cannot be expressed (an invalid
    /// interface name, say).
    #[error(transparent)]
    Lower(#[from] crate::nft::lower::LowerError),
    /// The kernel sent a reply this client cannot parse.
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
}

/// A short explanation for the errors a caller most often meets.
fn hint(errno: Errno) -> &'static str {
    match errno {
        Errno::ENOENT => " (no such table or set, or, for a delete, no such element)",
        Errno::EINVAL => {
            " (key type or length does not match the set, or the set lacks `flags timeout`)"
        }
        Errno::EPERM => " (needs CAP_NET_ADMIN in the socket's network namespace)",
        Errno::ENFILE => " (the set is full)",
        Errno::ERANGE => " (timeout out of range)",
        _ => "",
    }
}
