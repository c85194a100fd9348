//! The error body of every failed request.

use boxfence_policy::Diagnostic;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_request`, `not_found`.
    #[schema(example = "invalid_request")]
    pub code: String,
    /// Human-readable summary.
    pub message: String,
    /// For invalid requests, every problem with its path: a JSON path in
    /// the body (`rules[0].ports[1].port`), or the name of the path or
    /// query parameter.
    #[serde(default)]
    pub details: Vec<Diagnostic>,
}
