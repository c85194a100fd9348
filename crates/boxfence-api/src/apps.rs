//! Apps, tokens, deletes and health.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// 1-63 of lowercase letters, digits and `-`, not starting with `-`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")]
    pub app_name: String,
}

/// An app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppInfo {
    /// Its name.
    pub app_name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// A minted token; its text is shown only in this answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    /// The token's public id.
    pub id: String,
    /// The app it is scoped to.
    pub app_name: String,
    /// Send as `Authorization: Bearer <token>`; not shown again.
    pub token: String,
}

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// The id or name of what was deleted.
    pub id: String,
    /// Always true.
    pub deleted: bool,
}

impl Deleted {
    /// The answer for `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            deleted: true,
        }
    }
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unhealthy` while a part of the data plane does not work.
    #[schema(pattern = "^(ok|unhealthy)$", example = "ok")]
    pub status: String,
    /// What does not work, one sentence per part, starting with its name
    /// (`resolver: ...`); absent when healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}
