//! A daemon per test: temp SQLite file, loopback port, recording engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use boxfence_engine::{
    AddressPool, Engine, EngineError, ExecOutput, ExecRequest, MachineSpec, Unavailable,
};
use boxfence_policy::{BoxLayer, Cidr, EffectivePolicy};
use boxfence_server::{Limits, Server, ServerConfig};
use boxfence_store::SqliteStore;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

pub(crate) const ADMIN: &str = "test-admin-token";

/// The images the recording engine's host has.
pub(crate) const IMAGES: [&str; 2] = ["busybox:latest", "busybox:1.36"];

/// What the engine was last told about one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Enforced {
    /// Names of the app policies selecting it.
    pub(crate) policies: Vec<String>,
    /// The box layer's mode.
    pub(crate) box_mode: &'static str,
    /// The size it was created with (none after a reconcile or apply).
    pub(crate) guest: Option<boxfence_policy::Guest>,
    /// The image it was created from (none after a reconcile or apply).
    pub(crate) image: Option<String>,
}

fn summary(policy: &EffectivePolicy) -> Enforced {
    Enforced {
        policies: policy.app_policies.iter().map(|p| p.name.clone()).collect(),
        box_mode: match policy.box_layer {
            BoxLayer::AllowAll => "allow-all",
            BoxLayer::DenyAll => "deny-all",
            BoxLayer::Custom(_) => "custom",
        },
        guest: None,
        image: None,
    }
}

/// Where calls of one kind wait while a test holds it closed, so the
/// test can have them in progress for as long as it likes.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    open: tokio::sync::RwLock<()>,
    arrived: AtomicUsize,
}

impl Gate {
    async fn pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        drop(self.open.read().await);
    }

    /// Closed until the guard is dropped.
    pub(crate) async fn close(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.open.write().await
    }

    /// Waits until `count` calls in all have reached the gate.
    pub(crate) async fn arrived(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.arrived.load(Ordering::SeqCst) < count {
            assert!(Instant::now() < deadline, "{count} calls never arrived");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// An in-memory engine for API tests: remembers what it was told, so
/// tests can check that a change was enforced before the 2xx.
#[derive(Debug, Default)]
pub(crate) struct RecordingEngine {
    pub(crate) machines: Mutex<HashMap<String, Enforced>>,
    pub(crate) fail_apply: Mutex<bool>,
    /// What `health` reports as not working.
    pub(crate) problems: Mutex<Vec<String>>,
    /// Creates wait here.
    pub(crate) creates: Gate,
    /// Execs wait here.
    pub(crate) execs: Gate,
}

impl RecordingEngine {
    pub(crate) fn enforced(&self, id: &str) -> Option<Enforced> {
        self.machines.lock().expect("lock").get(id).cloned()
    }
}

#[async_trait]
impl Engine for RecordingEngine {
    async fn create_machine(
        &self,
        machine: &MachineSpec,
        policy: &EffectivePolicy,
    ) -> Result<(), EngineError> {
        self.creates.pass().await;
        self.machines.lock().expect("lock").insert(
            machine.id.clone(),
            Enforced {
                guest: machine.guest,
                image: machine.image.clone(),
                ..summary(policy)
            },
        );
        Ok(())
    }

    async fn delete_machine(&self, id: &str) -> Result<(), EngineError> {
        match self.machines.lock().expect("lock").remove(id) {
            Some(_) => Ok(()),
            None => Err(EngineError::NoSuchMachine(id.into())),
        }
    }

    async fn apply(&self, policies: &[EffectivePolicy]) -> Result<(), EngineError> {
        if *self.fail_apply.lock().expect("lock") {
            return Err(EngineError::Kernel("injected failure".into()));
        }
        let mut machines = self.machines.lock().expect("lock");
        for policy in policies {
            machines.insert(policy.machine_id.clone(), summary(policy));
        }
        Ok(())
    }

    async fn reconcile(
        &self,
        desired: &[(MachineSpec, EffectivePolicy)],
    ) -> Result<(), EngineError> {
        let mut machines = self.machines.lock().expect("lock");
        machines.clear();
        for (spec, policy) in desired {
            machines.insert(spec.id.clone(), summary(policy));
        }
        Ok(())
    }

    async fn exec(&self, id: &str, request: &ExecRequest) -> Result<ExecOutput, EngineError> {
        self.execs.pass().await;
        if !self.machines.lock().expect("lock").contains_key(id) {
            return Err(EngineError::NoSuchMachine(id.into()));
        }
        // `echo` is all the API tests need: the real exec is the data
        // plane's.
        Ok(ExecOutput {
            exit_code: 0,
            stdout: format!("{}\n", request.command[1..].join(" ")),
            stderr: String::new(),
        })
    }

    fn check_image(&self, image: &str) -> Result<(), EngineError> {
        if IMAGES.contains(&image) {
            Ok(())
        } else {
            Err(EngineError::NoSuchImage(image.to_owned()))
        }
    }

    fn health(&self) -> Result<(), Vec<String>> {
        let problems = self.problems.lock().expect("lock").clone();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// How to start a test daemon.
pub(crate) struct Options {
    pub(crate) admin_token: Option<String>,
    pub(crate) exempt: Vec<Cidr>,
    pub(crate) body_limit: Option<usize>,
    pub(crate) no_data_plane: bool,
    pub(crate) limits: Option<Limits>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            admin_token: Some(ADMIN.into()),
            exempt: Vec::new(),
            body_limit: None,
            no_data_plane: false,
            limits: None,
        }
    }
}

/// A running daemon.
pub(crate) struct Daemon {
    pub(crate) url: String,
    pub(crate) engine: Arc<RecordingEngine>,
    pub(crate) generated_admin: Option<String>,
    pub(crate) dir: Arc<tempfile::TempDir>,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    store: SqliteStore,
}

impl Daemon {
    pub(crate) async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub(crate) async fn start_with(options: Options) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::start_in(dir, options).await
    }

    /// Starts a daemon on the database in `dir` (to test restarts).
    pub(crate) async fn start_in(dir: Arc<tempfile::TempDir>, options: Options) -> Self {
        let url = format!("sqlite://{}", dir.path().join("boxfence.db").display());
        let store = SqliteStore::open(&url).await.expect("store");
        let recording = Arc::new(RecordingEngine::default());
        let engine: Arc<dyn Engine> = if options.no_data_plane {
            Arc::new(Unavailable {
                reason: "this test runs without a data plane".into(),
            })
        } else {
            recording.clone()
        };
        let mut config = ServerConfig::new(AddressPool {
            ipv4: "10.200.0.0/16".parse().expect("pool"),
            ipv6: "fd00:b0f::/64".parse().expect("pool"),
        });
        config.admin_token = options.admin_token;
        config.exempt_cidrs = options.exempt;
        if let Some(limit) = options.body_limit {
            config.body_limit = limit;
        }
        if let Some(limits) = options.limits {
            config.limits = limits;
        }
        let server = Server::start(config, Arc::new(store.clone()), engine)
            .await
            .expect("server starts");
        let generated_admin = server
            .generated_admin_token
            .as_ref()
            .map(|t| t.text.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            url,
            engine: recording,
            generated_admin,
            dir,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            store,
        }
    }

    /// Stops the daemon and closes its database.
    pub(crate) async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.store.close().await;
        Arc::clone(&self.dir)
    }

    /// Sends a request with `token` and an optional raw body.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON answer {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, headers, value)
    }

    /// Sends a JSON request as the admin.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let text = body.map(|b| b.to_string());
        let (status, _, value) = self.raw(method, path, Some(ADMIN), text.as_deref()).await;
        (status, value)
    }

    pub(crate) async fn create_app(&self, name: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/apps",
                Some(serde_json::json!({ "app_name": name })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates app `app` and returns a token minted for it.
    pub(crate) async fn app_with_token(&self, app: &str) -> String {
        self.create_app(app).await;
        let path = format!("/v1/apps/{app}/tokens");
        let (status, minted) = self.call(Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::CREATED, "{minted}");
        minted["token"].as_str().expect("token").to_owned()
    }

    /// Asserts that `GET path` with `token` is refused as `forbidden`;
    /// returns the refusal's message.
    pub(crate) async fn forbidden_get(&self, path: &str, token: &str) -> String {
        let (status, _, body) = self.raw(Method::GET, path, Some(token), None).await;
        assert_error(
            &(status, body.clone()),
            StatusCode::FORBIDDEN,
            "forbidden",
            None,
        );
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Creates a machine and returns its id.
    pub(crate) async fn create_machine(&self, app: &str, body: Value) -> String {
        let (status, answer) = self
            .call(
                Method::POST,
                &format!("/v1/apps/{app}/machines"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        answer["id"].as_str().expect("id").to_owned()
    }
}

/// Asserts an error answer: status, code, and (when given) that one of
/// the details names `path`.
pub(crate) fn assert_error(
    (status, body): &(StatusCode, Value),
    expected: StatusCode,
    code: &str,
    path: Option<&str>,
) {
    assert_eq!(*status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    if let Some(path) = path {
        let details = body["error"]["details"].as_array().expect("details");
        assert!(
            details.iter().any(|d| d["path"] == path),
            "no detail at {path}: {body}"
        );
    }
}
