//! Request bodies: JSON read as a value, then validated field by field so
//! that every problem is reported with its path.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::Value;

use crate::error::ApiError;

/// Largest request body accepted by default.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A JSON request body, parsed but not yet validated.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(DEFAULT_BODY_LIMIT, |limit| limit.0);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::MalformedJson("the body is empty".into()));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|error| ApiError::MalformedJson(error.to_string()))
    }
}

/// The body limit in force, so the 413 answer can name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// App names: 1-63 characters of `[a-z0-9-]`, starting with a letter or
/// digit (they appear in URLs and host names).
pub(crate) fn is_app_name(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && !text.starts_with('-')
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The rule [`is_app_name`] checks, for messages.
pub(crate) const APP_NAME_RULE: &str =
    "1-63 characters of lowercase letters, digits and '-', not starting with '-'";

/// Machine names and runtime labels: 1-128 characters of letters, digits,
/// `.`, `_` and `-` (as policy names).
pub(crate) fn is_name(text: &str) -> bool {
    (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The rule [`is_name`] checks, for messages.
pub(crate) const NAME_RULE: &str = "1-128 characters of letters, digits, '.', '_' and '-'";
