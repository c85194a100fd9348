//! A box that floods the resolver with TCP connections, on loopback with
//! real sockets: past its cap each new connection is closed at once, a
//! connection that sends a length and never the query is closed after
//! the read timeout, and another box is answered all along, over UDP and
//! over TCP.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use boxfence_resolver::{Resolver, TcpLimits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

mod support;

use support::{FLOOD_BOX, QUIET_BOX, ask_tcp, ask_udp, refuses, resolver, tcp_from, udp_from};

/// Small caps and a short read timeout, so the test is quick.
const LIMITS: TcpLimits = TcpLimits {
    per_box: 4,
    total: 64,
    io_timeout: Duration::from_secs(1),
    idle_timeout: Duration::from_secs(2),
};
/// Beyond the read timeout, the time a test allows for a connection to be
/// closed (the usual is a few milliseconds).
const CLOSED_WITHIN: Duration = Duration::from_secs(3);

/// The resolver serving on loopback: its UDP and TCP addresses.
fn serve(resolver: &Arc<Resolver>) -> (SocketAddr, SocketAddr) {
    let listen: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    let sockets = Resolver::bind(&[listen]).expect("binds");
    let udp = sockets[0].0.local_addr().expect("udp address");
    let tcp = sockets[0].1.local_addr().expect("tcp address");
    tokio::spawn(Arc::clone(resolver).supervise(vec![listen], sockets));
    (udp, tcp)
}

/// Whether the resolver closed `stream` (end of file or a reset) within
/// `within`, without answering.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_flood_of_lengths_without_queries_spares_other_boxes() {
    let resolver = resolver(LIMITS);
    let (udp, tcp) = serve(&resolver);
    let flood = 40;
    let mut held = Vec::new();
    for _ in 0..flood {
        // A connection reset before `connect` returns was closed at once.
        if let Ok(mut stream) = tcp_from(FLOOD_BOX).connect(tcp).await {
            // A 64-byte query announced, never sent.
            let _ = stream.write_all(&[0, 64]).await;
            held.push(stream);
        }
    }
    let beyond_cap = u64::try_from(flood - LIMITS.per_box).expect("small");
    let deadline = tokio::time::Instant::now() + CLOSED_WITHIN;
    while resolver.stats.tcp_refused.load(Ordering::Relaxed) < beyond_cap
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        resolver.stats.tcp_refused.load(Ordering::Relaxed),
        beyond_cap,
        "every connection past the box's cap is closed at once"
    );
    assert_eq!(resolver.tcp_connections(), LIMITS.per_box);

    let quiet = udp_from(QUIET_BOX).await;
    let answer = ask_udp(&quiet, udp, 7).await.expect("answered over UDP");
    assert!(refuses(&answer, 7), "{answer:?}");
    let answer = ask_tcp(tcp_from(QUIET_BOX), tcp, 8)
        .await
        .expect("answered over TCP");
    assert!(refuses(&answer, 8), "{answer:?}");

    for stream in &mut held {
        assert!(
            closed_within(stream, LIMITS.io_timeout + CLOSED_WITHIN).await,
            "a connection that never sends its query is closed"
        );
    }
    assert_eq!(resolver.tcp_connections(), 0);
    assert!(resolver.health().is_ok());
}

#[tokio::test]
async fn a_query_body_that_stops_halfway_is_cut_after_the_read_timeout() {
    let resolver = resolver(LIMITS);
    let (_, tcp) = serve(&resolver);
    let mut stream = tcp_from(QUIET_BOX).connect(tcp).await.expect("connects");
    let query = support::query(9);
    let len = u16::try_from(query.len()).expect("short").to_be_bytes();
    stream.write_all(&len).await.expect("length sent");
    stream
        .write_all(&query[..query.len() / 2])
        .await
        .expect("half the query sent");
    assert!(
        closed_within(&mut stream, LIMITS.io_timeout + CLOSED_WITHIN).await,
        "the connection is closed, unanswered"
    );
    assert_eq!(resolver.tcp_connections(), 0);
}

#[tokio::test]
async fn a_connection_from_outside_the_boxes_is_closed_at_once() {
    let resolver = resolver(LIMITS);
    let (_, tcp) = serve(&resolver);
    let stranger = Ipv4Addr::new(127, 0, 0, 9);
    assert_eq!(ask_tcp(tcp_from(stranger), tcp, 10).await, None);
    assert_eq!(resolver.stats.tcp_refused.load(Ordering::Relaxed), 1);
}
