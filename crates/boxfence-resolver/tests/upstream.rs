//! Forwarding over UDP against a fake upstream on loopback (the test run
//! has a network namespace of its own): concurrent queries each get their
//! own answer with their own id, forged replies are ignored, and sockets
//! rotate.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boxfence_resolver::upstream::Upstreams;
use tokio::net::UdpSocket;

/// A query for `n<i>.test` A, id `id`.
fn query(id: u16, i: usize) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    let label = format!("n{i}");
    out.push(u8::try_from(label.len()).expect("short"));
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"\x04test\x00\x00\x01\x00\x01");
    out
}

/// Answers every query, each after two forgeries: one with another id,
/// one with the right id but another name. Records the ids and source
/// ports it sees.
async fn fake_upstream(socket: UdpSocket, seen: Arc<Mutex<Vec<(u16, u16)>>>) {
    let mut buffer = vec![0u8; 512];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
            return;
        };
        let query = &buffer[..n];
        let id = u16::from_be_bytes([query[0], query[1]]);
        seen.lock().expect("lock").push((id, peer.port()));
        let mut answer = query.to_vec();
        answer[2] |= 0x80;
        let mut wrong_id = answer.clone();
        wrong_id[..2].copy_from_slice(&id.wrapping_add(1).to_be_bytes());
        let mut wrong_name = answer.clone();
        wrong_name[13] = b'x';
        // Recursion available: only the real answer says so.
        answer[3] |= 0x80;
        for reply in [wrong_id, wrong_name, answer] {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

#[test]
fn concurrent_queries_get_their_own_answers_and_forgeries_are_ignored() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let server: SocketAddr = socket.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(fake_upstream(socket, Arc::clone(&seen)));
        let upstreams = Arc::new(Upstreams::new(vec![server], Duration::from_secs(2)));
        let mut tasks = tokio::task::JoinSet::new();
        // More queries than a socket carries, 100 at once (as dnsperf
        // does: more would overflow the sockets' receive buffers).
        let in_flight = Arc::new(tokio::sync::Semaphore::new(100));
        for i in 0..2000 {
            let upstreams = Arc::clone(&upstreams);
            let permit = Arc::clone(&in_flight).acquire_owned().await;
            tasks.spawn(async move {
                let _permit = permit;
                let id = u16::try_from(i).expect("small");
                let sent = query(id, i);
                let answer = upstreams.ask(&sent, false).await.expect("answered");
                assert_eq!(answer[..2], sent[..2], "the query's own id");
                assert_eq!(answer[12..], sent[12..], "its own question");
                assert_eq!(answer[3] & 0x80, 0x80, "the real answer, not a forgery");
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.expect("query task");
        }
        let seen = seen.lock().expect("lock");
        assert_eq!(seen.len(), 2000);
        let sent_ids = seen
            .iter()
            .enumerate()
            .filter(|(i, (id, _))| usize::from(*id) == *i)
            .count();
        assert!(sent_ids < 10, "upstream ids are random, not the boxes'");
        let ports: HashSet<u16> = seen.iter().map(|(_, port)| *port).collect();
        assert!(ports.len() >= 4, "sockets rotate: {} ports", ports.len());
        assert!(
            ports.len() < 100,
            "sockets are shared: {} ports",
            ports.len()
        );
    });
}

#[test]
fn a_silent_upstream_times_out() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Bound but never read: queries go unanswered.
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let server = silent.local_addr().expect("address");
        let upstreams = Upstreams::new(vec![server], Duration::from_millis(200));
        assert!(upstreams.ask(&query(1, 1), false).await.is_err());
    });
}
