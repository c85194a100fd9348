//! Bearer tokens: one admin token, and app tokens that see one app.
//!
//! Token text is `bf_<id>_<secret>`; the store keeps only the SHA-256 of
//! the secret, looked up by id and compared in constant time. An admin
//! token given by the operator (env or config) may be any string; only its
//! hash is kept in memory.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use boxfence_store::{NewToken, Store, StoreError};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::ids::{new_id, random_text, sha256_hex};
use crate::state::AppState;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator: every app.
    Admin,
    /// A token scoped to one app.
    App(String),
}

impl Caller {
    /// Whether the caller may see `app`. Other apps answer 404 so that
    /// their names do not leak.
    pub(crate) fn check_app(&self, app: &str) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::App(own) if own == app => Ok(()),
            Self::App(_) => Err(ApiError::NotFound(format!("app {app} not found"))),
        }
    }

    /// Refuses unless the caller is the admin.
    pub(crate) fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            Self::App(_) => Err(ApiError::Forbidden(format!(
                "only the admin token may {action}"
            ))),
        }
    }
}

/// A freshly minted token: its text is shown once and never again.
#[derive(Debug, Clone)]
pub struct MintedToken {
    /// The token's public id.
    pub id: String,
    /// The whole token, to send as `Authorization: Bearer <text>`.
    pub text: String,
}

/// Verifies tokens.
#[derive(Debug)]
pub(crate) struct Authenticator {
    /// SHA-256 of the operator's admin token, when one is configured.
    configured_admin: Option<[u8; 64]>,
}

impl Authenticator {
    pub(crate) fn new(configured_admin: Option<&str>) -> Self {
        Self {
            configured_admin: configured_admin.map(hash_bytes),
        }
    }

    /// The caller `token` identifies, if any.
    pub(crate) async fn identify(
        &self,
        store: &dyn Store,
        token: &str,
    ) -> Result<Option<Caller>, StoreError> {
        if let Some(expected) = &self.configured_admin
            && bool::from(hash_bytes(token).ct_eq(expected))
        {
            return Ok(Some(Caller::Admin));
        }
        let Some((id, secret)) = token
            .strip_prefix("bf_")
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        let Some(stored) = store.token(id).await? else {
            return Ok(None);
        };
        let presented = sha256_hex(secret);
        if !bool::from(
            presented
                .as_bytes()
                .ct_eq(stored.token.secret_hash.as_bytes()),
        ) {
            return Ok(None);
        }
        Ok(Some(match stored.token.app {
            None => Caller::Admin,
            Some(app) => Caller::App(app),
        }))
    }
}

fn hash_bytes(text: &str) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(sha256_hex(text).as_bytes());
    out
}

/// Mints a token for `app` (`None`: admin), storing only its hash.
pub(crate) async fn mint(store: &dyn Store, app: Option<&str>) -> Result<MintedToken, StoreError> {
    let id = new_id();
    let secret = random_text(32);
    store
        .insert_token(&NewToken {
            id: id.clone(),
            app: app.map(str::to_owned),
            secret_hash: sha256_hex(&secret),
        })
        .await?;
    Ok(MintedToken {
        text: format!("bf_{id}_{secret}"),
        id,
    })
}

/// Middleware: every route behind it needs a valid bearer token; the
/// caller is put into the request's extensions.
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        // The scheme is case-insensitive (RFC 9110 11.1).
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let caller = state
        .auth
        .identify(state.store.as_ref(), token)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}
