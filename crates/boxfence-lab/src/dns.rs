//! The lab's upstream DNS server: dnsmasq (Debian package dnsmasq-base) in
//! the internet namespace on [`DNS_V4`](crate::DNS_V4) and
//! [`DNS_V6`](crate::DNS_V6), answering the seeds' names with lab
//! addresses and logging every query it gets, so tests can prove that a
//! denied name never reached it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use crate::{DNS_V4, Lab, LabError, exec};

/// Names the lab's DNS answers, and their addresses.
pub const DNS_RECORDS: &[(&str, &str)] = &[
    ("api.github.com", "198.51.100.10,2001:db8::10"),
    ("github.com", "203.0.113.10"),
    ("registry.npmjs.org", "203.0.113.10"),
    ("raw.githubusercontent.com", "198.51.100.10"),
    ("githubusercontent.com", "203.0.113.10"),
    ("evil.example", "203.0.113.10"),
    ("private.example", "10.0.0.1"),
    ("metadata.example", "169.254.169.254"),
    // Asked by the readiness probe only, so no test name appears in the
    // log before a test asks it.
    ("probe.lab", "192.0.2.254"),
];

/// A running lab DNS server; stopped on drop.
#[derive(Debug)]
pub struct LabDns {
    child: Child,
    log: PathBuf,
}

impl LabDns {
    /// Starts dnsmasq in `lab`'s internet namespace, answering with `ttl`
    /// seconds, and waits until it answers.
    ///
    /// # Errors
    ///
    /// When dnsmasq cannot start or does not answer within 10 s.
    pub fn start(lab: &Lab, ttl: u32) -> Result<Self, LabError> {
        let log = lab.workdir().join(format!("dnsmasq-{ttl}.log"));
        let mut argv: Vec<String> = [
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--user=root",
            "--pid-file=",
            "--bind-interfaces",
            "--listen-address=198.51.100.53",
            "--listen-address=2001:db8::53",
            "--except-interface=inet0",
            "--log-queries",
        ]
        .map(String::from)
        .to_vec();
        argv.push(format!("--log-facility={}", log.display()));
        argv.push(format!("--local-ttl={ttl}"));
        argv.extend(
            DNS_RECORDS
                .iter()
                .map(|(name, addresses)| format!("--host-record={name},{addresses}")),
        );
        let mut command = lab.internet_command(&argv);
        let child = exec::spawn_silent(&mut command)?;
        let dns = Self { child, log };
        let address = SocketAddr::new(DNS_V4.into(), 53);
        answers_probe(lab, address, || dns.queries())?;
        Ok(dns)
    }

    /// Everything dnsmasq logged so far.
    #[must_use]
    pub fn queries(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True when dnsmasq was asked about exactly `name`.
    #[must_use]
    pub fn was_asked(&self, name: &str) -> bool {
        let asked = format!(" {name} from ");
        self.queries()
            .lines()
            .any(|line| line.contains("query[") && line.contains(&asked))
    }
}

impl Drop for LabDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a DNS server may take to answer its first probe: natively
/// well under a second; on the kernel matrix's emulated VMs more than 10 s
/// was seen for the delayed upstream.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits up to [`READY_TIMEOUT`] until the DNS server at `address` answers
/// the probe's name; on time out the error carries `log`.
pub(crate) fn answers_probe(
    lab: &Lab,
    address: SocketAddr,
    log: impl Fn() -> String,
) -> Result<(), LabError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let (server, port) = (
        format!("@{}", address.ip()),
        format!("-p{}", address.port()),
    );
    loop {
        let probe = lab.host_exec([
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
            &server,
            &port,
            "probe.lab",
        ])?;
        if String::from_utf8_lossy(&probe.stdout).contains("192.0.2.254") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::ServersNotReady {
                waited: READY_TIMEOUT,
                pending: vec![format!("dns {address}")],
                log: log(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
