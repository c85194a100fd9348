//! The API's error answers: `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use boxfence_api::{ErrorBody, ErrorDetail};
use boxfence_engine::{EngineError, PoolError};
use boxfence_policy::{Diagnostic, ValidationError};
use boxfence_store::StoreError;

/// Why a request failed; each variant has one status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request broke validation rules, listed in `details`.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Every problem, each with its JSON path.
        details: Vec<Diagnostic>,
    },
    /// The body is not JSON.
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// No token, or a token that is not valid.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The token is valid but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// No such object (or one the caller may not see).
    #[error("{0}")]
    NotFound(String),
    /// A request names something that does not exist, at `details`' path.
    #[error("{message}")]
    NotFoundAt {
        /// Summary.
        message: String,
        /// Where the request names it.
        details: Vec<Diagnostic>,
    },
    /// The route exists, but not with this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The request conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The store cannot take writes now (disk full, I/O error): the write
    /// that failed is neither stored nor enforced, and retrying once that
    /// clears succeeds.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The body is declared as something other than JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// This daemon has no data plane.
    #[error("{0}")]
    NoDataPlane(String),
    /// The data plane failed; affected machines fail closed.
    #[error("{0}")]
    DataPlane(String),
    /// The address pools are exhausted.
    #[error("{0}")]
    Exhausted(String),
    /// A cap on what one tenant may hold at once is reached; the message
    /// names it.
    #[error("{message}")]
    TooManyRequests {
        /// Which cap, and its setting.
        message: String,
        /// Seconds to wait before retrying (the `Retry-After` header).
        retry_after: u64,
    },
    /// Anything else; details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A validation failure with one problem.
    pub(crate) fn invalid_at(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Invalid {
            message: format!("invalid request: {path}: {message}"),
            details: vec![Diagnostic {
                path: path.to_owned(),
                message,
            }],
        }
    }

    /// Something named at `path` of the request does not exist.
    pub(crate) fn not_found_at(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::NotFoundAt {
            message: format!("{path}: {message}"),
            details: vec![Diagnostic {
                path: path.to_owned(),
                message,
            }],
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) | Self::NotFoundAt { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::NoDataPlane(_) => (StatusCode::NOT_IMPLEMENTED, "no_data_plane"),
            Self::DataPlane(_) => (StatusCode::INTERNAL_SERVER_ERROR, "data_plane_failed"),
            Self::Exhausted(_) => (StatusCode::SERVICE_UNAVAILABLE, "addresses_exhausted"),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        let message = self.to_string();
        let retry_after = match &self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let details = match self {
            Self::Invalid { details, .. } | Self::NotFoundAt { details, .. } => details,
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
                details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let message = match error.problems.as_slice() {
            [only] => format!("invalid request: {only}"),
            [first, rest @ ..] => format!(
                "invalid request: {first} (and {} more problem(s), see details)",
                rest.len()
            ),
            [] => "invalid request".to_owned(),
        };
        Self::Invalid {
            message,
            details: error.problems,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            StoreError::NotFound(message) => Self::NotFound(message),
            error @ StoreError::AppHasMachines { .. } => Self::Conflict(error.to_string()),
            error @ StoreError::Unavailable(_) => Self::StoreUnavailable(error.to_string()),
            error => Self::Internal(error.to_string()),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Unavailable(_) => Self::NoDataPlane(error.to_string()),
            EngineError::Diverged(_) => Self::Conflict(error.to_string()),
            EngineError::NoSuchImage(_) => Self::NotFound(error.to_string()),
            EngineError::NoSuchMachine(_)
            | EngineError::Kernel(_)
            | EngineError::Exec(_)
            | EngineError::Sandbox(_)
            | EngineError::Unsupported(_) => Self::DataPlane(error.to_string()),
        }
    }
}

impl From<PoolError> for ApiError {
    fn from(error: PoolError) -> Self {
        Self::Exhausted(error.to_string())
    }
}
