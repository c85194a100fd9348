//! The API on a unix socket: a peer the kernel says is root or an
//! allowed user is the operator without a token; the same request over
//! TCP needs one.

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;

use crate::support::{Daemon, Options};

/// `GET path` over the unix socket at `socket`, without a token: status
/// and body.
async fn get_unix(socket: &std::path::Path, path: &str) -> (u16, Value) {
    let (socket, path) = (socket.to_owned(), path.to_owned());
    let answer = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match std::os::unix::net::UnixStream::connect(&socket) {
                Ok(stream) => break stream,
                // Bound by the serving task, which may not have run yet.
                Err(error) => {
                    assert!(Instant::now() < deadline, "{}: {error}", socket.display());
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        answer
    })
    .await
    .expect("client thread");
    let (head, body) = answer.split_once("\r\n\r\n").expect("HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn local_peers_need_no_token_on_the_unix_socket() {
    let own = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    let daemon = Daemon::start_with(Options {
        unix_socket_uids: Some(vec![own]),
        ..Options::default()
    })
    .await;
    daemon.create_app("web").await;
    let socket = daemon.dir.path().join("api.sock");
    let (status, apps) = get_unix(&socket, "/v1/apps").await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(apps[0]["app_name"], "web");
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "only its owner and group may connect");
    let (status, _, _) = daemon.raw(Method::GET, "/v1/apps", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "TCP still needs a token");
}
