//! A `boxfence serve` in a sealed lab, driven through its HTTP API: what
//! the daemon's end-to-end tests share. Each test binary uses part of it.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use boxfence_dataplane::features::{Feature, KernelFeatures};
use boxfence_lab::{Lab, LabDns};
use serde_json::{Value, json};

/// The status the host report gives `feature` on this kernel when the
/// configuration avoids none: every feature is found on this host (Linux
/// 6.16 or later) but the flowtable, which is there where the kernel has
/// `nf_flow_table` (the probe loads the module where it is one), and the
/// two ways of queueing, which are choices of the kernel's build (the
/// probe's own test checks that one of them is there).
pub(crate) fn status_here(feature: Feature) -> &'static str {
    let found = match feature {
        Feature::Flowtable => Path::new("/sys/module/nf_flow_table").exists(),
        Feature::QueueExpression | Feature::QueueTarget => probed().has(feature),
        _ => true,
    };
    if found { "found" } else { "missing" }
}

fn probed() -> &'static KernelFeatures {
    static PROBED: OnceLock<KernelFeatures> = OnceLock::new();
    PROBED.get_or_init(|| KernelFeatures::probe(&[]).expect("the kernel probe runs"))
}

/// The parts that take their fallback on this kernel when the
/// configuration avoids nothing, in report order: forwarding without a
/// flowtable, and queueing by the xtables target.
pub(crate) fn fallbacks_here() -> Vec<&'static str> {
    [
        (Feature::Flowtable, "forwarding"),
        (Feature::QueueExpression, "name check queue"),
    ]
    .into_iter()
    .filter(|(feature, _)| status_here(*feature) != "found")
    .map(|(_, part)| part)
    .collect()
}

/// The daemon's admin token.
pub(crate) const TOKEN: &str = "e2e-admin-token-0123456789";

/// A lab with a daemon in its host namespace (or one of two).
pub(crate) struct Daemon {
    /// The running daemon; behind a lock so that a test can kill and
    /// restart it while its clients call the API.
    child: Mutex<Option<Child>>,
    /// Where it is: its API port, config file, box namespace prefix and
    /// nftables table.
    place: Place,
    /// What it runs under (e.g. `setpriv` with a service's capabilities).
    under: Vec<String>,
    _dns: Arc<LabDns>,
    pub(crate) lab: Arc<Lab>,
}

/// One daemon's own settings in a lab.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    /// Its API port on the lab host's loopback.
    pub(crate) port: u16,
    /// Its config file.
    pub(crate) config: PathBuf,
    /// Its boxes' namespaces are `/run/netns/<netns_prefix><id>`.
    pub(crate) netns_prefix: String,
    /// Its nftables table.
    pub(crate) table: String,
}

impl Daemon {
    /// A daemon with its database in the lab's work directory.
    pub(crate) fn start() -> Self {
        Self::start_with_database(None)
    }

    /// A daemon with its database at `database` (default: in the lab's
    /// work directory).
    pub(crate) fn start_with_database(database: Option<&Path>) -> Self {
        Self::start_with(database, |_| String::new())
    }

    /// A daemon with `extra` added to its config file (sections after
    /// `[network]`).
    pub(crate) fn start_with_config(extra: &str) -> Self {
        Self::start_with(None, |_| extra.to_owned())
    }

    /// A daemon with what `extra` makes of its lab added to its config
    /// file (sections after `[network]`).
    pub(crate) fn start_with_config_for(extra: impl FnOnce(&Lab) -> String) -> Self {
        Self::start_with(None, extra)
    }

    /// A daemon that runs (and restarts) under the command `under`.
    pub(crate) fn start_under(under: &[String]) -> Self {
        Self::start_with_under(None, |_| String::new(), under)
    }

    fn start_with(database: Option<&Path>, extra: impl FnOnce(&Lab) -> String) -> Self {
        Self::start_with_under(database, extra, &[])
    }

    fn start_with_under(
        database: Option<&Path>,
        extra: impl FnOnce(&Lab) -> String,
        under: &[String],
    ) -> Self {
        let lab = Lab::new().expect("lab comes up");
        let dns = LabDns::start(&lab, 60).expect("lab DNS");
        lab.route_to_host("10.200.0.0/16").expect("route to boxes");
        write_config(&lab, database, &extra(&lab));
        let daemon = Self {
            child: Mutex::new(None),
            place: Place::usual(&lab),
            under: under.to_vec(),
            _dns: Arc::new(dns),
            lab: Arc::new(lab),
        };
        daemon.spawn();
        daemon
    }

    /// Two daemons in one lab host, each named (`a`, `b`) with its own
    /// port, database, state, box namespace prefix and `table`, and the
    /// `[network]` keys of `network` (the rest each must have apart).
    pub(crate) fn side_by_side(daemons: [(&str, &str, &str); 2]) -> [Self; 2] {
        let lab = Arc::new(Lab::new().expect("lab comes up"));
        let dns = Arc::new(LabDns::start(&lab, 60).expect("lab DNS"));
        let mut port = 4280;
        daemons.map(|(name, table, network)| {
            let place = Place {
                port,
                config: lab.workdir().join(format!("boxfence-{name}.toml")),
                netns_prefix: format!("{}{name}-", lab.namespace_prefix()),
                table: table.to_owned(),
            };
            port += 1;
            let workdir = lab.workdir();
            let text = config_text(
                &lab,
                &place,
                &workdir.join(format!("{name}.db")),
                &workdir.join(format!("state-{name}")),
                &format!("table = \"{table}\"\n{network}\n"),
            );
            std::fs::write(&place.config, text).expect("config written");
            let daemon = Self {
                child: Mutex::new(None),
                place,
                under: Vec::new(),
                _dns: Arc::clone(&dns),
                lab: Arc::clone(&lab),
            };
            daemon.spawn();
            daemon
        })
    }

    /// Its own settings.
    pub(crate) fn place(&self) -> &Place {
        &self.place
    }

    /// Starts `boxfence serve` and waits until it answers.
    pub(crate) fn spawn(&self) {
        let config = &self.place.config;
        let config = config.display().to_string();
        // With the soft open-file limit systemd gives a service.
        let command = ["prlimit", "--nofile=1024:"]
            .into_iter()
            .chain(self.under.iter().map(String::as_str))
            .chain([env!("CARGO_BIN_EXE_boxfence"), "serve", "--config", &config]);
        let child = self.lab.spawn_in_host(command).expect("daemon starts");
        *self.child.lock().expect("lock") = Some(child);
        let deadline = Instant::now() + start_timeout();
        while self.api("GET", "/healthz", None).0 != 200 {
            assert!(Instant::now() < deadline, "daemon did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's soft and hard open-file limits.
    pub(crate) fn open_file_limits(&self) -> (String, String) {
        let pid = self.pid();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        let line = limits
            .lines()
            .find_map(|line| line.strip_prefix("Max open files"))
            .expect("open-file limit listed");
        let mut values = line.split_whitespace().map(str::to_owned);
        (values.next().expect("soft"), values.next().expect("hard"))
    }

    /// The running daemon's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child
            .lock()
            .expect("lock")
            .as_ref()
            .expect("daemon runs")
            .id()
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            child.kill().expect("kill");
            child.wait().expect("reap");
        }
    }

    /// `(status, body)` of an API call made from inside the lab host.
    pub(crate) fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.api_as(Some(TOKEN), method, path, body)
    }

    /// [`Daemon::api`] with `token` (none: no `Authorization` header).
    pub(crate) fn api_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.place.port);
        let mut args = vec!["curl", "-s", "-m", "60", "-X", method];
        let authorization = token.map(|token| format!("Authorization: Bearer {token}"));
        if let Some(header) = &authorization {
            args.extend(["-H", header]);
        }
        args.extend([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            "-w",
            "\n%{http_code}",
            &url,
        ]);
        let mut command = self.lab.host_command(args);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(body.unwrap_or("").as_bytes());
        }
        let out = child.wait_with_output().expect("curl output");
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            status.trim().parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    /// Creates a box with the box policy `network_policy` (JSON); its id.
    pub(crate) fn create_box(&self, network_policy: &str) -> String {
        let body = format!(r#"{{"networkPolicy": {network_policy}}}"#);
        let created = self.ok("POST", "/v1/boxes", &body);
        created["id"].as_str().expect("box id").to_owned()
    }

    /// Box `id`'s flow log events of `verdict`, once there are `want` of
    /// them, or what there is after 3 s.
    pub(crate) fn flows(&self, id: &str, verdict: &str, want: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let path = format!("/v1/boxes/{id}/flows?verdict={verdict}");
            let (status, answer) = self.api("GET", &path, None);
            assert_eq!(status, 200, "{answer}");
            let found = answer.as_array().cloned().unwrap_or_default();
            if found.len() >= want || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The answer of a call that must succeed.
    pub(crate) fn ok(&self, method: &str, path: &str, body: &str) -> Value {
        let (status, answer) = self.api(method, path, Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {answer}"
        );
        answer
    }

    /// What curl inside the box at `exec_path` gets from `url`.
    pub(crate) fn curl(&self, exec_path: &str, url: &str) -> String {
        let command = json!({"command": ["curl", "-sk", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", url]});
        let out = self.ok("POST", exec_path, &command.to_string());
        // The Machines API answers snake_case, the Box API camelCase.
        let code = if out["exit_code"].is_null() {
            &out["exitCode"]
        } else {
            &out["exit_code"]
        };
        if *code == 0 {
            out["stdout"].as_str().unwrap_or_default().to_owned()
        } else {
            format!("err{code}")
        }
    }
}

impl Daemon {
    /// Ids of the boxes the kernel has: those with a chain on their device
    /// in the daemon's nftables table.
    pub(crate) fn kernel_boxes(&self) -> BTreeSet<String> {
        let out = self
            .lab
            .host_exec(["nft", "list", "table", "inet", &self.place.table])
            .expect("nft runs");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("b_")?.strip_suffix("_link"))
            .map(str::to_owned)
            .collect()
    }

    /// Ids of the boxes that have a network namespace.
    pub(crate) fn netns_boxes(&self) -> BTreeSet<String> {
        let prefix = &self.place.netns_prefix;
        std::fs::read_dir("/run/netns")
            .expect("/run/netns")
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.strip_prefix(prefix).map(str::to_owned)
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Clean shutdown of its boxes first; the lab removes what is left.
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut child) = child {
            let _ = self
                .lab
                .host_exec(["kill", "-TERM", &child.id().to_string()]);
            let _ = child.wait();
        }
    }
}

/// The config file of a lab daemon.
pub(crate) fn config_path(lab: &Lab) -> std::path::PathBuf {
    lab.workdir().join("boxfence.toml")
}

/// Writes the config of a daemon in `lab`'s host, its database at
/// `database` (default: in the lab's work directory), with `extra` added
/// (sections after `[network]`); returns its path.
pub(crate) fn write_config(lab: &Lab, database: Option<&Path>, extra: &str) -> std::path::PathBuf {
    let workdir = lab.workdir();
    let place = Place::usual(lab);
    let database = database.map_or_else(|| workdir.join("boxfence.db"), Path::to_path_buf);
    let config = config_text(lab, &place, &database, &workdir.join("state"), extra);
    std::fs::write(&place.config, config).expect("config written");
    place.config
}

impl Place {
    /// A lab's one daemon's.
    fn usual(lab: &Lab) -> Self {
        Self {
            port: 4280,
            config: config_path(lab),
            netns_prefix: lab.namespace_prefix().to_owned(),
            table: "boxfence".into(),
        }
    }
}

/// The config of a daemon at `place` in `lab`'s host.
fn config_text(lab: &Lab, place: &Place, database: &Path, state: &Path, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:{port}\"\n\
         database = \"sqlite://{db}\"\n\
         admin_token = \"{TOKEN}\"\n\
         [network]\n\
         uplink = \"{uplink}\"\n\
         exempt_cidrs = [\"198.51.100.0/24\", \"203.0.113.0/24\", \"2001:db8::/32\"]\n\
         upstream_dns = [\"198.51.100.53\"]\n\
         netns_prefix = \"{prefix}\"\n\
         state_dir = \"{state}\"\n\
         {extra}",
        port = place.port,
        db = database.display(),
        uplink = lab.uplink(),
        prefix = place.netns_prefix,
        state = state.display(),
    )
}

/// What [`Daemon::curl`] gets when the connection is refused.
pub(crate) const REFUSED: &str = "err7";
/// What [`Daemon::curl`] gets when the name does not resolve.
pub(crate) const UNRESOLVED: &str = "err6";

/// How long a daemon may take to become healthy: 20 s, or
/// `BOXFENCE_TEST_START_SECS`. A start takes well under a second on the
/// host; under qemu's emulation (scripts/test-kernels) it takes about 16 s
/// on Linux 5.10, so the matrix allows more.
fn start_timeout() -> Duration {
    let secs = std::env::var("BOXFENCE_TEST_START_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}
