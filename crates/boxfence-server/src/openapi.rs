//! `GET /openapi.json`: OpenAPI 3.1 generated from the handlers.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{apps, boxes, flows, host, machines, policies};

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(title = "boxfence", description = "Network policies for sandboxed machines (boxes). \
        Errors are `{\"error\": {\"code\", \"message\", \"details\": [{\"path\", \"message\"}]}}`."),
    paths(
        crate::health, crate::openapi_json,
        apps::create, apps::list, apps::show, apps::delete, apps::mint_token,
        policies::apply, policies::list, policies::list_slash, policies::show, policies::delete,
        machines::create, machines::list, machines::show, machines::patch_metadata,
        machines::delete, machines::check, machines::exec, machines::evaluate,
        boxes::create, boxes::show, boxes::set_network_policy, boxes::exec, boxes::delete,
        flows::machine_flows, flows::box_flows, flows::metrics,
        flows::machine_flow_log, flows::box_flow_log,
        host::show,
    ),
    components(schemas(boxfence_api::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
