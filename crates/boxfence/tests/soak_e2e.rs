//! Soak: concurrent clients churn every write route of a `boxfence serve`
//! in a sealed lab while the test fills its database's disk for a while
//! (writes then answer 503), frees it, and SIGKILLs and restarts the
//! daemon, over and over. At the end, after one more crash, the store
//! holds every acknowledged write and none refused (of writes cut off by a
//! crash, either the old or the new value), the kernel has exactly the
//! stored machines, and every box acknowledged as `deny-all` is denied.
//!
//! Runs for `BOXFENCE_SOAK_SECS` seconds of churn (default 60).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use boxfence_lab::{SmallFs, require_root};
use serde_json::{Value, json};
use support::{Daemon, REFUSED};

const CLIENTS: usize = 4;
/// Most live machines one client keeps, so the final checks stay short.
const MACHINES_PER_CLIENT: usize = 3;
const DEFAULT_SECS: u64 = 60;
/// One round: churn, a crash mid-request, churn, a full disk, a crash
/// with the clients paused and a check of everything acknowledged.
const CYCLE: Duration = Duration::from_secs(12);
/// The database's filesystem: room for the WAL between checkpoints (about
/// 4 MiB) and the database.
const FS_BYTES: u64 = 16 * 1024 * 1024;
const MODES: [&str; 3] = ["allow-all", "deny-all", "custom"];

/// A small deterministic generator: the seed is printed, so a failing
/// run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// How a write ended, as the client saw it.
enum Outcome {
    /// 2xx: it must be stored.
    Acked(Value),
    /// 503 `store_unavailable` (the disk was full): it must not be.
    Refused,
    /// No answer (the daemon died or was down): stored or not.
    Unknown,
}

/// What one client wrote: for every object it touched, the values the
/// store may hold (`None`: absent).
#[derive(Default)]
struct Model {
    possible: BTreeMap<String, BTreeSet<Option<String>>>,
    /// Machines known to exist: name to id.
    machines: BTreeMap<String, String>,
    /// Tokens the daemon handed out.
    tokens: Vec<String>,
}

impl Model {
    /// What `outcome` of writing `value` to `key` allows the store to
    /// hold.
    fn apply<'v>(&mut self, key: String, value: impl Into<Option<&'v str>>, outcome: &Outcome) {
        let values = self.possible.entry(key).or_insert_with(|| {
            // Never written before: absent.
            BTreeSet::from([None])
        });
        match outcome {
            Outcome::Acked(_) => values.clear(),
            Outcome::Refused => return,
            Outcome::Unknown => {}
        }
        values.insert(value.into().map(str::to_owned));
    }
}

/// One client: its own app, churned until `stop`.
struct Client<'a> {
    daemon: &'a Daemon,
    app: String,
    rng: Rng,
    model: Model,
    next: usize,
    /// Writes acknowledged, refused and unanswered.
    counts: [usize; 3],
}

impl Client<'_> {
    /// One write; no answer means the daemon died or was down.
    fn write(&mut self, method: &str, path: &str, body: &str) -> Outcome {
        let (status, answer) = self.daemon.api(method, path, Some(body));
        let outcome = match status {
            200..=299 => Outcome::Acked(answer),
            503 if answer["error"]["code"] == "store_unavailable" => Outcome::Refused,
            0 => {
                // The daemon is down or restarting: do not spin.
                std::thread::sleep(Duration::from_millis(100));
                Outcome::Unknown
            }
            _ => panic!("{method} {path} {body} answered {status}: {answer}"),
        };
        self.counts[match outcome {
            Outcome::Acked(_) => 0,
            Outcome::Refused => 1,
            Outcome::Unknown => 2,
        }] += 1;
        outcome
    }

    fn step(&mut self) {
        self.next += 1;
        let n = self.next;
        let app = self.app.clone();
        let known: Vec<(String, String)> = self.model.machines.clone().into_iter().collect();
        let target = (!known.is_empty()).then(|| known[self.rng.below(known.len())].clone());
        match (self.rng.below(9), target) {
            (0, _) if known.len() < MACHINES_PER_CLIENT => {
                let name = format!("m{n}");
                let body = json!({"name": name, "config": {"metadata": {"role": "r0"}},
                                  "network_policy": {"mode": "allow-all"}});
                let path = format!("/v1/apps/{app}/machines");
                let outcome = self.write("POST", &path, &body.to_string());
                if let Outcome::Acked(answer) = &outcome {
                    let id = answer["id"].as_str().expect("id").to_owned();
                    self.model.machines.insert(name.clone(), id);
                }
                if !matches!(outcome, Outcome::Refused) {
                    let acked = Outcome::Acked(Value::Null);
                    self.model
                        .apply(format!("mode {name}"), "allow-all", &acked);
                    self.model.apply(format!("role {name}"), "r0", &acked);
                }
                self.model.apply(format!("machine {name}"), "yes", &outcome);
            }
            (1, Some((name, id))) => {
                let outcome = self.write("DELETE", &format!("/v1/boxes/{id}"), "");
                if !matches!(outcome, Outcome::Refused) {
                    // Never touched again: its id may be gone.
                    self.model.machines.remove(&name);
                }
                self.model.apply(format!("machine {name}"), None, &outcome);
            }
            (2 | 3, Some((name, id))) => {
                let mode = MODES[self.rng.below(MODES.len())];
                let body = match mode {
                    "custom" => json!({"mode": "custom", "allowedCidrs": ["198.51.100.0/24"]}),
                    mode => json!({ "mode": mode }),
                };
                let path = format!("/v1/boxes/{id}/network-policy");
                let outcome = self.write("PUT", &path, &body.to_string());
                self.model.apply(format!("mode {name}"), mode, &outcome);
            }
            (4, Some((name, id))) => {
                let role = format!("r{n}");
                let path = format!("/v1/apps/{app}/machines/{id}/metadata");
                let outcome = self.write("PATCH", &path, &json!({ "role": role }).to_string());
                self.model
                    .apply(format!("role {name}"), role.as_str(), &outcome);
            }
            (5, _) => {
                let name = format!("p{}", self.rng.below(3));
                let port = (1000 + n).to_string();
                let body = json!({"name": name, "selector": {"metadata": {"role": "none"}},
                    "rules": [{"action": "allow", "direction": "egress",
                               "ports": [{"protocol": "tcp", "port": 1000 + n}]}]});
                let path = format!("/v1/apps/{app}/network_policies");
                let outcome = self.write("POST", &path, &body.to_string());
                self.model
                    .apply(format!("policy {name}"), port.as_str(), &outcome);
            }
            (6, _) => {
                let path = format!("/v1/apps/{app}/network_policies");
                if let (200, Value::Array(list)) = self.daemon.api("GET", &path, None)
                    && let Some(policy) = list.first()
                {
                    let name = policy["name"].as_str().expect("name").to_owned();
                    let id = policy["id"].as_str().expect("id");
                    let outcome = self.write("DELETE", &format!("{path}/{id}"), "");
                    self.model.apply(format!("policy {name}"), None, &outcome);
                }
            }
            (7, _) => {
                // Another app of this client's, created or deleted.
                let extra = format!("{app}-x{}", self.rng.below(2));
                match self.daemon.api("GET", &format!("/v1/apps/{extra}"), None).0 {
                    200 => {
                        let outcome = self.write("DELETE", &format!("/v1/apps/{extra}"), "");
                        self.model.apply(format!("app {extra}"), None, &outcome);
                    }
                    404 => {
                        let body = json!({ "app_name": extra }).to_string();
                        let outcome = self.write("POST", "/v1/apps", &body);
                        self.model.apply(format!("app {extra}"), "yes", &outcome);
                    }
                    _ => {}
                }
            }
            _ => {
                let path = format!("/v1/apps/{app}/tokens");
                if let Outcome::Acked(answer) = self.write("POST", &path, "") {
                    let token = answer["token"].as_str().expect("token").to_owned();
                    self.model.tokens.push(token);
                }
            }
        }
    }

    /// Asserts that the store holds what this client's writes allow.
    fn check(&self) {
        for (key, value) in &self.actual() {
            let possible = self.model.possible.get(key);
            assert!(
                possible.is_some_and(|p| p.contains(value)),
                "{}: {key} is {value:?}, expected one of {possible:?}",
                self.app
            );
        }
    }

    /// What the store holds of everything this client touched, in the
    /// model's terms.
    fn actual(&self) -> BTreeMap<String, Option<String>> {
        // Absent unless found; a machine's mode and role only while it is.
        let mut actual: BTreeMap<String, Option<String>> = self
            .model
            .possible
            .keys()
            .filter(|key| !key.starts_with("mode ") && !key.starts_with("role "))
            .map(|key| (key.clone(), None))
            .collect();
        let machines = self
            .daemon
            .ok("GET", &format!("/v1/apps/{}/machines", self.app), "");
        for machine in machines.as_array().expect("machines") {
            let name = machine["name"].as_str().expect("name");
            let mode = machine["network_policy"]["mode"]
                .as_str()
                .map(str::to_owned);
            let role = machine["config"]["metadata"]["role"]
                .as_str()
                .map(str::to_owned);
            actual.insert(format!("machine {name}"), Some("yes".into()));
            actual.insert(format!("mode {name}"), mode);
            actual.insert(format!("role {name}"), role);
        }
        let policies = self.daemon.ok(
            "GET",
            &format!("/v1/apps/{}/network_policies", self.app),
            "",
        );
        for policy in policies.as_array().expect("policies") {
            let name = policy["name"].as_str().expect("name");
            let port = policy["rules"][0]["ports"][0]["port"].to_string();
            actual.insert(format!("policy {name}"), Some(port));
        }
        for app in self
            .daemon
            .ok("GET", "/v1/apps", "")
            .as_array()
            .expect("apps")
        {
            let name = app["app_name"].as_str().expect("app name");
            if name.starts_with(&format!("{}-x", self.app)) {
                actual.insert(format!("app {name}"), Some("yes".into()));
            }
        }
        actual
    }
}

/// How the test pauses its clients around a crash, and stops them.
#[derive(Default)]
struct Gate {
    stop: AtomicBool,
    pause: AtomicBool,
    /// Clients waiting in the current pause.
    idle: AtomicUsize,
    /// Bumped when a pause ends.
    epoch: AtomicUsize,
}

impl Gate {
    /// In a client: waits out a pause, if one is asked; true if it did.
    fn wait_if_paused(&self) -> bool {
        if !self.pause.load(Ordering::SeqCst) {
            return false;
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        self.idle.fetch_add(1, Ordering::SeqCst);
        while self.epoch.load(Ordering::SeqCst) == epoch && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Asks every client to pause and waits until all `clients` do; false
    /// (and everyone stopped) if a client ended, which only a panic does.
    fn pause(&self, clients: usize, all_alive: impl Fn() -> bool) -> bool {
        self.pause.store(true, Ordering::SeqCst);
        while self.idle.load(Ordering::SeqCst) < clients {
            if !all_alive() {
                self.stop.store(true, Ordering::SeqCst);
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    fn resume(&self) {
        self.idle.store(0, Ordering::SeqCst);
        self.pause.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// Ids of every stored machine.
fn stored_ids(daemon: &Daemon) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for app in daemon.ok("GET", "/v1/apps", "").as_array().expect("apps") {
        let app = app["app_name"].as_str().expect("app name");
        let machines = daemon.ok("GET", &format!("/v1/apps/{app}/machines"), "");
        for machine in machines.as_array().expect("machines") {
            ids.insert(machine["id"].as_str().expect("id").to_owned());
        }
    }
    ids
}

#[test]
fn acknowledged_writes_survive_churn_and_crashes() {
    if !require_root("acknowledged_writes_survive_churn_and_crashes") {
        return;
    }
    let secs = std::env::var("BOXFENCE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1;
    eprintln!("soak: {secs} s, seed {seed}");
    let fs = SmallFs::mount(FS_BYTES).expect("tmpfs");
    let daemon = Daemon::start_with_database(Some(&fs.path().join("boxfence.db")));
    let gate = Gate::default();
    let mut crashes = 0;
    let clients: Vec<Client<'_>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (daemon, gate) = (&daemon, &gate);
                scope.spawn(move || {
                    let app = format!("soak{i}");
                    daemon.ok("POST", "/v1/apps", &json!({ "app_name": app }).to_string());
                    let mut client = Client {
                        daemon,
                        app,
                        rng: Rng(seed.wrapping_mul(i as u64 + 1) | 1),
                        model: Model::default(),
                        next: 0,
                        counts: [0; 3],
                    };
                    while !gate.stop.load(Ordering::SeqCst) {
                        if gate.wait_if_paused() {
                            client.check();
                        }
                        client.step();
                    }
                    let [acked, refused, unknown] = client.counts;
                    eprintln!(
                        "soak: client {i}: {acked} writes acknowledged, {refused} refused \
                         (disk full), {unknown} unanswered (daemon down)"
                    );
                    client
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(secs);
        let all_alive = || workers.iter().all(|w| !w.is_finished());
        while Instant::now() + CYCLE < deadline && all_alive() {
            // A crash with requests in flight.
            std::thread::sleep(CYCLE / 3);
            daemon.kill();
            daemon.spawn();
            crashes += 1;
            // Writes on a full disk, then a crash while the clients wait:
            // the restarted daemon must hold exactly what was acknowledged.
            std::thread::sleep(CYCLE / 3);
            fs.fill().expect("fill");
            std::thread::sleep(CYCLE / 3);
            if !gate.pause(CLIENTS, all_alive) {
                break;
            }
            daemon.kill();
            fs.free().expect("free");
            daemon.spawn();
            crashes += 1;
            let stored = stored_ids(&daemon);
            assert_eq!(
                daemon.kernel_boxes(),
                stored,
                "the kernel has the stored boxes"
            );
            gate.resume();
        }
        std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        gate.stop.store(true, Ordering::SeqCst);
        workers
            .into_iter()
            .map(|w| w.join().expect("client"))
            .collect()
    });
    daemon.kill();
    daemon.spawn();
    eprintln!("soak: {crashes} crashes during the churn, one after");
    assert!(crashes > 0, "the soak crashed the daemon");
    assert!(
        clients.iter().any(|c| c.counts[1] > 0),
        "some writes met the full disk"
    );

    for client in &clients {
        client.check();
        for token in &client.model.tokens {
            let out = daemon
                .lab
                .host_exec([
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    &format!("Authorization: Bearer {token}"),
                    &format!("http://127.0.0.1:4280/v1/apps/{}", client.app),
                ])
                .expect("curl");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "200",
                "an acknowledged token of {} works",
                client.app
            );
        }
        // Every box acknowledged as deny-all is denied.
        for (name, id) in &client.model.machines {
            let mode = &client.model.possible[&format!("mode {name}")];
            if mode.len() == 1 && mode.contains(&Some("deny-all".into())) {
                assert_eq!(
                    daemon.curl(&format!("/v1/boxes/{id}/exec"), "http://198.51.100.10/"),
                    REFUSED,
                    "{name} ({id}) is deny-all"
                );
            }
        }
    }
    let stored = stored_ids(&daemon);
    assert_eq!(
        daemon.kernel_boxes(),
        stored,
        "the kernel has the stored boxes"
    );
    assert_eq!(daemon.netns_boxes(), stored, "each with its namespace");
}
