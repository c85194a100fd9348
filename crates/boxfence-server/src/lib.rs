//! The HTTP API of boxfence: the Machines API shape (apps, app policies,
//! machines) and the Box API shape (boxes with a network policy) over one
//! store and one engine, with bearer-token auth and an OpenAPI document.
//!
//! Every change is committed to the store and then enforced by the engine
//! before the answer is 2xx. Without a data plane the engine refuses
//! machine work and the API answers 501, never pretending.

#![forbid(unsafe_code)]

mod admission;
mod attach;
mod auth;
mod body;
mod error;
mod ids;
mod listen;
mod machines;
mod openapi;
mod routes;
mod state;
mod to_completion;
mod views;

use std::future::Future;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post, put};
use axum::{Extension, Json, Router, middleware};
use boxfence_engine::Engine;
use boxfence_store::Store;
use tokio::net::TcpListener;
use utoipa::OpenApi;

pub use admission::{ExecLimits, Limits};
pub use auth::{Caller, MintedToken};
pub use body::DEFAULT_BODY_LIMIT;
pub use error::ApiError;
pub use ids::ID_LEN;
pub use listen::{ConnectionLimits, UnixSocket};
pub use routes::boxes::DEFAULT_APP;
pub use state::{ServerConfig, StartError};

use body::BodyLimit;
use boxfence_api::Health;
use routes::{apps, boxes, flows, host, machines as machine_routes, policies};
use state::AppState;

/// A started daemon: state ready, data plane reconciled.
#[derive(Debug)]
pub struct Server {
    state: Arc<AppState>,
    /// The admin token generated on this start (first start without a
    /// configured one); show it once, it is stored only hashed.
    pub generated_admin_token: Option<MintedToken>,
}

impl Server {
    /// Prepares the daemon and has the engine reconcile every stored
    /// machine. A failed reconcile is logged, not fatal: the API still
    /// answers and the data plane fails closed on its own.
    pub async fn start(
        config: ServerConfig,
        store: Arc<dyn Store>,
        engine: Arc<dyn Engine>,
    ) -> Result<Self, StartError> {
        let (state, generated_admin_token) = AppState::new(config, store, engine).await?;
        let state = Arc::new(state);
        match state.reconcile().await {
            Ok(machines) => tracing::info!(machines, "data plane reconciled"),
            Err(error) => tracing::warn!(%error, "reconciling the data plane failed"),
        }
        Ok(Self {
            state,
            generated_admin_token,
        })
    }

    /// The routes, ready to serve.
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.state))
    }

    /// Serves on `listener`, within the configured connection limits,
    /// until `shutdown` completes.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_with_unix(listener, None, shutdown).await
    }

    /// [`Server::serve`], and the same API on `unix` too when given (bound
    /// before this returns its first connection; an error binding it is
    /// returned at once).
    pub async fn serve_with_unix(
        self,
        listener: TcpListener,
        unix: Option<UnixSocket>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = self.state.connection_limits;
        let Some(socket) = unix else {
            return listen::serve(listener, self.router(), limits, shutdown).await;
        };
        let unix = listen::UnixAcceptor {
            listener: socket.bind()?,
            socket,
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let (tcp, local) = tokio::join!(
            listen::serve(listener, self.router(), limits, until(stopped.clone())),
            listen::serve(unix, self.router(), limits, until(stopped)),
        );
        tcp.and(local)
    }
}

fn router(state: Arc<AppState>) -> Router {
    let limit = state.body_limit;
    let authenticated = Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/v1/apps", post(apps::create).get(apps::list))
        .route("/v1/apps/{app}", get(apps::show).delete(apps::delete))
        .route("/v1/apps/{app}/tokens", post(apps::mint_token))
        .route(
            "/v1/apps/{app}/network_policies",
            post(policies::apply).get(policies::list),
        )
        .route(
            "/v1/apps/{app}/network_policies/",
            get(policies::list_slash),
        )
        .route(
            "/v1/apps/{app}/network_policies/{id}",
            get(policies::show).delete(policies::delete),
        )
        .route(
            "/v1/apps/{app}/machines",
            post(machine_routes::create).get(machine_routes::list),
        )
        .route(
            "/v1/apps/{app}/machines/{id}",
            get(machine_routes::show).delete(machine_routes::delete),
        )
        .route(
            "/v1/apps/{app}/machines/{id}/metadata",
            patch(machine_routes::patch_metadata),
        )
        .route(
            "/v1/apps/{app}/machines/{id}/check",
            get(machine_routes::check),
        )
        .route(
            "/v1/apps/{app}/machines/{id}/exec",
            post(machine_routes::exec),
        )
        .route(
            "/v1/apps/{app}/machines/{id}/network_policy/evaluate",
            post(machine_routes::evaluate),
        )
        .route("/v1/boxes", post(boxes::create))
        .route("/v1/boxes/{id}", get(boxes::show).delete(boxes::delete))
        .route(
            "/v1/boxes/{id}/network-policy",
            put(boxes::set_network_policy),
        )
        .route("/v1/boxes/{id}/exec", post(boxes::exec))
        .route("/v1/boxes/{id}/flows", get(flows::box_flows))
        .route("/v1/boxes/{id}/flow-log", put(flows::box_flow_log))
        .route(
            "/v1/apps/{app}/machines/{id}/flow_log",
            put(flows::machine_flow_log),
        )
        .route(
            "/v1/apps/{app}/machines/{id}/flows",
            get(flows::machine_flows),
        )
        .route("/metrics", get(flows::metrics))
        .route("/v1/host", get(host::show))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ))
        .route_layer(middleware::from_fn(to_completion::run_to_completion));
    Router::new()
        .route("/healthz", get(health))
        .merge(authenticated)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(BodyLimit(limit)))
        .with_state(state)
}

/// Health: 200 while the daemon and its data plane work, 503 naming each
/// part that does not (the resolver while it is restarted, say). Needs no
/// token.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, description = "Everything works", body = Health),
              (status = 503, description = "A part does not work; `problems` names it",
               body = Health)))]
async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    match state.engine.health() {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".to_owned(),
                problems: Vec::new(),
            }),
        ),
        Err(problems) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unhealthy".to_owned(),
                problems,
            }),
        ),
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document"),
              (status = 401, body = boxfence_api::ErrorBody)))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi::ApiDoc::openapi())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The OpenAPI document, for tools that want it without a server.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::ApiDoc::openapi()
}

/// The OpenAPI document as the committed `openapi.json` holds it: pretty
/// JSON with a final newline.
pub fn openapi_text() -> String {
    let mut text = serde_json::to_string_pretty(&openapi_document()).unwrap_or_default();
    text.push('\n');
    text
}
