//! The daemon's shared state and how it starts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use boxfence_engine::{AddressPool, Engine, MachineSpec};
use boxfence_policy::{AlwaysBlocked, Cidr, ExemptionError, Guest};
use boxfence_store::{Store, StoreError};

use crate::admission::{Admission, Limits};
use crate::auth::{Authenticator, MintedToken, mint};
use crate::body::DEFAULT_BODY_LIMIT;
use crate::listen::ConnectionLimits;

/// What the server needs to know beyond its store and engine.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where machine addresses come from.
    pub address_pool: AddressPool,
    /// Always-blocked ranges the operator exempts (DESIGN.md 1.5).
    pub exempt_cidrs: Vec<Cidr>,
    /// The operator's admin token; when `None`, one is generated on first
    /// start, stored hashed and shown once.
    pub admin_token: Option<String>,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// How many API connections are kept, and how long a request may
    /// take to arrive.
    pub connection_limits: ConnectionLimits,
    /// What one tenant may hold at once (execs, creates).
    pub limits: Limits,
    /// A machine's size where its request names none (`[runtime]`).
    pub default_guest: Guest,
    /// Whether names of domain-authorised flows are checked (issue 19;
    /// `[network] name_check`): explain reports the check.
    pub name_check: bool,
}

impl ServerConfig {
    /// A configuration with the given pools and nothing else set.
    pub fn new(address_pool: AddressPool) -> Self {
        Self {
            address_pool,
            exempt_cidrs: Vec::new(),
            admin_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            connection_limits: ConnectionLimits::default(),
            limits: Limits::default(),
            default_guest: boxfence_policy::guest::DEFAULT,
            name_check: true,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An exemption overlaps the boxes' own pools.
    #[error("invalid exempt_cidrs: {0}")]
    Exemption(#[from] ExemptionError),
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Shared by every request.
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<dyn Engine>,
    pub(crate) pool: AddressPool,
    pub(crate) blocked: Arc<AlwaysBlocked>,
    pub(crate) auth: Authenticator,
    pub(crate) body_limit: usize,
    pub(crate) connection_limits: ConnectionLimits,
    pub(crate) admission: Admission,
    /// A machine's size where its request names none.
    pub(crate) default_guest: Guest,
    /// Whether names of domain-authorised flows are checked.
    pub(crate) name_check: bool,
    /// One lock per app: changes that recompute an app's effective
    /// policies run one at a time, each reading the store after the
    /// previous one's apply, so the kernel never ends on a stale state.
    app_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Prepares the state: exemptions checked, admin token ensured.
    /// Returns a newly generated admin token, to be shown once.
    pub(crate) async fn new(
        config: ServerConfig,
        store: Arc<dyn Store>,
        engine: Arc<dyn Engine>,
    ) -> Result<(Self, Option<MintedToken>), StartError> {
        let pools = [
            Cidr::from(ipnet::IpNet::V4(config.address_pool.ipv4)),
            Cidr::from(ipnet::IpNet::V6(config.address_pool.ipv6)),
        ];
        let blocked = AlwaysBlocked::with_exemptions(&config.exempt_cidrs, &pools)?;
        let generated = if config.admin_token.is_none() && !store.has_admin_token().await? {
            Some(mint(store.as_ref(), None).await?)
        } else {
            None
        };
        let state = Self {
            store,
            engine,
            pool: config.address_pool,
            blocked: Arc::new(blocked),
            auth: Authenticator::new(config.admin_token.as_deref()),
            body_limit: config.body_limit,
            connection_limits: config.connection_limits,
            admission: Admission::new(config.limits),
            default_guest: config.default_guest,
            name_check: config.name_check,
            app_locks: Mutex::new(HashMap::new()),
        };
        Ok((state, generated))
    }

    /// Waits for exclusive use of `app`'s effective policies.
    pub(crate) async fn lock_app(&self, app: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .app_locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(locks.entry(app.to_owned()).or_default())
        };
        lock.lock_owned().await
    }

    /// Hands every stored machine with its effective policy to the engine,
    /// which makes the data plane match.
    pub(crate) async fn reconcile(&self) -> Result<usize, crate::error::ApiError> {
        let machines = self.store.machines(None).await?;
        let mut desired = Vec::with_capacity(machines.len());
        let mut by_app: HashMap<String, Vec<_>> = HashMap::new();
        for machine in &machines {
            by_app
                .entry(machine.machine.app.clone())
                .or_default()
                .push(machine);
        }
        for (app, machines) in by_app {
            let compiled = self.compiled_policies(&app).await?;
            for machine in machines {
                desired.push((
                    MachineSpec {
                        id: machine.machine.id.clone(),
                        addresses: crate::machines::addresses(machine),
                        guest: machine.machine.guest,
                        image: machine.machine.image.clone(),
                    },
                    self.effective(machine, &compiled),
                ));
            }
        }
        self.engine.reconcile(&desired).await?;
        Ok(desired.len())
    }
}
