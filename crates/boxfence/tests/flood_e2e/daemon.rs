//! A daemon in a sealed lab, in this process: the real server, SQLite
//! store, Linux engine and resolver, with its API on a loopback port of
//! the test's own namespace, so a test can fire hundreds of requests at
//! once without a process each.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxfence_dataplane::HostNetns;
use boxfence_engine::{LinuxEngine, ResolverHandle, SharedLinuxEngine};
use boxfence_lab::{HTTP_PORT, Lab, LabDns, SERVER_V4};
use boxfence_resolver::answer::TtlLimits;
use boxfence_server::{Server, ServerConfig};
use boxfence_store::SqliteStore;
use reqwest::Method;
use reqwest::header::RETRY_AFTER;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::lab_config::lab_config;

pub(crate) const ADMIN: &str = "flood-admin-token";

/// Threads of the daemon's tokio blocking pool. Small, so that work that
/// wrongly runs on that pool (as every exec and change did before issue
/// 18) exhausts it under the floods here, as 512 execs exhaust the
/// daemon's default pool of 512.
const BLOCKING_THREADS: usize = 8;

/// What an API call got, and how long it took.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Value,
    pub(crate) took: Duration,
}

/// The daemon's HTTP API (cheap to clone into tasks).
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    /// Where the API listens.
    pub(crate) fn address(&self) -> SocketAddr {
        self.url
            .trim_start_matches("http://")
            .parse()
            .expect("the API's address")
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let started = Instant::now();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.parse().ok());
        let bytes = response.bytes().await.expect("body");
        Answer {
            status,
            retry_after,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            took: started.elapsed(),
        }
    }

    /// A 2xx answer's body, else a panic naming the call.
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let answer = self.call(method.clone(), path, token, body).await;
        assert!(
            (200..300).contains(&answer.status),
            "{method} {path}: {answer:?}"
        );
        answer.body
    }

    /// Creates app `name` and returns a token that sees only it.
    pub(crate) async fn app_with_token(&self, name: &str) -> String {
        self.ok(
            Method::POST,
            "/v1/apps",
            ADMIN,
            Some(json!({ "app_name": name })),
        )
        .await;
        let minted = self
            .ok(
                Method::POST,
                &format!("/v1/apps/{name}/tokens"),
                ADMIN,
                None,
            )
            .await;
        minted["token"].as_str().expect("token").to_owned()
    }

    /// Creates a box with `token` (in its app) and returns its id.
    pub(crate) async fn create_box(&self, token: &str) -> String {
        let made = self
            .ok(Method::POST, "/v1/boxes", token, Some(json!({})))
            .await;
        made["id"].as_str().expect("box id").to_owned()
    }
}

/// A lab whose host runs the daemon's engine and resolver; the server
/// itself runs in this process's namespace. Dropping it tears all down.
pub(crate) struct LabDaemon {
    pub(crate) api: Api,
    pub(crate) runtime: Option<tokio::runtime::Runtime>,
    engine: Arc<LinuxEngine>,
    stop: Option<oneshot::Sender<()>>,
    resolver: Option<ResolverHandle>,
    _dns: LabDns,
    _lab: Lab,
}

impl LabDaemon {
    pub(crate) fn start() -> Self {
        let lab = Lab::new().expect("lab comes up");
        let dns = LabDns::start(&lab, 60).expect("lab DNS");
        let config = lab_config(&lab, HostNetns::at(lab.host_netns_path()));
        let mut server_config = ServerConfig::new(config.pool);
        server_config.admin_token = Some(ADMIN.into());
        server_config.exempt_cidrs = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
            .iter()
            .map(|cidr| cidr.parse().expect("cidr"))
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(BLOCKING_THREADS)
            .enable_all()
            .build()
            .expect("runtime");
        let engine = runtime
            .block_on(async { LinuxEngine::start(config) })
            .expect("engine starts");
        let resolver = engine
            .spawn_resolver(
                vec![SocketAddr::new(boxfence_lab::DNS_V4.into(), 53)],
                Duration::from_secs(2),
                TtlLimits::default(),
                boxfence_engine::QUERY_RATE_PER_BOX,
                boxfence_resolver::TcpLimits::default(),
            )
            .expect("resolver starts");
        let database = format!("sqlite://{}", lab.workdir().join("boxfence.db").display());
        let (stop, stopped) = oneshot::channel::<()>();
        let url = runtime.block_on(async {
            let store = SqliteStore::open(&database).await.expect("store");
            let engine = Arc::new(SharedLinuxEngine(Arc::clone(&engine)));
            let server = Server::start(server_config, Arc::new(store), engine)
                .await
                .expect("server starts");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("address"));
            tokio::spawn(server.serve(listener, async {
                let _ = stopped.await;
            }));
            url
        });
        Self {
            api: Api {
                http: reqwest::Client::new(),
                url,
            },
            runtime: Some(runtime),
            engine,
            stop: Some(stop),
            resolver: Some(resolver),
            _dns: dns,
            _lab: lab,
        }
    }

    /// Runs `future` on the daemon's runtime.
    pub(crate) fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.as_ref().expect("runtime").block_on(future)
    }

    /// Runs `f` in box `id`'s network namespace.
    pub(crate) fn in_box<T: Send>(&self, id: &str, f: impl FnOnce() -> T + Send) -> T {
        HostNetns::at(self.engine.netns_path(id))
            .in_netns(f)
            .expect("enter the box's namespace")
    }

    /// Whether box `id` can open a TCP connection to the lab's web server.
    pub(crate) fn box_connects(&self, id: &str) -> bool {
        let server = SocketAddr::new(SERVER_V4.into(), HTTP_PORT);
        self.in_box(id, || {
            TcpStream::connect_timeout(&server, Duration::from_secs(2)).is_ok()
        })
    }
}

impl Drop for LabDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        drop(self.resolver.take());
        // Without waiting for requests still in progress (a failed test's
        // execs); the lab kills what runs in its namespaces.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
