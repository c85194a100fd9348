//! What the resolver's socket tests share: a resolver on loopback whose
//! boxes are loopback addresses (both `deny-all`, so every answer is a
//! local REFUSED and needs no upstream), and asking it over UDP and TCP.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use boxfence_policy::{AlwaysBlocked, BoxPolicy, EffectivePolicy, Machine};
use boxfence_resolver::decision::LearnTarget;
use boxfence_resolver::directory::{BoxEntry, Directory};
use boxfence_resolver::{Learner, Learning, Resolver, ResolverConfig, TcpLimits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// The box that floods.
pub(crate) const FLOOD_BOX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// A box that only asks, now and then.
pub(crate) const QUIET_BOX: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// How long a test waits for an answer (the usual is well under 1 ms).
pub(crate) const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Answers here authorise nothing: the boxes are `deny-all`.
struct NoLearner;

impl Learner for NoLearner {
    fn learn(&self, _: &BoxEntry, _: &[LearnTarget], _: &[(IpAddr, Duration)]) -> Learning {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A resolver whose boxes are [`FLOOD_BOX`] and [`QUIET_BOX`], with `tcp`
/// limits and no upstream.
pub(crate) fn resolver(tcp: TcpLimits) -> Arc<Resolver> {
    let directory = Arc::new(Directory::default());
    for (id, address) in [("flood", FLOOD_BOX), ("quiet", QUIET_BOX)] {
        let machine = Machine {
            id: id.into(),
            network_policy: BoxPolicy::from_json(&serde_json::json!({"mode": "deny-all"}))
                .expect("policy"),
            ..Machine::default()
        };
        let policy =
            EffectivePolicy::from_policies(&machine, &[], Arc::new(AlwaysBlocked::default()));
        let entry = BoxEntry::new(id.into(), format!("bf-{id}"), policy);
        directory.insert(&[address.into()], entry, |_| true);
    }
    let config = ResolverConfig {
        listen: Vec::new(),
        upstreams: Vec::new(),
        upstream_timeout: Duration::from_secs(1),
        always_blocked: Arc::new(AlwaysBlocked::default()),
        ttl: Default::default(),
        query_rate_per_box: 1000,
        tcp,
    };
    Arc::new(Resolver::new(&config, directory, Arc::new(NoLearner)))
}

/// A query for `example.test` A with id `id`.
pub(crate) fn query(id: u16) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01");
    out
}

/// Whether `answer` is the resolver's REFUSED answer to query `id`.
pub(crate) fn refuses(answer: &[u8], id: u16) -> bool {
    answer.len() > 12
        && answer[..2] == id.to_be_bytes()
        && answer[2] & 0x80 != 0
        && answer[3] & 0x0f == 5
}

/// A UDP socket of box `source`.
pub(crate) async fn udp_from(source: Ipv4Addr) -> UdpSocket {
    UdpSocket::bind((source, 0)).await.expect("bind")
}

/// A TCP socket of box `source`, not connected yet.
pub(crate) fn tcp_from(source: Ipv4Addr) -> TcpSocket {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind((source, 0).into()).expect("bind");
    socket
}

/// The answer to query `id` sent over `socket` to `server`, if one comes
/// within [`ANSWER_WITHIN`].
pub(crate) async fn ask_udp(socket: &UdpSocket, server: SocketAddr, id: u16) -> Option<Vec<u8>> {
    socket.send_to(&query(id), server).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(ANSWER_WITHIN, socket.recv_from(&mut buffer))
        .await
        .ok()?
        .ok()?;
    buffer.truncate(n);
    Some(buffer)
}

/// The answer to query `id` over a connection of `socket` to `server`, if
/// one comes within [`ANSWER_WITHIN`].
pub(crate) async fn ask_tcp(socket: TcpSocket, server: SocketAddr, id: u16) -> Option<Vec<u8>> {
    let exchange = async {
        let mut stream = socket.connect(server).await?;
        let sent = query(id);
        let mut framed = u16::try_from(sent.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        framed.extend_from_slice(&sent);
        stream.write_all(&framed).await?;
        read_message(&mut stream).await
    };
    tokio::time::timeout(ANSWER_WITHIN, exchange)
        .await
        .ok()?
        .ok()
}

async fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}
