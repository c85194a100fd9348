//! The test servers in the internet namespace: one small stdlib-only Python
//! process (`servers.py`), started at lab start and killed at teardown.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::addresses::{
    HOLD_PORT, HTTP_ALT_PORT, HTTP_PORT, HTTPS_PORT, QUIC_ECHO_PORT, SERVER_ADDRS, TCP_PORTS,
    UDP_ECHO_PORT,
};
use crate::netns::NetNs;
use crate::{LabError, exec};

const SCRIPT: &str = include_str!("servers.py");

/// How long start-up may take before the lab gives up. Generous: a loaded
/// CI machine runs many labs at once, and on the kernel matrix's emulated
/// Linux 5.10 the servers were not up after 20 s (natively under 1 s).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// One probe's patience; a server that is up answers in microseconds.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// The running server process.
#[derive(Debug)]
pub(crate) struct Servers {
    child: Child,
    /// Held open: the script exits when it reads EOF here, i.e. when this
    /// process dies, even by SIGKILL.
    stdin: Option<ChildStdin>,
}

/// Files the servers need: their TLS key pair, their log.
#[derive(Debug)]
pub(crate) struct ServerFiles<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) cert: &'a Path,
    pub(crate) key: &'a Path,
}

impl Servers {
    /// Starts the servers in `internet` and returns once every one of them
    /// answers from `host` through the uplink, which also proves the
    /// lab's wiring.
    pub(crate) fn start(
        internet: &NetNs,
        host: &NetNs,
        files: &ServerFiles<'_>,
    ) -> Result<Self, LabError> {
        let script = files.dir.join("servers.py");
        write_file(&script, SCRIPT)?;
        let log = files.dir.join("servers.log");
        let log_file = File::create(&log).map_err(|source| LabError::Io {
            context: "cannot create",
            path: log.clone(),
            source,
        })?;

        let mut argv: Vec<String> = vec![python(), script.display().to_string()];
        argv.extend(["--cert".into(), files.cert.display().to_string()]);
        argv.extend(["--key".into(), files.key.display().to_string()]);
        for (flag, port) in [
            ("--http", HTTP_PORT),
            ("--http", HTTP_ALT_PORT),
            ("--https", HTTPS_PORT),
            ("--udp", UDP_ECHO_PORT),
            ("--udp", QUIC_ECHO_PORT),
            ("--hold", HOLD_PORT),
        ] {
            argv.extend([flag.to_owned(), port.to_string()]);
        }
        argv.extend(SERVER_ADDRS.iter().map(ToString::to_string));

        let mut cmd = internet.command(&argv);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
            what: exec::describe(&cmd),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let mut servers = Self { child, stdin };
        let start = Instant::now();
        wait_bound(stdout, start);
        servers.wait_ready(host, start, &log)?;
        Ok(servers)
    }

    /// Polls every server from the lab host until all answer, the process
    /// dies, or [`READY_TIMEOUT`] passes.
    fn wait_ready(&mut self, host: &NetNs, start: Instant, log: &Path) -> Result<(), LabError> {
        let mut pending: Vec<Probe> = SERVER_ADDRS
            .iter()
            .flat_map(|&ip| {
                TCP_PORTS
                    .iter()
                    .map(move |&port| Probe::Tcp(SocketAddr::new(ip, port)))
                    .chain([Probe::Udp(SocketAddr::new(ip, UDP_ECHO_PORT))])
            })
            .collect();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LabError::ServersExited {
                    status,
                    log: read_log(log),
                });
            }
            pending = host.run_in(|| pending.into_iter().filter(|p| !p.succeeds()).collect())?;
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(LabError::ServersNotReady {
                    waited: start.elapsed(),
                    pending: pending.iter().map(ToString::to_string).collect(),
                    log: read_log(log),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server process and reaps it.
    pub(crate) fn stop(&mut self) -> Result<(), LabError> {
        self.stdin = None;
        let pid = self.child.id();
        let sys = |source| LabError::Child {
            what: "the test servers",
            pid,
            source,
        };
        if self.child.try_wait().map_err(sys)?.is_none() {
            self.child.kill().map_err(sys)?;
        }
        self.child.wait().map_err(sys).map(drop)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("boxfence-lab: {e}");
        }
    }
}

/// Waits for the script's `ready` line: every socket is bound. Probing
/// before that would wait out ICMP rate limits on closed UDP ports.
fn wait_bound(stdout: Option<ChildStdout>, start: Instant) {
    let Some(stdout) = stdout else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    // A reader thread, because std has no read with a timeout on a
    // pipe. It ends at EOF, i.e. when the servers exit.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let ready = line.is_ok_and(|l| l.trim() == "ready");
            if tx.send(ready).is_err() {
                break;
            }
        }
    });
    loop {
        match rx.recv_timeout(READY_TIMEOUT.saturating_sub(start.elapsed())) {
            Ok(true) => return,
            Ok(false) => {}
            // Closed stdout: the script died (the probe loop names
            // how); out of time: the probe loop reports what is missing.
            Err(_) => return,
        }
    }
}

/// One readiness check.
#[derive(Debug, Clone, Copy)]
enum Probe {
    Tcp(SocketAddr),
    Udp(SocketAddr),
}

impl Probe {
    fn succeeds(self) -> bool {
        match self {
            Self::Tcp(addr) => TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok(),
            Self::Udp(addr) => udp_echoes(addr).unwrap_or(false),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp {addr}"),
            Self::Udp(addr) => write!(f, "udp {addr}"),
        }
    }
}

fn udp_echoes(addr: SocketAddr) -> std::io::Result<bool> {
    let any: IpAddr = match addr {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = UdpSocket::bind((any, 0))?;
    sock.connect(addr)?;
    sock.set_read_timeout(Some(PROBE_TIMEOUT))?;
    sock.send(b"boxfence-lab probe")?;
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf)?;
    Ok(buf.get(..n) == Some(b"boxfence-lab probe".as_slice()))
}

/// The interpreter: the system one when present, since a version manager's
/// shim on PATH adds start-up time and depends on the caller's environment.
fn python() -> String {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".to_owned()
    } else {
        "python3".to_owned()
    }
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), LabError> {
    File::create(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| LabError::Io {
            context: "cannot write",
            path: PathBuf::from(path),
            source,
        })
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    match File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => text,
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
