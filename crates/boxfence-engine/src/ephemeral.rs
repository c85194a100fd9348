//! `boxfence run`: one box for one command, without a daemon. It owns its
//! own table, interface prefix, address range and routing-rule
//! preferences, derived from its process id, so it never collides with a
//! running daemon (nor, short of a pid collision modulo 1000, with another
//! run).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use boxfence_dataplane::HostNetns;
use boxfence_policy::{AlwaysBlocked, AppPolicy, BoxPolicy, EffectivePolicy, Machine};
use boxfence_resolver::TcpLimits;
use boxfence_resolver::answer::TtlLimits;
use ipnet::{Ipv4Net, Ipv6Net};

use crate::{
    AddressPool, EngineError, ExecOutput, ExecRequest, LinuxConfig, LinuxEngine, MachineSpec,
};

/// What one ephemeral run needs.
#[derive(Debug, Clone)]
pub struct EphemeralRun {
    /// The box policy.
    pub box_policy: BoxPolicy,
    /// App policies (all apply to the one box their selectors match).
    pub app_policies: Vec<AppPolicy>,
    /// Operator exemptions from the always-blocked ranges.
    pub always_blocked: Arc<AlwaysBlocked>,
    /// Uplinks to masquerade out of; empty: any non-box interface.
    pub uplinks: Vec<String>,
    /// How its box's container is made.
    pub sandbox: crate::SandboxConfig,
    /// Upstream DNS servers of the built-in resolver.
    pub upstreams: Vec<SocketAddr>,
    /// The box's size; none: the configured one.
    pub guest: Option<boxfence_policy::Guest>,
    /// The image of its root; none: the default root.
    pub image: Option<String>,
    /// The command.
    pub request: ExecRequest,
}

/// The packet mark bit of runs: name checks use the four above it too, so
/// a daemon's `[network] mark` stays clear of bits 16 to 20.
pub const RUN_MARK: u32 = 1 << 16;

/// The run's slot among concurrent runs.
fn slot() -> u32 {
    std::process::id() % 1000
}

/// The /30 and /126 of this run, inside 10.239.0.0/16 and
/// fd00:b0f:ffff::/64.
pub fn run_pool() -> AddressPool {
    let offset = slot() * 4;
    let ipv4 = Ipv4Addr::from_bits(Ipv4Addr::new(10, 239, 0, 0).to_bits() + offset);
    let ipv6 = Ipv6Addr::from_bits(
        Ipv6Addr::new(0xfd00, 0xb0f, 0xffff, 0, 0, 0, 0, 0).to_bits() + u128::from(offset),
    );
    AddressPool {
        ipv4: Ipv4Net::new(ipv4, 30).expect("30 is an IPv4 prefix length"),
        ipv6: Ipv6Net::new(ipv6, 126).expect("126 is an IPv6 prefix length"),
    }
}

impl EphemeralRun {
    /// Creates the box, runs the command, and tears everything down (also
    /// when the command fails). Blocking.
    pub fn run(&self) -> Result<ExecOutput, EngineError> {
        let pool = run_pool();
        let pid = std::process::id();
        let config = LinuxConfig {
            table: format!("boxfence_run_{pid}"),
            netns_prefix: format!("bfr{}-", slot()),
            ifname_prefix: "bfr-".into(),
            pool,
            uplinks: self.uplinks.clone(),
            always_blocked: Arc::clone(&self.always_blocked),
            // Its own uid ranges too (a run's box is always zone 2).
            sandbox: crate::SandboxConfig {
                uid_base: self.sandbox.uid_base + slot() * 4 * boxfence_sandbox::uids::RANGE_SIZE,
                ..self.sandbox.clone()
            },
            state_dir: std::env::temp_dir().join(format!("boxfence-run-{pid}")),
            rule_pref: 20_000 + slot() * 8,
            // Bits of its own below a daemon's (`[network] mark`).
            mark: RUN_MARK,
            log_group: 1000 + u16::try_from(slot()).unwrap_or_default(),
            resolver_port: 53,
            host: HostNetns::current(),
            avoid: Vec::new(),
            // A queue of its own beside the daemon's.
            name_check: u16::try_from(slot()).ok().map(|slot| 1000 + slot),
        };
        let engine = LinuxEngine::start(config)?;
        let result = engine
            .spawn_resolver(
                self.upstreams.clone(),
                Duration::from_secs(2),
                TtlLimits::default(),
                crate::QUERY_RATE_PER_BOX,
                TcpLimits::default(),
            )
            .and_then(|resolver| {
                let output = self.run_in(&engine, pool);
                drop(resolver);
                output
            });
        let teardown = engine.shutdown();
        let output = result?;
        teardown?;
        Ok(output)
    }

    fn run_in(&self, engine: &LinuxEngine, pool: AddressPool) -> Result<ExecOutput, EngineError> {
        let addresses = pool
            .allocate(&HashSet::new())
            .map_err(|e| EngineError::Kernel(e.to_string()))?;
        let id = format!("r{}", slot());
        let machine = Machine {
            id: id.clone(),
            metadata: Default::default(),
            network_policy: self.box_policy.clone(),
            addresses: vec![addresses.ipv4.into(), addresses.ipv6.into()],
        };
        let policy = EffectivePolicy::from_policies(
            &machine,
            &self.app_policies,
            Arc::clone(&self.always_blocked),
        );
        let spec = MachineSpec {
            attachment: None,
            id: id.clone(),
            addresses,
            guest: self.guest,
            image: self.image.clone(),
        };
        if let Some(image) = &spec.image {
            engine.check_image(image)?;
        }
        engine.create_blocking(&spec, &policy)?;
        // The same sandbox as a daemon's box (shutdown removes it).
        engine.start_sandbox(&engine.link(&spec)?, &spec)?;
        engine.exec_blocking(&id, &self.request)
    }
}
