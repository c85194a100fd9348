//! The resolver out of file descriptors: `accept` fails with EMFILE while
//! boxes keep connecting. UDP is still answered, serving never ends, and
//! TCP is answered again once descriptors free up.
//!
//! A test binary of its own: it lowers the process's open-file limit,
//! which would starve any test running beside it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use boxfence_resolver::{Resolver, TcpLimits};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::io::AsyncWriteExt as _;

mod support;

use support::{FLOOD_BOX, QUIET_BOX, ask_tcp, ask_udp, refuses, resolver, tcp_from, udp_from};

/// The highest file descriptor open now.
fn highest_fd() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .expect("fd list")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .max()
        .expect("some fd")
}

/// Lowers the open-file limit to a little above what is open, then opens
/// `/dev/null` until no descriptor is left; dropping the files gives them
/// back.
fn exhaust_descriptors(hard: u64) -> Vec<std::fs::File> {
    setrlimit(Resource::RLIMIT_NOFILE, highest_fd() + 16, hard).expect("setrlimit");
    let mut ballast = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => ballast.push(file),
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(nix::libc::EMFILE), "{error}");
                return ballast;
            }
        }
    }
}

#[tokio::test]
async fn out_of_descriptors_the_resolver_waits_and_keeps_serving() {
    let resolver = resolver(TcpLimits::default());
    let listen: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    let sockets = Resolver::bind(&[listen]).expect("binds");
    let udp = sockets[0].0.local_addr().expect("udp address");
    let tcp = sockets[0].1.local_addr().expect("tcp address");
    // Unsupervised: the accept loop itself must survive.
    let serving = tokio::spawn(Arc::clone(&resolver).serve(sockets));
    // Every socket the test needs exists before the descriptors run out.
    let flood: Vec<_> = (0..4).map(|_| tcp_from(FLOOD_BOX)).collect();
    let quiet_udp = udp_from(QUIET_BOX).await;
    let quiet_tcp = tcp_from(QUIET_BOX);
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");

    let ballast = exhaust_descriptors(hard);
    let mut held = Vec::new();
    for socket in flood {
        // Connecting takes no descriptor (the connection waits in the
        // backlog); accepting it would.
        if let Ok(mut stream) = socket.connect(tcp).await {
            let _ = stream.write_all(&[0, 64]).await;
            held.push(stream);
        }
    }
    let failed = || resolver.stats.socket_errors.load(Ordering::Relaxed) > 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !failed() && !serving.is_finished() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if serving.is_finished() {
        panic!("serving ended: {:?}", serving.await);
    }
    assert!(failed(), "accept failed for want of descriptors");
    let answer = ask_udp(&quiet_udp, udp, 1)
        .await
        .expect("UDP answered while accept fails");
    assert!(refuses(&answer, 1), "{answer:?}");

    drop(ballast);
    let answer = ask_tcp(quiet_tcp, tcp, 2)
        .await
        .expect("TCP answered once descriptors are back");
    assert!(refuses(&answer, 2), "{answer:?}");
    assert!(
        resolver.tcp_connections() >= held.len(),
        "the flood's connections were accepted in the end"
    );
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("limit restored");
}
