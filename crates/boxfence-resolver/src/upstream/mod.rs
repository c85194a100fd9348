//! Forwarding to the upstream servers: each upstream tried in turn until
//! one answers in time; UDP over a few shared sockets per upstream
//! ([`udp`]), TCP over a connection per query (only after truncation).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

use udp::UdpUpstream;

mod udp;

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No upstream is configured.
    #[error("no upstream DNS server configured")]
    NoUpstream,
    /// Every upstream failed or timed out; the last failure is given.
    #[error("no upstream answered: {0}")]
    AllFailed(String),
}

/// The configured upstreams.
#[derive(Debug)]
pub struct Upstreams {
    servers: Vec<SocketAddr>,
    udp: Vec<UdpUpstream>,
    timeout: Duration,
    next: AtomicUsize,
}

impl Upstreams {
    /// Upstreams tried in turn, each for `timeout`.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self {
            udp: servers.iter().copied().map(UdpUpstream::new).collect(),
            servers,
            timeout,
            next: AtomicUsize::new(0),
        }
    }

    /// Sends `query` (over TCP when `tcp`) and returns its answer, with the
    /// query's id. Starts at a rotating upstream so load spreads. Must run
    /// inside the tokio runtime that is to read the replies.
    pub async fn ask(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, UpstreamError> {
        if self.servers.is_empty() {
            return Err(UpstreamError::NoUpstream);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.servers.len() {
            let at = (start + i) % self.servers.len();
            let server = self.servers[at];
            let attempt = async {
                if tcp {
                    ask_tcp(server, query).await
                } else {
                    self.udp[at].ask(query).await
                }
            };
            match timeout(self.timeout, attempt).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(error)) => last = format!("{server}: {error}"),
                Err(_) => last = format!("{server}: timed out after {:?}", self.timeout),
            }
        }
        Err(UpstreamError::AllFailed(last))
    }
}

async fn ask_tcp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(query).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}
