//! Keeps the resolver serving. A socket error that leaves the socket
//! usable is waited out; when serving ends all the same (a socket was shut
//! down under us, a task panicked), every socket is dropped and bound
//! afresh after a back-off, and [`Resolver::health`] says it is down
//! meanwhile, so the daemon's health check can say so.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, UdpSocket};

use crate::server::Resolver;
use crate::sockets::{Backoff, leaves_socket_unusable};

/// First wait before binding again after serving ended. A fault that ends
/// serving may well persist, so a restart does not spin; a second is less
/// than stub resolvers wait before they retry a query.
const RESTART_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two restarts.
const RESTART_MAX: Duration = Duration::from_secs(30);
/// Serving this long counts as recovered: the next failure waits
/// [`RESTART_FIRST`] again.
const RESTART_STABLE: Duration = Duration::from_secs(60);

/// Whether the resolver serves, and why not.
#[derive(Debug)]
pub(crate) struct Health(Mutex<Result<(), String>>);

impl Default for Health {
    fn default() -> Self {
        Self(Mutex::new(Err("not started".into())))
    }
}

impl Health {
    fn set(&self, state: Result<(), String>) {
        if let Ok(mut current) = self.0.lock() {
            *current = state;
        }
    }

    pub(crate) fn get(&self) -> Result<(), String> {
        self.0.lock().map_or_else(
            |_| Err("health state poisoned".into()),
            |state| state.clone(),
        )
    }
}

/// Marks the resolver down when its supervisor is dropped (stopped, or its
/// thread gone).
struct DownOnDrop<'a>(&'a Health);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(Err("stopped".into()));
    }
}

impl Resolver {
    /// Serves on `sockets` (from [`bind`](Self::bind) on `listen`) for as
    /// long as the future is polled: whenever serving ends, binds `listen`
    /// again after a back-off (1 s doubling to 30 s). Healthy from this
    /// call on, since the sockets are bound.
    pub fn supervise(
        self: Arc<Self>,
        listen: Vec<SocketAddr>,
        mut sockets: Vec<(UdpSocket, TcpListener)>,
    ) -> impl Future<Output = ()> + Send {
        self.health.set(Ok(()));
        async move {
            let _down = DownOnDrop(&self.health);
            let mut backoff = Backoff::new(RESTART_FIRST, RESTART_MAX);
            loop {
                let started = Instant::now();
                let mut why = match Arc::clone(&self).serve(sockets).await {
                    Ok(()) => "every socket stopped".to_owned(),
                    Err(error) => error.to_string(),
                };
                if started.elapsed() >= RESTART_STABLE {
                    backoff.reset();
                }
                sockets = loop {
                    let wait = backoff.next();
                    let down = format!("not serving ({why}); binding again in {wait:?}");
                    eprintln!("boxfence resolver: {down}");
                    self.health.set(Err(down));
                    tokio::time::sleep(wait).await;
                    match Self::bind(&listen) {
                        Ok(sockets) => break sockets,
                        Err(error) => why = format!("cannot bind {listen:?}: {error}"),
                    }
                };
                self.stats.restarts.fetch_add(1, Ordering::Relaxed);
                self.health.set(Ok(()));
            }
        }
    }

    /// Whether the resolver serves now; if not, why.
    pub fn health(&self) -> Result<(), String> {
        self.health.get()
    }

    /// After `error` from `what` (`accept on`, `receive on`) at `local`:
    /// waits the back-off when the socket still works, else returns the
    /// error, which ends serving.
    pub(crate) async fn survive(
        &self,
        error: std::io::Error,
        what: &str,
        local: SocketAddr,
        backoff: &mut Backoff,
    ) -> std::io::Result<()> {
        if leaves_socket_unusable(&error) {
            return Err(std::io::Error::new(
                error.kind(),
                format!("{what} {local}: {error}"),
            ));
        }
        self.stats.socket_errors.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(backoff.next()).await;
        Ok(())
    }
}
