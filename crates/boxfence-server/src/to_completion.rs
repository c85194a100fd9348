//! Every request runs to its end, even when its client goes away.
//!
//! Dropped halfway, a handler would release what it holds (an app's
//! lock, an exec's place under its caps) while the work it started goes
//! on in the data plane: a client that hangs up could then have more
//! changes queued, or more execs running, than the caps allow, and a
//! create could leave its record behind after the data plane failed.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Middleware: runs the rest of the request on a task of its own and
/// waits for it; the task finishes even if this wait is dropped.
pub(crate) async fn run_to_completion(request: Request, next: Next) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(error) => {
            ApiError::Internal(format!("request handler failed: {error}")).into_response()
        }
    }
}
