//! Request bodies: JSON read as a value, then validated field by field so
//! that every problem is reported with its path.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
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
        json_content_type(request.headers())?;
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

/// Refuses a body declared as something other than JSON (`application/json`
/// or a `+json` type); a body without a `Content-Type` is read as JSON.
fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || essence.starts_with("application/") && essence.ends_with("+json");
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "the body must be JSON (Content-Type: application/json), not `{}`",
            value.to_str().unwrap_or("non-ASCII")
        )))
    }
}

/// A query string read into `T`; a value that does not fit is a 400 in
/// the API's error shape naming the parameter (axum's own answer is
/// text/plain).
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // serde_urlencoded names the parameter first: `since: invalid digit ...`.
                let (parameter, message) = match text.split_once(": ") {
                    Some((name, message)) if is_parameter_name(name) => (name, message),
                    _ => ("", text),
                };
                Err(ApiError::invalid_at(parameter, message))
            }
        }
    }
}

fn is_parameter_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Path parameters read into `T`; one that does not decode (bad
/// percent-encoding, not UTF-8) is a 400 in the API's error shape naming
/// the parameter.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                let parameter = match error.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. } => key.clone(),
                    _ => String::new(),
                };
                Err(ApiError::invalid_at(&parameter, error.body_text()))
            }
            Err(rejection) => Err(ApiError::invalid_at("", rejection.body_text())),
        }
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
