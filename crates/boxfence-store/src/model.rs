//! The records the store keeps.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use boxfence_policy::{AppPolicy, BoxPolicy, Guest};

/// A namespace for machines and app policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Its name, unique.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// An app policy as stored; `policy.id` is always set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The app it belongs to.
    pub app: String,
    /// The policy, with its id.
    pub policy: AppPolicy,
    /// When it was first created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

impl StoredPolicy {
    /// The policy's id.
    pub fn id(&self) -> &str {
        self.policy.id.as_deref().unwrap_or_default()
    }
}

/// A machine to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMachine {
    /// Its id (12 characters of `[a-z0-9]`).
    pub id: String,
    /// Its app, which must exist.
    pub app: String,
    /// Its name, unique within the app.
    pub name: String,
    /// The runtime label the box API was given, if any.
    pub runtime: Option<String>,
    /// Its metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its box policy.
    pub network_policy: BoxPolicy,
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address.
    pub ipv6: Ipv6Addr,
    /// Its size (none for machines stored before sizes were kept).
    pub guest: Option<Guest>,
    /// Its image; none: the default root.
    pub image: Option<String>,
}

/// A machine as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMachine {
    /// Id, app, name, runtime, metadata, policy and addresses.
    pub machine: NewMachine,
    /// Bumped on every change (optimistic concurrency).
    pub version: i64,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

/// An API token to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Public id, part of the token text.
    pub id: String,
    /// The app it is scoped to; `None` for an admin token.
    pub app: Option<String>,
    /// SHA-256 of the secret part, hex.
    pub secret_hash: String,
}

/// An API token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// Id, scope and secret hash.
    pub token: NewToken,
    /// When it was minted (RFC 3339).
    pub created_at: String,
}
