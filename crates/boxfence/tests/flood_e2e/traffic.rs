//! Floods of traffic rather than requests: connections held open on the
//! API, and a box that makes denials as fast as it can. Another tenant's
//! change is still enforced at once, another box still resolves.

use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use boxfence_lab::require_root;
use boxfence_server::ConnectionLimits;
use reqwest::Method;
use serde_json::json;

use crate::daemon::LabDaemon;
use crate::slowloris::{closed, hold};
use crate::{deny_all_is_enforced_at_once, flooder_and_other, not_stalled};

/// A DNS query for `api.github.com` (A), id 0x4242.
const QUERY: &[u8] = b"\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\
\x03api\x06github\x03com\x00\x00\x01\x00\x01";

/// How long box `id` waits for an answer to [`QUERY`] (any DNS address is
/// the built-in resolver); panics when none comes within [`not_stalled`].
pub(crate) fn resolves(daemon: &LabDaemon, id: &str) -> Duration {
    daemon.in_box(id, || {
        let socket = UdpSocket::bind("0.0.0.0:0").expect("socket");
        socket
            .set_read_timeout(Some(not_stalled()))
            .expect("timeout");
        let asked = Instant::now();
        socket
            .send_to(QUERY, "198.51.100.53:53")
            .expect("query sent");
        let mut answer = [0u8; 512];
        let n = socket
            .recv(&mut answer)
            .expect("an answer within the bound");
        assert!(n > 12 && answer[..2] == QUERY[..2], "{:?}", &answer[..n]);
        assert_eq!(answer[3] & 0x0f, 0, "NOERROR: {:?}", &answer[..n]);
        asked.elapsed()
    })
}

/// How many of `streams` the server has closed after `wait`.
fn closed_after(streams: &[TcpStream], wait: Duration) -> usize {
    std::thread::sleep(wait);
    streams.iter().filter(|stream| closed(stream)).count()
}

#[test]
fn a_connection_flood_on_the_api_leaves_it_to_everyone_else() {
    if !require_root("a_connection_flood_on_the_api_leaves_it_to_everyone_else") {
        return;
    }
    let daemon = LabDaemon::start();
    let (_, _, other) = flooder_and_other(&daemon);
    let limits = ConnectionLimits::default();
    let api = daemon.api.address();
    // One peer holds more connections than it may, each a request head
    // that never ends.
    let held: Vec<TcpStream> = (0..limits.per_peer + 64)
        .filter_map(|_| hold("127.0.0.2", api))
        .collect();
    assert_eq!(held.len(), limits.per_peer + 64, "every connect succeeds");
    let closed_at_once = closed_after(&held, Duration::from_millis(300));
    assert_eq!(
        closed_at_once, 64,
        "past its cap, a peer's connections are closed at once"
    );
    // Everyone else is served meanwhile.
    resolves(&daemon, &other);
    deny_all_is_enforced_at_once(&daemon, &other);
    let health = daemon.block_on(daemon.api.call(Method::GET, "/healthz", "", None));
    assert_eq!(health.status, 200, "{health:?}");
    // A head that does not arrive in time closes its connection.
    let all = closed_after(&held, limits.header_timeout + Duration::from_secs(1));
    assert_eq!(
        all,
        held.len(),
        "slow request heads are closed after {:?}",
        limits.header_timeout
    );
}

#[test]
fn a_box_making_denials_as_fast_as_it_can_stalls_no_one() {
    if !require_root("a_box_making_denials_as_fast_as_it_can_stalls_no_one") {
        return;
    }
    let daemon = LabDaemon::start();
    let (flooder, other_token, other) = flooder_and_other(&daemon);
    let noisy = daemon.block_on(daemon.api.create_box(&flooder));
    let answer = daemon.block_on(daemon.api.call(
        Method::PUT,
        &format!("/v1/boxes/{noisy}/network-policy"),
        &flooder,
        Some(json!({"mode": "custom", "allowedCidrs": ["203.0.113.0/24"]})),
    ));
    assert_eq!(answer.status, 200, "{answer:?}");
    let quiet = resolves(&daemon, &other);
    // New denied flows (each a new source port) for 6 s, from inside.
    let script = "import socket,time\n\
        end=time.time()+6; n=0\n\
        while time.time()<end:\n\
        \x20 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b'x',('198.51.100.10',9)); s.close(); n+=1\n\
        print(n)\n";
    let api = daemon.api.clone();
    let token = flooder.clone();
    let flood = daemon.runtime.as_ref().expect("runtime").spawn(async move {
        api.call(
            Method::POST,
            &format!("/v1/boxes/{noisy}/exec"),
            &token,
            Some(json!({"command": ["python3", "-c", script], "timeout": 20})),
        )
        .await
    });
    std::thread::sleep(Duration::from_secs(2));
    let loud = resolves(&daemon, &other);
    eprintln!("another box resolves in {quiet:?} quiet, {loud:?} during the flood");
    let events = daemon.block_on(daemon.api.call(
        Method::GET,
        &format!("/v1/boxes/{other}/flows"),
        &other_token,
        None,
    ));
    assert_eq!(events.status, 200, "{events:?}");
    deny_all_is_enforced_at_once(&daemon, &other);
    let flooded = daemon.block_on(flood).expect("flood task");
    assert_eq!(flooded.status, 200, "{flooded:?}");
    let sent: u64 = flooded.body["stdout"]
        .as_str()
        .and_then(|out| out.trim().parse().ok())
        .unwrap_or_default();
    eprintln!("the noisy box sent {sent} denied flows in 6 s");
    assert!(sent > 1000, "the flood flooded: {flooded:?}");
}
