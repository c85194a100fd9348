//! The HTTP client: one method per route of the Machines API shape.

use boxfence_policy::{AppPolicy, Flow};
use reqwest::{Method, RequestBuilder};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use boxfence_api::{
    AppInfo, Applied, CreateApp, Deleted, ErrorBody, ErrorDetail, Evaluation, ExecOutput,
    ExecRequest, MachineInfo, MetadataPatch, NewMachine, PolicyInfo, TokenInfo,
};

use crate::error::ClientError;

/// Where the daemon listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:4280";

/// A connection to a boxfence daemon.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client for the daemon at `base_url` (e.g. `http://127.0.0.1:4280`)
    /// using `token`.
    pub fn new(base_url: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// A client from `BOXFENCE_URL` (default [`DEFAULT_URL`]) and
    /// `BOXFENCE_TOKEN`.
    pub fn from_env() -> Result<Self, ClientError> {
        let url = std::env::var("BOXFENCE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let token = std::env::var("BOXFENCE_TOKEN").map_err(|_| {
            ClientError::Config("BOXFENCE_TOKEN is not set (the admin or an app token)".into())
        })?;
        Ok(Self::new(&url, &token))
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        let body = serde_json::from_slice::<ErrorBody>(&bytes).map_or_else(
            |_| ErrorDetail {
                code: "unknown".into(),
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
                details: Vec::new(),
            },
            |body| body.error,
        );
        Err(ClientError::Api {
            status: status.as_u16(),
            body,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(Method::GET, path, None::<&Value>).await
    }

    /// Creates an app.
    pub async fn create_app(&self, name: &str) -> Result<AppInfo, ClientError> {
        let body = CreateApp {
            app_name: name.to_owned(),
        };
        self.send(Method::POST, "/v1/apps", Some(&body)).await
    }

    /// Shows an app.
    pub async fn app(&self, name: &str) -> Result<AppInfo, ClientError> {
        self.get(&format!("/v1/apps/{name}")).await
    }

    /// Lists the apps the token sees.
    pub async fn apps(&self) -> Result<Vec<AppInfo>, ClientError> {
        self.get("/v1/apps").await
    }

    /// Deletes an app; `force` also deletes its machines.
    pub async fn delete_app(&self, name: &str, force: bool) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{name}?force={force}");
        self.send::<Deleted>(Method::DELETE, &path, None::<&Value>)
            .await
            .map(drop)
    }

    /// Mints a token that sees only `app` (admin only).
    pub async fn mint_token(&self, app: &str) -> Result<TokenInfo, ClientError> {
        self.send(
            Method::POST,
            &format!("/v1/apps/{app}/tokens"),
            None::<&Value>,
        )
        .await
    }

    /// Creates or updates a policy (by `id`, else by `name`).
    pub async fn apply_policy(
        &self,
        app: &str,
        policy: &AppPolicy,
    ) -> Result<Applied<PolicyInfo>, ClientError> {
        self.apply_policy_json(app, &serde_json::to_value(policy).unwrap_or_default())
            .await
    }

    /// [`apply_policy`](Self::apply_policy) for a document the server
    /// validates (e.g. a file), so its errors name the file's paths.
    pub async fn apply_policy_json(
        &self,
        app: &str,
        policy: &Value,
    ) -> Result<Applied<PolicyInfo>, ClientError> {
        let path = format!("/v1/apps/{app}/network_policies");
        self.send(Method::POST, &path, Some(policy)).await
    }

    /// The app's policies.
    pub async fn policies(&self, app: &str) -> Result<Vec<PolicyInfo>, ClientError> {
        self.get(&format!("/v1/apps/{app}/network_policies")).await
    }

    /// One policy.
    pub async fn policy(&self, app: &str, id: &str) -> Result<PolicyInfo, ClientError> {
        self.get(&format!("/v1/apps/{app}/network_policies/{id}"))
            .await
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, app: &str, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{app}/network_policies/{id}");
        self.send::<Deleted>(Method::DELETE, &path, None::<&Value>)
            .await
            .map(drop)
    }

    /// Creates a machine.
    pub async fn create_machine(
        &self,
        app: &str,
        machine: &NewMachine,
    ) -> Result<Applied<MachineInfo>, ClientError> {
        let path = format!("/v1/apps/{app}/machines");
        self.send(Method::POST, &path, Some(machine)).await
    }

    /// The app's machines.
    pub async fn machines(&self, app: &str) -> Result<Vec<MachineInfo>, ClientError> {
        self.get(&format!("/v1/apps/{app}/machines")).await
    }

    /// One machine.
    pub async fn machine(&self, app: &str, id: &str) -> Result<MachineInfo, ClientError> {
        self.get(&format!("/v1/apps/{app}/machines/{id}")).await
    }

    /// Merges `patch` into the metadata (`None` removes a key).
    pub async fn patch_metadata(
        &self,
        app: &str,
        id: &str,
        patch: &MetadataPatch,
    ) -> Result<MachineInfo, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/metadata");
        self.send(Method::PATCH, &path, Some(patch)).await
    }

    /// Deletes a machine.
    pub async fn delete_machine(&self, app: &str, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}");
        self.send::<Deleted>(Method::DELETE, &path, None::<&Value>)
            .await
            .map(drop)
    }

    /// Runs a command in a machine.
    pub async fn exec(
        &self,
        app: &str,
        id: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/exec");
        self.send(Method::POST, &path, Some(request)).await
    }

    /// Flow events of a machine (`app` given) or a box, oldest first, at
    /// or after `since_ms`, of `verdict` when given, at most `limit`.
    pub async fn flows(
        &self,
        app: Option<&str>,
        id: &str,
        since_ms: Option<u64>,
        verdict: Option<&str>,
        limit: usize,
    ) -> Result<Vec<boxfence_policy::FlowEvent>, ClientError> {
        let base = match app {
            Some(app) => format!("/v1/apps/{app}/machines/{id}/flows"),
            None => format!("/v1/boxes/{id}/flows"),
        };
        let mut query = format!("?limit={limit}");
        if let Some(since) = since_ms {
            query.push_str(&format!("&since={since}"));
        }
        if let Some(verdict) = verdict {
            query.push_str(&format!("&verdict={verdict}"));
        }
        self.get(&format!("{base}{query}")).await
    }

    /// What the daemon's host offers its data plane: the kernel features
    /// it found and uses, each part's path, the other prerequisites
    /// (admin only).
    pub async fn host(&self) -> Result<boxfence_policy::HostReport, ClientError> {
        self.get("/v1/host").await
    }

    /// Would `flow` be allowed for the machine, and why?
    pub async fn evaluate(
        &self,
        app: &str,
        id: &str,
        flow: &Flow,
    ) -> Result<Evaluation, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/network_policy/evaluate");
        self.send(Method::POST, &path, Some(flow)).await
    }
}
