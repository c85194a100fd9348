//! The lab's upstream DNS server: dnsmasq in the internet namespace on
//! 198.51.100.53 and 2001:db8::53, answering the seeds' names with lab
//! addresses, logging every query it gets.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use boxfence_lab::Lab;

/// Names the lab's DNS answers, and their addresses.
pub(crate) const RECORDS: &[(&str, &str)] = &[
    ("api.github.com", "198.51.100.10,2001:db8::10"),
    ("github.com", "203.0.113.10"),
    ("registry.npmjs.org", "203.0.113.10"),
    ("raw.githubusercontent.com", "198.51.100.10"),
    ("githubusercontent.com", "203.0.113.10"),
    ("evil.example", "203.0.113.10"),
    ("private.example", "10.0.0.1"),
    ("metadata.example", "169.254.169.254"),
    // Asked by the readiness probe only, so the log of every test name
    // stays clean.
    ("probe.lab", "192.0.2.254"),
];

/// A running lab DNS server; killed on drop.
#[derive(Debug)]
pub(crate) struct LabDns {
    child: Child,
    log: PathBuf,
}

impl LabDns {
    /// Starts dnsmasq with answers of `ttl` seconds.
    pub(crate) fn start(lab: &Lab, ttl: u32) -> Self {
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
        for (name, addresses) in RECORDS {
            argv.push(format!("--host-record={name},{addresses}"));
        }
        let child = lab
            .internet_command(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq starts (Debian package dnsmasq-base)");
        let dns = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dns.queries().contains("started") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let probe = lab
            .host_exec([
                "dig",
                "+short",
                "+time=1",
                "+tries=5",
                "@198.51.100.53",
                "probe.lab",
            ])
            .expect("dig");
        assert!(
            String::from_utf8_lossy(&probe.stdout).contains("192.0.2.254"),
            "lab DNS answers: {probe:?}"
        );
        dns
    }

    /// Everything dnsmasq logged so far.
    pub(crate) fn queries(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True when dnsmasq was asked about `name` (exactly).
    pub(crate) fn was_asked(&self, name: &str) -> bool {
        self.queries()
            .lines()
            .any(|line| line.contains("query[") && line.contains(&format!(" {name} from")))
    }
}

impl Drop for LabDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
