//! The Box API, shaped like the box seed's SDK: `Box::create`,
//! `network_policy()`, `update_network_policy(...)`.

use boxfence_api::{
    Applied, BoxExecOutput, BoxInfo, BoxOptions, Deleted, ExecOutput, ExecRequest,
    NetworkPolicyAnswer,
};
use boxfence_policy::{BoxPolicy, Diagnostic};
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::error::ClientError;

/// A box: a sandbox with its own network policy.
#[derive(Debug, Clone)]
pub struct Box {
    client: Client,
    info: BoxInfo,
    warnings: Vec<Diagnostic>,
}

impl Box {
    /// Creates a box.
    pub async fn create(client: &Client, options: BoxOptions) -> Result<Self, ClientError> {
        let created: Applied<BoxInfo> = client
            .send(Method::POST, "/v1/boxes", Some(&options))
            .await?;
        Ok(Self {
            client: client.clone(),
            info: created.value,
            warnings: created.warnings,
        })
    }

    /// An existing box.
    pub async fn get(client: &Client, id: &str) -> Result<Self, ClientError> {
        let info = client
            .send(Method::GET, &format!("/v1/boxes/{id}"), None::<&Value>)
            .await?;
        Ok(Self {
            client: client.clone(),
            info,
            warnings: Vec::new(),
        })
    }

    /// The box's id.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Everything the server said about the box when last read.
    pub fn info(&self) -> &BoxInfo {
        &self.info
    }

    /// The current policy (the seed's `box.networkPolicy`).
    pub fn network_policy(&self) -> &BoxPolicy {
        &self.info.network_policy
    }

    /// Warnings from the last create or policy update: entries accepted
    /// without effect.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// Replaces the policy of the running box; in force when this returns.
    pub async fn update_network_policy(&mut self, policy: BoxPolicy) -> Result<(), ClientError> {
        let path = format!("/v1/boxes/{}/network-policy", self.info.id);
        let answer: NetworkPolicyAnswer =
            self.client.send(Method::PUT, &path, Some(&policy)).await?;
        self.info.network_policy = answer.network_policy;
        self.warnings = answer.warnings;
        Ok(())
    }

    /// Re-reads the box from the server.
    pub async fn refresh(&mut self) -> Result<(), ClientError> {
        self.info = Self::get(&self.client, &self.info.id).await?.info;
        Ok(())
    }

    /// Runs a command in the box.
    pub async fn exec(&self, request: &ExecRequest) -> Result<ExecOutput, ClientError> {
        let path = format!("/v1/boxes/{}/exec", self.info.id);
        let output: BoxExecOutput = self.client.send(Method::POST, &path, Some(request)).await?;
        Ok(output.into())
    }

    /// Deletes the box.
    pub async fn delete(self) -> Result<(), ClientError> {
        let path = format!("/v1/boxes/{}", self.info.id);
        self.client
            .send::<Deleted>(Method::DELETE, &path, None::<&Value>)
            .await
            .map(drop)
    }
}
