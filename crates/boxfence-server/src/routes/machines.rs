//! Machines (Machines API): create, list, show, metadata, delete, exec and
//! evaluate.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use boxfence_engine::ExecRequest;
use boxfence_policy::{
    BoxPolicy, Diagnostics, Flow, GuestRequest, JsonPath, ObjectReader, read_guest, read_metadata,
};
use serde_json::Value;

use super::apps::visible_app;
use crate::attach::read_attach;
use crate::auth::Caller;
use crate::body::{ApiPath, JsonBody, NAME_RULE, is_name};
use crate::error::ApiError;
use crate::machines::MachineRequest;
use crate::state::AppState;
use crate::views::machine_info;
use boxfence_api::ErrorBody;
use boxfence_api::{
    Applied, Checked, Deleted, Evaluation, ExecOutput, ExecRequest as ExecBody, MachineInfo,
    MetadataPatch, NewMachine,
};

/// How long a command may run when the request does not say (at most
/// the configured `[exec] max_timeout`).
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads `{"command", "stdin"?, "timeout"?}`; `timeout` is at most
/// `max_timeout`.
pub(crate) fn read_exec(body: &Value, max_timeout: Duration) -> Result<ExecRequest, ApiError> {
    let max_seconds = max_timeout.as_secs_f64();
    let mut out = Diagnostics::default();
    let root = JsonPath::root();
    let request = ObjectReader::new(body, &root, &["command", "stdin", "timeout"], &mut out)
        .and_then(|object| {
            let command = match object.optional("command") {
                None => {
                    out.push(&root.field("command"), "required");
                    None
                }
                Some((Value::Array(items), path)) if !items.is_empty() => {
                    let args: Vec<String> = items
                        .iter()
                        .enumerate()
                        .filter_map(|(index, item)| match item.as_str() {
                            Some(text) if !(index == 0 && text.is_empty()) => Some(text.to_owned()),
                            _ => {
                                out.push(&path.index(index), "must be a non-empty string");
                                None
                            }
                        })
                        .collect();
                    (args.len() == items.len()).then_some(args)
                }
                Some((_, path)) => {
                    out.push(&path, "must be a non-empty array of strings (argv)");
                    None
                }
            };
            let stdin = object.optional("stdin").and_then(|(value, path)| {
                let text = value.as_str().map(str::to_owned);
                if text.is_none() {
                    out.push(&path, "must be a string");
                }
                text
            });
            let timeout = match object.optional("timeout") {
                None => Some(DEFAULT_EXEC_TIMEOUT.min(max_timeout)),
                Some((value, path)) => match value.as_f64() {
                    Some(seconds) if seconds > 0.0 && seconds <= max_seconds => {
                        Some(Duration::from_secs_f64(seconds))
                    }
                    _ => {
                        out.push(
                            &path,
                            format!(
                                "must be seconds, more than 0 and at most {max_seconds} \
                                 (the daemon's [exec] max_timeout)"
                            ),
                        );
                        None
                    }
                },
            };
            Some(ExecRequest {
                command: command?,
                stdin,
                timeout: Some(timeout?),
            })
        });
    Ok(out.finish(request)?)
}

/// Reads a box policy at `path` of a larger body, defaulting to allow-all.
pub(crate) fn read_box_policy(
    value: Option<(&Value, JsonPath)>,
    out: &mut Diagnostics,
) -> Option<BoxPolicy> {
    match value {
        None => Some(BoxPolicy::AllowAll),
        Some((value, path)) => BoxPolicy::read(value, &path, out),
    }
}

/// Reads an image reference at `path` of a larger body (none: the
/// default root). Whether the host has it is [`require_image`]'s to say.
pub(crate) fn read_image(
    value: Option<(&Value, JsonPath)>,
    out: &mut Diagnostics,
) -> Option<Option<String>> {
    let Some((value, path)) = value else {
        return Some(None);
    };
    let Some(name) = value.as_str().and_then(boxfence_policy::image::normalize) else {
        out.push(&path, format!("must be {}", boxfence_policy::image::RULE));
        return None;
    };
    Some(Some(name))
}

/// A well-formed image the host's image store lacks is not found (404,
/// naming `path`), as an unknown app or machine is: the request itself is
/// as the document allows.
pub(crate) fn require_image(
    state: &AppState,
    image: Option<&str>,
    path: &str,
) -> Result<(), ApiError> {
    match image.map(|name| state.engine.check_image(name)) {
        None | Some(Ok(())) => Ok(()),
        Some(Err(error @ boxfence_engine::EngineError::NoSuchImage(_))) => {
            Err(ApiError::not_found_at(path, error.to_string()))
        }
        Some(Err(error)) => Err(error.into()),
    }
}

/// Prefixes warnings from a nested policy with its field.
pub(crate) fn nested_warnings(
    policy: &BoxPolicy,
    state: &AppState,
    field: &str,
) -> Vec<boxfence_policy::Diagnostic> {
    policy
        .warnings(&state.blocked)
        .into_iter()
        .map(|mut warning| {
            warning.path = format!("{field}.{}", warning.path);
            warning
        })
        .collect()
}

/// Create a machine: addresses from the pools, then the data plane.
#[utoipa::path(post, path = "/v1/apps/{app}/machines", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")),
    request_body = NewMachine,
    responses((status = 201, body = Applied<MachineInfo>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 500, body = ErrorBody), (status = 501, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(app): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Applied<MachineInfo>>), ApiError> {
    visible_app(&state, &caller, &app).await?;
    let mut out = Diagnostics::default();
    let root = JsonPath::root();
    let request = ObjectReader::new(
        &body,
        &root,
        &["name", "config", "network_policy", "attach"],
        &mut out,
    )
    .and_then(|object| {
        let name = object.string("name", is_name, NAME_RULE, &mut out);
        let fields = ["metadata", "guest", "image"];
        let (metadata, guest, image) = match object.optional("config") {
            None => (
                Some(Default::default()),
                Some(GuestRequest::default()),
                Some(None),
            ),
            Some((config, path)) => match ObjectReader::new(config, &path, &fields, &mut out) {
                None => (None, None, None),
                Some(config) => (
                    match config.optional("metadata") {
                        None => Some(Default::default()),
                        Some((value, path)) => read_metadata(value, &path, &mut out),
                    },
                    match config.optional("guest") {
                        None => Some(GuestRequest::default()),
                        Some((value, path)) => read_guest(value, &path, "memory_mb", &mut out),
                    },
                    read_image(config.optional("image"), &mut out),
                ),
            },
        };
        let network_policy = read_box_policy(object.optional("network_policy"), &mut out);
        let attach = match object.optional("attach") {
            None => Some(None),
            Some((value, path)) => read_attach(value, &path, &mut out).map(Some),
        };
        Some(MachineRequest {
            app: app.clone(),
            name,
            runtime: None,
            metadata: metadata?,
            network_policy: network_policy?,
            guest: guest?,
            attach: attach?,
            image: image?,
        })
    });
    let request = out.finish(request)?;
    require_image(&state, request.image.as_deref(), "config.image")?;
    let warnings = nested_warnings(&request.network_policy, &state, "network_policy");
    let machine = state.create_machine(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(Applied {
            value: machine_info(machine),
            warnings,
        }),
    ))
}

/// List the app's machines.
#[utoipa::path(get, path = "/v1/apps/{app}/machines", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Vec<MachineInfo>), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(app): ApiPath<String>,
) -> Result<Json<Vec<MachineInfo>>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let machines = state.store.machines(Some(&app)).await?;
    Ok(Json(machines.into_iter().map(machine_info).collect()))
}

/// Show a machine.
#[utoipa::path(get, path = "/v1/apps/{app}/machines/{id}", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$")),
    responses((status = 200, body = MachineInfo), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<Json<MachineInfo>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    Ok(Json(machine_info(
        state.find_machine(Some(&app), &id).await?,
    )))
}

/// Change metadata (JSON merge patch: a string sets a key, null removes
/// it); app policies whose selectors now match, or no longer match, are
/// enforced before the answer.
#[utoipa::path(patch, path = "/v1/apps/{app}/machines/{id}/metadata", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$")),
    request_body = MetadataPatch,
    responses((status = 200, body = MachineInfo), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 500, body = ErrorBody), (status = 501, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn patch_metadata(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<MachineInfo>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let machine = state.find_machine(Some(&app), &id).await?;
    let Value::Object(patch) = body else {
        return Err(ApiError::invalid_at(
            "",
            "must be an object of metadata keys to strings (set) or null (remove)",
        ));
    };
    let updated = state.patch_metadata(&machine, &patch).await?;
    Ok(Json(machine_info(updated)))
}

/// Delete a machine: its network and flows go first.
#[utoipa::path(delete, path = "/v1/apps/{app}/machines/{id}", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$")),
    responses((status = 400, body = ErrorBody), (status = 200, body = Deleted), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let machine = state.find_machine(Some(&app), &id).await?;
    state.delete_machine(&machine).await?;
    Ok(Json(Deleted::new(id)))
}

/// Check that the kernel enforces what is stored for the machine: its
/// link on both sides, its addresses, the ruleset (what a CNI CHECK
/// asks). 409 names each difference.
#[utoipa::path(get, path = "/v1/apps/{app}/machines/{id}/check", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$")),
    responses((status = 200, body = Checked), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody)))]
pub(crate) async fn check(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
) -> Result<Json<Checked>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let machine = state.find_machine(Some(&app), &id).await?;
    state.engine.check_machine(&machine.machine.id).await?;
    Ok(Json(Checked { id, enforced: true }))
}

/// Run a command in the machine.
#[utoipa::path(post, path = "/v1/apps/{app}/machines/{id}/exec", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$")),
    request_body = ExecBody,
    responses((status = 200, body = ExecOutput), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 429, body = ErrorBody), (status = 500, body = ErrorBody),
              (status = 501, body = ErrorBody)))]
pub(crate) async fn exec(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<ExecOutput>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let machine = state.find_machine(Some(&app), &id).await?;
    let request = read_exec(&body, state.admission.limits().exec.max_timeout)?;
    let output = state.exec(&machine, &request).await?;
    Ok(Json(ExecOutput {
        exit_code: output.exit_code,
        stdout: output.stdout,
        stderr: output.stderr,
    }))
}

/// Would this flow be allowed, and why? Decided by the same policy core
/// the data plane compiles from; nothing is sent.
#[utoipa::path(post, path = "/v1/apps/{app}/machines/{id}/network_policy/evaluate",
    tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$")),
    request_body = Flow,
    responses((status = 200, body = Evaluation),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub(crate) async fn evaluate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let machine = state.find_machine(Some(&app), &id).await?;
    let mut out = Diagnostics::default();
    let flow = Flow::read(&body, &JsonPath::root(), &mut out);
    let flow = out.finish(flow)?;
    Ok(Json(state.evaluate(&machine, &flow).await?))
}
