//! What a call can fail with.

use boxfence_api::ErrorDetail;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error; its message is shown as is.
    #[error("{}", .body.message)]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: ErrorDetail,
    },
    /// The server could not be reached or the answer not read.
    #[error("cannot talk to the boxfence server: {}", causes(.0))]
    Http(#[from] reqwest::Error),
    /// The answer was not what the API documents.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// The client is not configured (e.g. no token).
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// The HTTP status when the server answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An error and its causes, outermost first: reqwest's own message
/// ("error sending request for url ...") hides why, e.g. "Connection
/// refused".
fn causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper repeats its inner error in its own message at times.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
