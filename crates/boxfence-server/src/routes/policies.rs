//! App policies (Machines API): apply, list, show, delete. Each change is
//! committed, then every machine of the app gets its recomputed effective
//! policy enforced, before the answer.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use boxfence_policy::AppPolicy;

use super::apps::visible_app;
use crate::auth::Caller;
use crate::body::{ApiPath, JsonBody};
use crate::error::ApiError;
use crate::ids::new_id;
use crate::state::AppState;
use crate::views::policy_info;
use boxfence_api::ErrorBody;
use boxfence_api::{Applied, Deleted, PolicyInfo};

/// Create a policy, or update one: the one with `id` when given, else the
/// one with the same `name` (idempotent apply).
#[utoipa::path(post, path = "/v1/apps/{app}/network_policies", tag = "network_policies",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")),
    request_body = AppPolicy,
    responses((status = 201, description = "created", body = Applied<PolicyInfo>),
              (status = 200, description = "updated", body = Applied<PolicyInfo>),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn apply(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(app): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Applied<PolicyInfo>>), ApiError> {
    visible_app(&state, &caller, &app).await?;
    let policy = AppPolicy::from_json(&body)?;
    let warnings = policy.warnings(&state.blocked);
    let new_id = new_id();
    let _app = state.lock_app(&app).await;
    let stored = state.store.put_policy(&app, &policy, &new_id).await?;
    state.enforce_app(&app).await?;
    let status = if stored.id() == new_id {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Applied {
            value: policy_info(stored),
            warnings,
        }),
    ))
}

/// List the app's policies, by name.
#[utoipa::path(get, path = "/v1/apps/{app}/network_policies", tag = "network_policies",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Vec<PolicyInfo>), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(app): ApiPath<String>,
) -> Result<Json<Vec<PolicyInfo>>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let policies = state.store.policies(&app).await?;
    Ok(Json(policies.into_iter().map(policy_info).collect()))
}

/// The same list, at the path the seed writes with a trailing slash.
#[utoipa::path(get, path = "/v1/apps/{app}/network_policies/", tag = "network_policies",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Vec<PolicyInfo>), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn list_slash(
    state: State<Arc<AppState>>,
    caller: Extension<Caller>,
    app: ApiPath<String>,
) -> Result<Json<Vec<PolicyInfo>>, ApiError> {
    list(state, caller, app).await
}

/// Show one policy.
#[utoipa::path(get, path = "/v1/apps/{app}/network_policies/{id}", tag = "network_policies",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Policy id")),
    responses((status = 400, body = ErrorBody), (status = 200, body = PolicyInfo), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<Json<PolicyInfo>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let policy = state
        .store
        .policy(&app, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("policy {id} not found in app {app}")))?;
    Ok(Json(policy_info(policy)))
}

/// Delete a policy; its machines lose its rules at once.
#[utoipa::path(delete, path = "/v1/apps/{app}/network_policies/{id}", tag = "network_policies",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Policy id")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Deleted), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let _app = state.lock_app(&app).await;
    if !state.store.delete_policy(&app, &id).await? {
        return Err(ApiError::NotFound(format!(
            "policy {id} not found in app {app}"
        )));
    }
    state.enforce_app(&app).await?;
    Ok(Json(Deleted::new(id)))
}
