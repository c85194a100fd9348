//! Forwarding to the upstream servers: a fresh socket per query (so no
//! shared id table and no lock), the query's own id kept, each upstream
//! tried in turn until one answers in time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// Largest DNS message over UDP we accept from upstream.
const MAX_UDP: usize = 65_535;

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
    timeout: Duration,
    next: AtomicUsize,
}

impl Upstreams {
    /// Upstreams tried in turn, each for `timeout`.
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self {
            servers,
            timeout,
            next: AtomicUsize::new(0),
        }
    }

    /// Sends `query` (over TCP when `tcp`) and returns the answer whose id
    /// matches. Starts at a rotating upstream so load spreads.
    pub async fn ask(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, UpstreamError> {
        if self.servers.is_empty() {
            return Err(UpstreamError::NoUpstream);
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..self.servers.len() {
            let server = self.servers[(start + i) % self.servers.len()];
            let attempt = async {
                if tcp {
                    ask_tcp(server, query).await
                } else {
                    ask_udp(server, query).await
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

async fn ask_udp(server: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(std::io::Error::other)?;
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    loop {
        // Not zeroed: only what the reply fills is ever read.
        let mut buffer = Vec::with_capacity(MAX_UDP);
        let n = socket.recv_buf(&mut buffer).await?;
        // A reply must carry our id; anything else is ignored (spoofing).
        if n >= 2 && buffer[..2] == query[..2] {
            return Ok(buffer);
        }
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
