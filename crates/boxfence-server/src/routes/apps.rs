//! Apps and their tokens.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use boxfence_policy::{Diagnostics, JsonPath};
use serde::Deserialize;

use super::app_path;
use crate::auth::{Caller, mint};
use crate::body::{APP_NAME_RULE, ApiPath, ApiQuery, JsonBody, is_app_name};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::app_info;
use boxfence_api::ErrorBody;
use boxfence_api::{AppInfo, CreateApp, Deleted, TokenInfo};
use boxfence_policy::ObjectReader;

/// Answers for the caller's own app or 404 when it does not exist.
pub(crate) async fn visible_app(
    state: &AppState,
    caller: &Caller,
    app: &str,
) -> Result<boxfence_store::App, ApiError> {
    app_path(app)?;
    caller.check_app(app)?;
    state
        .store
        .app(app)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("app {app} not found")))
}

/// Create an app.
#[utoipa::path(post, path = "/v1/apps", tag = "apps",
    request_body = CreateApp,
    responses((status = 201, body = AppInfo), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<AppInfo>), ApiError> {
    caller.require_admin("create apps")?;
    let mut out = Diagnostics::default();
    let name =
        ObjectReader::new(&body, &JsonPath::root(), &["app_name"], &mut out).and_then(|object| {
            let name = object.string("app_name", is_app_name, APP_NAME_RULE, &mut out);
            if object.optional("app_name").is_none() {
                out.push(&JsonPath::root().field("app_name"), "required");
            }
            name
        });
    let name = out.finish(name)?;
    let app = state.store.create_app(&name).await?;
    Ok((StatusCode::CREATED, Json(app_info(app))))
}

/// List the apps the caller can see.
#[utoipa::path(get, path = "/v1/apps", tag = "apps",
    responses((status = 200, body = Vec<AppInfo>), (status = 401, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<AppInfo>>, ApiError> {
    let apps = state.store.apps().await?;
    Ok(Json(
        apps.into_iter()
            .filter(|app| caller.check_app(&app.name).is_ok())
            .map(app_info)
            .collect(),
    ))
}

/// Show an app.
#[utoipa::path(get, path = "/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")),
    responses((status = 200, body = AppInfo), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(app): ApiPath<String>,
) -> Result<Json<AppInfo>, ApiError> {
    Ok(Json(app_info(visible_app(&state, &caller, &app).await?)))
}

/// `?force=true`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Force {
    /// Also delete the app's machines.
    #[serde(default)]
    force: bool,
}

/// Delete an app with its policies and tokens; refuses while it has
/// machines unless `force=true`.
#[utoipa::path(delete, path = "/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"), Force),
    responses((status = 400, body = ErrorBody), (status = 200, body = Deleted), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 501, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(app): ApiPath<String>,
    ApiQuery(Force { force }): ApiQuery<Force>,
) -> Result<Json<Deleted>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    caller.require_admin("delete apps")?;
    let _app = state.lock_app(&app).await;
    if force {
        for machine in state.store.machines(Some(&app)).await? {
            state.remove_machine(&machine.machine.id).await?;
        }
    }
    state.store.delete_app(&app, force).await?;
    Ok(Json(Deleted::new(app)))
}

/// Mint a token that sees only this app (admin only). The token is shown
/// in this answer only.
#[utoipa::path(post, path = "/v1/apps/{app}/tokens", tag = "apps",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")),
    responses((status = 400, body = ErrorBody), (status = 201, body = TokenInfo), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn mint_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(app): ApiPath<String>,
) -> Result<(StatusCode, Json<TokenInfo>), ApiError> {
    visible_app(&state, &caller, &app).await?;
    caller.require_admin("mint tokens")?;
    let minted = mint(state.store.as_ref(), Some(&app)).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenInfo {
            id: minted.id,
            app_name: app,
            token: minted.text,
        }),
    ))
}
