//! HTTP handlers, one module per resource.

pub(crate) mod apps;
pub(crate) mod boxes;
pub(crate) mod flows;
pub(crate) mod host;
pub(crate) mod machines;
pub(crate) mod policies;

use crate::body::{APP_NAME_RULE, is_app_name};
use crate::error::ApiError;

/// Checks an app name from a path, so bad names get a clear 400.
pub(crate) fn app_path(app: &str) -> Result<(), ApiError> {
    if is_app_name(app) {
        Ok(())
    } else {
        Err(ApiError::invalid_at(
            "app_name",
            format!("must be {APP_NAME_RULE}"),
        ))
    }
}
