//! `GET /v1/host`: what the host offers the data plane, as this daemon
//! found it (admin only: it describes the host, not an app).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use boxfence_policy::HostReport;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use boxfence_api::ErrorBody;

/// The host report: the kernel features the daemon's probe found (and
/// uses), the path each part of the data plane takes, and the other
/// prerequisites (forwarding, cgroup version, binaries, uplinks) read now.
#[utoipa::path(get, path = "/v1/host", tag = "meta",
    responses((status = 200, description = "The host report; `ok` is false with `problems` naming why",
               body = HostReport),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<HostReport>, ApiError> {
    caller.require_admin("read /v1/host: it describes the host, not an app")?;
    Ok(Json(state.engine.host_report()))
}
