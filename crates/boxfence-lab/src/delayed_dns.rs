//! A slow upstream: a UDP forwarder in the internet namespace that holds
//! every answer for a while before passing it on from the lab's DNS
//! server, so a test can change a box's policy while one of its queries is
//! in flight.

use std::net::SocketAddr;
use std::process::Child;
use std::time::Duration;

use crate::dns::answers_probe;
use crate::{DNS_V4, Lab, LabError, exec};

/// The forwarder (Python; answers come from [`LabDns`](crate::LabDns) on
/// port 53): holds each answer the given seconds, but for the readiness
/// probe's name.
const FORWARDER: &str = r#"
import socket, sys, threading, time
host, port, delay, upstream = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((host, port))
def serve(query, peer):
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    up.settimeout(2)
    up.sendto(query, (upstream, 53))
    try: answer = up.recv(4096)
    except OSError: return
    if b'\x05probe\x03lab' not in query:
        time.sleep(delay)
    s.sendto(answer, peer)
while True:
    query, peer = s.recvfrom(4096)
    threading.Thread(target=serve, args=(query, peer), daemon=True).start()
"#;

/// A running slow upstream; stopped on drop.
#[derive(Debug)]
pub struct DelayedDns {
    child: Child,
    /// Where it listens (an upstream for the resolver).
    pub address: SocketAddr,
}

impl DelayedDns {
    /// Starts the forwarder on `port` of the lab DNS server's address,
    /// holding each answer `delay`, and waits until it answers.
    ///
    /// # Errors
    ///
    /// When Python cannot start or the forwarder does not answer in 10 s.
    pub fn start(lab: &Lab, port: u16, delay: Duration) -> Result<Self, LabError> {
        let address = SocketAddr::new(DNS_V4.into(), port);
        let mut command = lab.internet_command([
            "python3".to_owned(),
            "-c".to_owned(),
            FORWARDER.to_owned(),
            DNS_V4.to_string(),
            port.to_string(),
            delay.as_secs_f64().to_string(),
        ]);
        let child = exec::spawn_silent(&mut command)?;
        let dns = Self { child, address };
        // Ready once it passes on the probe's answer.
        answers_probe(lab, address, String::new)?;
        Ok(dns)
    }
}

impl Drop for DelayedDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
