//! The flow log of a machine or box (`?follow=true` streams Server-Sent
//! Events) and the Prometheus metrics.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use boxfence_policy::FlowEvent;
use futures_util::stream::{self, StreamExt as _};
use tokio::sync::broadcast::error::RecvError;

use super::apps::visible_app;
use super::boxes::visible_box;
use crate::auth::Caller;
use crate::body::{ApiPath, ApiQuery, JsonBody};
use crate::error::ApiError;
use crate::state::AppState;
use boxfence_api::ErrorBody;
use boxfence_api::{BoxFlowLog, FlowQuery, MAX_FLOW_LIMIT as MAX_LIMIT, MachineFlowLog};

/// Flow events of a machine.
#[utoipa::path(get, path = "/v1/apps/{app}/machines/{id}/flows", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$"), FlowQuery),
    responses((status = 200, description = "Events, oldest first: a JSON array, or with follow=true a Server-Sent Events stream of `flow` events, each one FlowEvent as JSON",
               content((Vec<FlowEvent> = "application/json"), (String = "text/event-stream"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn machine_flows(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<FlowQuery>,
) -> Result<Response, ApiError> {
    visible_app(&state, &caller, &app).await?;
    let machine = state.find_machine(Some(&app), &id).await?;
    flows(&state, &machine.machine.app, &id, query)
}

/// Flow events of a box.
#[utoipa::path(get, path = "/v1/boxes/{id}/flows", tag = "boxes",
    params(("id" = String, Path, description = "Box id", pattern = r"^[a-z0-9]{12}$"), FlowQuery),
    responses((status = 200, description = "Events, oldest first: a JSON array, or with follow=true a Server-Sent Events stream of `flow` events, each one FlowEvent as JSON",
               content((Vec<FlowEvent> = "application/json"), (String = "text/event-stream"))),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn box_flows(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<FlowQuery>,
) -> Result<Response, ApiError> {
    let machine = visible_box(&state, &caller, &id).await?;
    flows(&state, &machine.machine.app, &id, query)
}

fn flows(state: &AppState, app: &str, id: &str, query: FlowQuery) -> Result<Response, ApiError> {
    let verdict = match query.verdict.as_deref() {
        None => None,
        Some(v @ ("allow" | "deny")) => Some(v.to_owned()),
        Some(other) => {
            return Err(ApiError::invalid_at(
                "verdict",
                format!("`{other}` is not a verdict; expected allow or deny"),
            ));
        }
    };
    let limit = match query.limit {
        None => 100,
        Some(limit @ 1..=MAX_LIMIT) => limit,
        Some(_) => {
            return Err(ApiError::invalid_at(
                "limit",
                format!("must be 1-{MAX_LIMIT}"),
            ));
        }
    };
    let with_app = |mut event: FlowEvent| {
        event.app = Some(app.to_owned());
        event
    };
    let history: Vec<FlowEvent> = state
        .engine
        .flows(id, query.since, verdict.as_deref(), limit)
        .into_iter()
        .map(with_app)
        .collect();
    if !query.follow.unwrap_or(false) {
        return Ok(Json(history).into_response());
    }
    let live = state.engine.subscribe_flows();
    let (machine, app) = (id.to_owned(), app.to_owned());
    let live = stream::unfold(live, move |receiver| {
        let (machine, app, verdict) = (machine.clone(), app.clone(), verdict.clone());
        async move {
            let mut receiver = receiver?;
            loop {
                match receiver.recv().await {
                    Ok(mut event)
                        if event.machine_id == machine
                            && verdict.as_deref().is_none_or(|v| event.verdict == v) =>
                    {
                        event.app = Some(app);
                        return Some((event, Some(receiver)));
                    }
                    // A slow client misses events rather than slowing anyone.
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let events = stream::iter(history).chain(live).map(sse_event);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn sse_event(event: FlowEvent) -> Result<Event, Infallible> {
    let data = serde_json::to_string(&event).unwrap_or_default();
    Ok(Event::default().event("flow").data(data))
}

/// Prometheus metrics of the data plane (admin only: they name every
/// app's machines).
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    caller.require_admin("read /metrics: it names the machines of every app")?;
    let text = state.engine.metrics_text();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Reads `{"<field>": true|false}`.
fn read_flag(body: &serde_json::Value, field: &str) -> Result<bool, ApiError> {
    let mut out = boxfence_policy::Diagnostics::default();
    let root = boxfence_policy::JsonPath::root();
    let flag =
        boxfence_policy::ObjectReader::new(body, &root, &[field], &mut out).and_then(|object| {
            let (value, path) = object.required(field, &mut out)?;
            let flag = value.as_bool();
            if flag.is_none() {
                out.push(&path, "must be true or false");
            }
            flag
        });
    Ok(out.finish(flag)?)
}

/// Log a machine's allowed new connections too (off by default).
#[utoipa::path(put, path = "/v1/apps/{app}/machines/{id}/flow_log", tag = "machines",
    params(("app" = String, Path, description = "App name", pattern = r"^[a-z0-9][a-z0-9-]{0,62}$"),
           ("id" = String, Path, description = "Machine id", pattern = r"^[a-z0-9]{12}$")),
    request_body = MachineFlowLog,
    responses((status = 200, body = MachineFlowLog), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 501, body = ErrorBody)))]
pub(crate) async fn machine_flow_log(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath((app, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Json<MachineFlowLog>, ApiError> {
    visible_app(&state, &caller, &app).await?;
    state.find_machine(Some(&app), &id).await?;
    let on = read_flag(&body, "log_allowed")?;
    state.engine.set_log_allowed(&id, on).await?;
    Ok(Json(MachineFlowLog { log_allowed: on }))
}

/// Log a box's allowed new connections too (off by default).
#[utoipa::path(put, path = "/v1/boxes/{id}/flow-log", tag = "boxes",
    params(("id" = String, Path, description = "Box id", pattern = r"^[a-z0-9]{12}$")),
    request_body = BoxFlowLog,
    responses((status = 200, body = BoxFlowLog), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 501, body = ErrorBody)))]
pub(crate) async fn box_flow_log(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<BoxFlowLog>, ApiError> {
    visible_box(&state, &caller, &id).await?;
    let on = read_flag(&body, "logAllowed")?;
    state.engine.set_log_allowed(&id, on).await?;
    Ok(Json(BoxFlowLog { log_allowed: on }))
}
