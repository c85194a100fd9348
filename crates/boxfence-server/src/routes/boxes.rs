//! Boxes (Box API, camelCase). A box is a machine: these handlers show
//! and change the same stored objects as the Machines API.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use boxfence_policy::{BoxPolicy, Diagnostics, GuestRequest, JsonPath, read_guest, read_metadata};
use boxfence_store::{StoreError, StoredMachine};

use super::machines::{nested_warnings, read_box_policy, read_exec, read_image, require_image};
use crate::auth::Caller;
use crate::body::{APP_NAME_RULE, ApiPath, JsonBody, NAME_RULE, is_app_name, is_name};
use crate::error::ApiError;
use crate::machines::MachineRequest;
use crate::state::AppState;
use crate::views::box_info;
use boxfence_api::ErrorBody;
use boxfence_api::{
    Applied, BoxExecOutput, BoxInfo, BoxOptions, Deleted, ExecRequest, NetworkPolicyAnswer,
};
use boxfence_policy::ObjectReader;

/// The app boxes go to when none is named.
pub const DEFAULT_APP: &str = "default";

/// The box `id`, if the caller may see its app.
pub(crate) async fn visible_box(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<StoredMachine, ApiError> {
    let machine = state.find_machine(None, id).await?;
    caller
        .check_app(&machine.machine.app)
        .map_err(|_| ApiError::NotFound(format!("machine {id} not found")))?;
    Ok(machine)
}

/// Create a box.
#[utoipa::path(post, path = "/v1/boxes", tag = "boxes",
    request_body = BoxOptions,
    responses((status = 201, body = Applied<BoxInfo>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Applied<BoxInfo>>), ApiError> {
    let mut out = Diagnostics::default();
    let fields = [
        "runtime",
        "networkPolicy",
        "metadata",
        "app",
        "guest",
        "image",
    ];
    let parsed =
        ObjectReader::new(&body, &JsonPath::root(), &fields, &mut out).and_then(|object| {
            let runtime = object.string("runtime", is_name, NAME_RULE, &mut out);
            let app = object.string("app", is_app_name, APP_NAME_RULE, &mut out);
            let metadata = object
                .optional("metadata")
                .map_or(Some(Default::default()), |(value, path)| {
                    read_metadata(value, &path, &mut out)
                });
            let network_policy = read_box_policy(object.optional("networkPolicy"), &mut out);
            let guest = match object.optional("guest") {
                None => Some(GuestRequest::default()),
                Some((value, path)) => read_guest(value, &path, "memoryMb", &mut out),
            };
            let image = read_image(object.optional("image"), &mut out);
            Some((app, runtime, metadata?, network_policy?, guest?, image?))
        });
    let (app, runtime, metadata, network_policy, guest, image) = out.finish(parsed)?;
    require_image(&state, image.as_deref(), "image")?;
    let app = match (app, &caller) {
        (Some(app), _) => app,
        (None, Caller::App(own)) => own.clone(),
        (None, Caller::Admin) => DEFAULT_APP.to_owned(),
    };
    caller.check_app(&app)?;
    let mut created_default = false;
    if state.store.app(&app).await?.is_none() {
        if app != DEFAULT_APP {
            return Err(ApiError::NotFound(format!("app {app} not found")));
        }
        match state.store.create_app(DEFAULT_APP).await {
            Ok(_) => created_default = true,
            Err(StoreError::Conflict(_)) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let warnings = nested_warnings(&network_policy, &state, "networkPolicy");
    let created = state
        .create_machine(MachineRequest {
            app,
            name: None,
            runtime,
            metadata,
            network_policy,
            guest,
            attach: None,
            image,
        })
        .await;
    if created.is_err() && created_default {
        // A refused create leaves nothing behind. The delete refuses if a
        // concurrent create put a machine in the app meanwhile.
        if let Err(error) = state.store.delete_app(DEFAULT_APP, false).await {
            tracing::debug!(%error, "the app {DEFAULT_APP} stays");
        }
    }
    let machine = created?;
    Ok((
        StatusCode::CREATED,
        Json(Applied {
            value: box_info(machine),
            warnings,
        }),
    ))
}

/// Show a box, with its `networkPolicy`.
#[utoipa::path(get, path = "/v1/boxes/{id}", tag = "boxes",
    params(("id" = String, Path, description = "Box id", pattern = r"^[a-z0-9]{12}$")),
    responses((status = 200, body = BoxInfo), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BoxInfo>, ApiError> {
    Ok(Json(box_info(visible_box(&state, &caller, &id).await?)))
}

/// Replace a running box's policy; in force before the answer.
#[utoipa::path(put, path = "/v1/boxes/{id}/network-policy", tag = "boxes",
    params(("id" = String, Path, description = "Box id", pattern = r"^[a-z0-9]{12}$")),
    request_body = BoxPolicy,
    responses((status = 200, body = NetworkPolicyAnswer), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 500, body = ErrorBody), (status = 501, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn set_network_policy(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<NetworkPolicyAnswer>, ApiError> {
    let machine = visible_box(&state, &caller, &id).await?;
    let policy = BoxPolicy::from_json(&body)?;
    let warnings = policy.warnings(&state.blocked);
    let updated = state.set_box_policy(&machine, &policy).await?;
    Ok(Json(NetworkPolicyAnswer {
        network_policy: updated.machine.network_policy,
        warnings,
    }))
}

/// Run a command in the box.
#[utoipa::path(post, path = "/v1/boxes/{id}/exec", tag = "boxes",
    params(("id" = String, Path, description = "Box id", pattern = r"^[a-z0-9]{12}$")),
    request_body = ExecRequest,
    responses((status = 200, body = BoxExecOutput), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody)))]
pub(crate) async fn exec(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<BoxExecOutput>, ApiError> {
    let machine = visible_box(&state, &caller, &id).await?;
    let request = read_exec(&body, state.admission.limits().exec.max_timeout)?;
    let output = state.exec(&machine, &request).await?;
    Ok(Json(BoxExecOutput {
        exit_code: output.exit_code,
        stdout: output.stdout,
        stderr: output.stderr,
    }))
}

/// Delete a box.
#[utoipa::path(delete, path = "/v1/boxes/{id}", tag = "boxes",
    params(("id" = String, Path, description = "Box id", pattern = r"^[a-z0-9]{12}$")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Deleted), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Deleted>, ApiError> {
    let machine = visible_box(&state, &caller, &id).await?;
    state.delete_machine(&machine).await?;
    Ok(Json(Deleted::new(id)))
}
