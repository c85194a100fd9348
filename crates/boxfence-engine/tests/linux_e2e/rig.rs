//! The rig every end-to-end test runs on: a sealed lab whose host runs a
//! Linux engine and its resolver, with helpers to act from inside a box.

pub(crate) use std::collections::HashSet;
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::Output;
pub(crate) use std::sync::Arc;
pub(crate) use std::time::{Duration, Instant};

pub(crate) use boxfence_dataplane::HostNetns;
pub(crate) use boxfence_dataplane::features::Feature;
pub(crate) use boxfence_engine::{
    AddressPool, Engine, ExecOutput, ExecRequest, LinuxConfig, LinuxEngine, MachineAddresses,
    MachineSpec, ResolverHandle, SharedLinuxEngine,
};
pub(crate) use boxfence_lab::{
    CDN_INSIDE_DENIED_V4, CDN_OUTSIDE_DENIED_V4, DelayedDns, LAB_HOST_V4, Lab, LabDns, SERVER_V4,
    SERVER_V6,
};
pub(crate) use boxfence_policy::{
    AlwaysBlocked, AppPolicy, BoxPolicy, EffectivePolicy, FlowEvent, FlowEventKind, Layer, Machine,
    Protocol,
};
pub(crate) use boxfence_resolver::TcpLimits;
pub(crate) use boxfence_resolver::answer::TtlLimits;
pub(crate) use serde_json::{Value, json};

use crate::lab_config::lab_config;

/// One end-to-end test, on a rig of the usual kind.
pub(crate) type Test = fn(&Rig);

/// One end-to-end test that builds a rig of its own kind.
pub(crate) type OwnRigTest = fn();

/// A lab with a Linux engine and its resolver running in its host
/// namespace, and the lab's DNS server upstream. Field order is drop order.
pub(crate) struct Rig {
    pub(crate) _resolver: ResolverHandle,
    pub(crate) dns: LabDns,
    /// The resolver's only upstream when the rig was built with one.
    _slow_dns: Option<DelayedDns>,
    pub(crate) engine: Arc<LinuxEngine>,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) lab: Lab,
    pub(crate) pool: AddressPool,
    pub(crate) blocked: Arc<AlwaysBlocked>,
    /// How its engine is configured beyond the lab's defaults.
    setup: EngineSetup,
}

/// What sets a rig's engine apart from the usual one (kept for an engine
/// restarted on the rig).
#[derive(Clone, Default)]
struct EngineSetup {
    /// The kernel features the engine avoids.
    avoid: Vec<Feature>,
    /// Uplinks configured besides the lab's (which need not exist).
    more_uplinks: Vec<String>,
    /// Whether the engine checks names.
    name_check: bool,
}

/// What sets a rig apart from the usual one.
struct Options {
    /// Whether the resolver's upstream holds every answer this long.
    upstream_delay: Option<Duration>,
    setup: EngineSetup,
    /// Queries per second the resolver allows each box.
    query_rate: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            upstream_delay: None,
            setup: EngineSetup::default(),
            query_rate: boxfence_engine::QUERY_RATE_PER_BOX,
        }
    }
}

impl Rig {
    pub(crate) fn new() -> Self {
        Self::build(Options::default())
    }

    /// A rig whose resolver asks a slow upstream, which holds every
    /// answer of the lab's DNS for `delay`.
    pub(crate) fn with_slow_upstream(delay: Duration) -> Self {
        Self::build(Options {
            upstream_delay: Some(delay),
            ..Options::default()
        })
    }

    /// A rig whose engine uses none of the optional kernel features: every
    /// fallback path runs, as on the oldest kernels supported.
    pub(crate) fn with_fallbacks() -> Self {
        let optional = Feature::ALL.into_iter().filter(|f| !f.required());
        Self::avoiding(optional.collect())
    }

    /// A rig whose engine avoids `avoid` (their fallbacks run).
    pub(crate) fn avoiding(avoid: Vec<Feature>) -> Self {
        Self::build(Options {
            setup: EngineSetup {
                avoid,
                ..EngineSetup::default()
            },
            ..Options::default()
        })
    }

    /// A rig whose engine checks the names of domain-authorised flows
    /// (issue 19; the other rigs keep the old behaviour, which their
    /// tests of line protocols on domain-authorised flows need).
    pub(crate) fn with_name_check() -> Self {
        Self::build(Options {
            setup: EngineSetup {
                name_check: true,
                ..EngineSetup::default()
            },
            ..Options::default()
        })
    }

    /// A rig whose engine is also told of uplink `name`, which the lab
    /// does not have.
    pub(crate) fn with_uplink_to_come(name: &str) -> Self {
        Self::build(Options {
            setup: EngineSetup {
                more_uplinks: vec![name.to_owned()],
                ..EngineSetup::default()
            },
            ..Options::default()
        })
    }

    /// A rig whose resolver lets each box send `rate` queries per second
    /// (the engine's default is [`boxfence_engine::QUERY_RATE_PER_BOX`]).
    pub(crate) fn with_query_rate(rate: u32) -> Self {
        Self::build(Options {
            query_rate: rate,
            ..Options::default()
        })
    }

    fn build(options: Options) -> Self {
        let Options {
            upstream_delay,
            setup,
            query_rate,
        } = options;
        let lab = Lab::new().expect("lab comes up");
        let config = Self::config(&lab, &setup);
        let (pool, blocked) = (config.pool, Arc::clone(&config.always_blocked));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let engine = runtime
            .block_on(async { LinuxEngine::start(config) })
            .expect("engine starts");
        lab.route_to_host(&pool.ipv4.to_string())
            .expect("route to boxes");
        lab.route_to_host(&pool.ipv6.to_string())
            .expect("route to boxes");
        let dns = LabDns::start(&lab, 1).expect("lab DNS answers");
        let slow_dns = upstream_delay
            .map(|delay| DelayedDns::start(&lab, 5300, delay).expect("slow upstream answers"));
        let upstreams = match &slow_dns {
            Some(slow) => vec![slow.address],
            None => vec![
                "198.51.100.53:53".parse().expect("addr"),
                "[2001:db8::53]:53".parse().expect("addr"),
            ],
        };
        let ttl = TtlLimits {
            ceiling: Duration::from_secs(300),
            floor: Duration::from_secs(3),
            grace: Duration::from_secs(2),
        };
        let resolver = engine
            .spawn_resolver(
                upstreams,
                Duration::from_secs(2),
                ttl,
                query_rate,
                TcpLimits::default(),
            )
            .expect("resolver starts");
        Self {
            _resolver: resolver,
            dns,
            _slow_dns: slow_dns,
            engine,
            runtime,
            lab,
            pool,
            blocked,
            setup,
        }
    }

    /// The engine configuration for `lab` with `setup`.
    fn config(lab: &Lab, setup: &EngineSetup) -> LinuxConfig {
        let usual = lab_config(lab, HostNetns::at(lab.host_netns_path()));
        LinuxConfig {
            avoid: setup.avoid.clone(),
            uplinks: [usual.uplinks.clone(), setup.more_uplinks.clone()].concat(),
            name_check: setup.name_check.then_some(19),
            ..usual
        }
    }

    /// The configuration of this rig's engine, for another engine on it
    /// (a restarted daemon).
    pub(crate) fn engine_config(&self) -> LinuxConfig {
        Self::config(&self.lab, &self.setup)
    }

    /// Creates box `id` with a box policy and app policies.
    pub(crate) fn create(
        &self,
        id: &str,
        box_policy: Value,
        app_policies: &[Value],
    ) -> MachineSpec {
        self.create_from(id, box_policy, app_policies, None)
    }

    /// [`Self::create`] with its root from `image` (in the engine's store).
    pub(crate) fn create_from(
        &self,
        id: &str,
        box_policy: Value,
        app_policies: &[Value],
        image: Option<&str>,
    ) -> MachineSpec {
        let used: HashSet<_> = self.engine.used_addresses();
        let addresses = self.pool.allocate(&used).expect("free address");
        let spec = MachineSpec {
            id: id.into(),
            addresses,
            guest: None,
            attachment: None,
            image: image.map(str::to_owned),
        };
        let policy = self.effective(&spec, box_policy, app_policies);
        self.runtime
            .block_on(SharedLinuxEngine(Arc::clone(&self.engine)).create_machine(&spec, &policy))
            .expect("box created");
        spec
    }

    pub(crate) fn effective(
        &self,
        spec: &MachineSpec,
        box_policy: Value,
        app_policies: &[Value],
    ) -> EffectivePolicy {
        let MachineAddresses { ipv4, ipv6 } = spec.addresses;
        let machine = Machine {
            id: spec.id.clone(),
            metadata: Default::default(),
            network_policy: BoxPolicy::from_json(&box_policy).expect("box policy"),
            addresses: vec![ipv4.into(), ipv6.into()],
        };
        let policies: Vec<AppPolicy> = app_policies
            .iter()
            .map(|p| AppPolicy::from_json(p).expect("policy"))
            .collect();
        EffectivePolicy::from_policies(&machine, &policies, Arc::clone(&self.blocked))
    }

    pub(crate) fn update(&self, spec: &MachineSpec, box_policy: Value, app_policies: &[Value]) {
        let policy = self.effective(spec, box_policy, app_policies);
        self.runtime
            .block_on(SharedLinuxEngine(Arc::clone(&self.engine)).apply(&[policy]))
            .expect("policy applied");
    }

    pub(crate) fn exec(&self, spec: &MachineSpec, argv: &[&str]) -> ExecOutput {
        self.exec_for(spec, argv, Duration::from_secs(20))
    }

    /// [`Self::exec`] with a time limit other than 20 s.
    pub(crate) fn exec_for(
        &self,
        spec: &MachineSpec,
        argv: &[&str],
        limit: Duration,
    ) -> ExecOutput {
        exec_on(&self.runtime, &self.engine, spec, argv, limit)
    }

    /// What curl in the box gets from `url`: the HTTP status, or
    /// `err<curl exit code>`.
    pub(crate) fn curl(&self, spec: &MachineSpec, url: &str) -> String {
        self.curl_with(spec, &[url])
    }

    /// [`Self::curl`] with more arguments (the URL among them); later
    /// ones win (`-m 3`).
    pub(crate) fn curl_with(&self, spec: &MachineSpec, args: &[&str]) -> String {
        curl_on(&self.runtime, &self.engine, spec, args)
    }

    pub(crate) fn host(&self, argv: &[&str]) -> Output {
        self.lab.host_exec(argv).expect("runs in lab host")
    }

    pub(crate) fn box_netns(&self, spec: &MachineSpec) -> PathBuf {
        self.engine.netns_path(&spec.id)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Err(error) = self.engine.shutdown() {
            eprintln!("engine shutdown: {error}");
        }
    }
}

/// curl exit codes meaning the connection was refused or unreachable at
/// once (7), not that it timed out (28).
pub(crate) const REFUSED: &str = "err7";

/// Sends one datagram to the lab's UDP echo server from the box: `echo`
/// when it came back, `no echo` when not.
pub(crate) fn udp_echo(rig: &Rig, spec: &MachineSpec) -> String {
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2)\n\
         s.sendto(b'ping',('{SERVER_V4}',5353))\n\
         try: print('echo' if s.recv(100)==b'ping' else 'other')\n\
         except Exception: print('no echo')\n"
    );
    rig.exec(spec, &["python3", "-c", &script])
        .stdout
        .trim()
        .to_owned()
}

/// curl's exit code when the name did not resolve.
pub(crate) const UNRESOLVED: &str = "err6";

pub(crate) fn dig(rig: &Rig, spec: &MachineSpec, args: &[&str]) -> String {
    let mut argv = vec!["dig", "+time=2", "+tries=1"];
    argv.extend_from_slice(args);
    rig.exec(spec, &argv).stdout
}

/// Waits up to 20 s for an event of the box matching `wanted` (natively
/// it comes within 0.1 s; under emulation in the kernel matrix, seconds);
/// returns the box's events then.
pub(crate) fn events_until(
    rig: &Rig,
    spec: &MachineSpec,
    wanted: impl Fn(&FlowEvent) -> bool,
) -> Vec<FlowEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = rig
            .engine
            .flow_log()
            .history(&spec.id, None, None, usize::MAX);
        if events.iter().any(&wanted) || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the metric line starting with `series`.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Runs `argv` in box `spec` through `engine`, blocking on `runtime` (on
/// which the watchdog of an engine started there runs meanwhile).
pub(crate) fn exec_on(
    runtime: &tokio::runtime::Runtime,
    engine: &Arc<LinuxEngine>,
    spec: &MachineSpec,
    argv: &[&str],
    limit: Duration,
) -> ExecOutput {
    let request = ExecRequest {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
        stdin: None,
        timeout: Some(limit),
    };
    runtime
        .block_on(SharedLinuxEngine(Arc::clone(engine)).exec(&spec.id, &request))
        .expect("exec runs")
}

/// What curl in box `spec`, run through `engine`, gets from `url`: the
/// HTTP status, or `err<curl exit code>`.
pub(crate) fn curl_on(
    runtime: &tokio::runtime::Runtime,
    engine: &Arc<LinuxEngine>,
    spec: &MachineSpec,
    args: &[&str],
) -> String {
    let argv = [&boxfence_lab::CURL_STATUS[..], args].concat();
    let out = exec_on(runtime, engine, spec, &argv, Duration::from_secs(20));
    if out.exit_code == 126 || out.exit_code == 127 {
        eprintln!("exec failed: {}", out.stderr);
    }
    boxfence_lab::curl_outcome(Some(out.exit_code), &out.stdout)
}
