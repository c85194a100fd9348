//! Choosing and starting the data plane: the Linux engine with its
//! resolver when this process may manage network namespaces, otherwise
//! an engine that refuses machine work (the API answers 501, never
//! pretends). Either way the start-up log says what the host offers: each
//! kernel feature, the path each part takes, the uplinks, any problem.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use boxfence_dataplane::features::Feature;
use boxfence_engine::{
    AddressPool, Engine, LinuxConfig, LinuxEngine, ResolverHandle, SharedLinuxEngine, Unavailable,
    host,
};
use boxfence_policy::{AlwaysBlocked, Cidr, HostReport};
use boxfence_resolver::TcpLimits;
use boxfence_resolver::answer::TtlLimits;

use crate::CliError;
use crate::claim::{Claim, Footprint};
use crate::config::{KernelSettings, MARK_BITS, NetworkConfig, RULE_PREFS, ResolverSettings};
use boxfence_engine::SandboxConfig;

/// Upstream DNS servers each get this long before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What must live as long as the engine serves: its resolver (dropped,
/// it stops) and the claim on its state (released last).
#[derive(Default)]
pub(crate) struct Held {
    _resolver: Option<ResolverHandle>,
    _claim: Option<Claim>,
}

/// Starts the data plane for `network`, its resolver per `resolver`,
/// avoiding the kernel features `kernel` names. Fails on a kernel that
/// lacks a feature boxfence cannot work without, naming it, and when
/// another daemon holds the state directory or namespace prefix.
pub(crate) fn start(
    network: &NetworkConfig,
    resolver: &ResolverSettings,
    kernel: &KernelSettings,
    sandbox: &SandboxConfig,
) -> Result<(Arc<dyn Engine>, Held), CliError> {
    let (engine, held) = start_engine(network, resolver, kernel, sandbox)?;
    log_host(&engine.host_report());
    Ok((engine, held))
}

fn start_engine(
    network: &NetworkConfig,
    resolver: &ResolverSettings,
    kernel: &KernelSettings,
    sandbox: &SandboxConfig,
) -> Result<(Arc<dyn Engine>, Held), CliError> {
    let without = if !network.data_plane {
        Some("this daemon runs without a data plane (data_plane = false)")
    } else if !nix::unistd::geteuid().is_root() {
        Some("boxfence serve runs without root, so it cannot manage network namespaces")
    } else {
        None
    };
    if let Some(why) = without {
        let reason = format!("{why}; apps and policies work, machines cannot be created");
        return Ok((Arc::new(Unavailable { reason }), Held::default()));
    }
    // Before anything is touched: the engine removes the namespaces with
    // its prefix that it does not know, and another daemon's are not its.
    let claim = Claim::take(&footprint(network, sandbox)?)?;
    let pool = AddressPool {
        ipv4: network.ipv4_pool,
        ipv6: network.ipv6_pool,
    };
    let config = linux_config(network, &kernel.avoid, sandbox, pool)?;
    let engine =
        LinuxEngine::start(config).map_err(|e| CliError::Io(format!("data plane: {e}")))?;
    let upstreams = upstreams(&network.upstream_dns);
    let resolver = engine
        .spawn_resolver(
            upstreams,
            UPSTREAM_TIMEOUT,
            TtlLimits::default(),
            resolver.query_rate_per_box,
            TcpLimits {
                per_box: resolver.tcp_connections_per_box,
                total: resolver.tcp_connections,
                ..TcpLimits::default()
            },
        )
        .map_err(|e| CliError::Io(format!("resolver: {e}")))?;
    let held = Held {
        _resolver: Some(resolver),
        _claim: Some(claim),
    };
    Ok((Arc::new(SharedLinuxEngine(engine)), held))
}

/// What this daemon will hold, for the claim registry.
fn footprint(network: &NetworkConfig, sandbox: &SandboxConfig) -> Result<Footprint, CliError> {
    let owned = &network.owned;
    let netns = boxfence_engine::netns_identity(std::path::Path::new("/proc/self/ns/net"))
        .map_err(|e| CliError::Io(format!("this process's network namespace: {e}")))?;
    // Zones are offsets in the IPv4 pool; each gets a range of uids.
    let zones = 1u64 << (32 - network.ipv4_pool.prefix_len());
    let range = u64::from(boxfence_sandbox::uids::RANGE_SIZE);
    let first_uid = u64::from(sandbox.uid_base);
    Ok(Footprint {
        netns,
        state_dir: network.state_dir.clone(),
        netns_prefix: network.netns_prefix.clone(),
        ifname_prefix: owned.ifname_prefix.clone(),
        table: owned.table.clone(),
        rule_prefs: owned.rule_pref..=owned.rule_pref + RULE_PREFS - 1,
        marks: owned.mark * MARK_BITS,
        queue: network.name_check.then_some(owned.name_check_queue),
        log_group: owned.log_group,
        pool4: network.ipv4_pool,
        pool6: network.ipv6_pool,
        uids: first_uid..=(first_uid + zones * range - 1).min(u64::from(u32::MAX)),
    })
}

/// The engine configuration of a daemon on this host.
fn linux_config(
    network: &NetworkConfig,
    avoid: &[Feature],
    sandbox: &SandboxConfig,
    pool: AddressPool,
) -> Result<LinuxConfig, CliError> {
    let owned = &network.owned;
    let always_blocked = always_blocked(network)?;
    Ok(LinuxConfig {
        table: owned.table.clone(),
        netns_prefix: network.netns_prefix.clone(),
        ifname_prefix: owned.ifname_prefix.clone(),
        pool,
        uplinks: uplinks(network.uplink.clone()),
        always_blocked: Arc::new(always_blocked),
        sandbox: sandbox.clone(),
        state_dir: network.state_dir.clone(),
        rule_pref: owned.rule_pref,
        mark: owned.mark,
        log_group: owned.log_group,
        resolver_port: 53,
        host: boxfence_dataplane::HostNetns::current(),
        avoid: avoid.to_vec(),
        name_check: network.name_check.then_some(owned.name_check_queue),
    })
}

/// The always-blocked ranges minus the operator's exemptions, which may
/// not reach into the boxes' pools.
pub(crate) fn always_blocked(network: &NetworkConfig) -> Result<AlwaysBlocked, CliError> {
    let pools: [Cidr; 2] = [
        ipnet::IpNet::V4(network.ipv4_pool).into(),
        ipnet::IpNet::V6(network.ipv6_pool).into(),
    ];
    AlwaysBlocked::with_exemptions(&network.exempt_cidrs, &pools)
        .map_err(|e| CliError::Usage(format!("network.exempt_cidrs: {e}")))
}

/// The configured upstreams, else the nameservers of /etc/resolv.conf.
pub(crate) fn upstreams(configured: &[SocketAddr]) -> Vec<SocketAddr> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|address| address.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The interfaces box traffic leaves by: the configured uplink, else the
/// default IPv4 route's interface (none without either).
pub(crate) fn uplinks(configured: Option<String>) -> Vec<String> {
    configured
        .or_else(host::default_route_interface)
        .into_iter()
        .collect()
}

/// Logs what the host offers, one line per feature, part and uplink,
/// and a warning per problem.
fn log_host(report: &HostReport) {
    tracing::info!(
        kernel = %report.kernel,
        cgroup = report.cgroup.name(),
        ipv4_forwarding = ?report.forwarding.ipv4,
        ipv6_forwarding = ?report.forwarding.ipv6,
        "host"
    );
    for feature in &report.features {
        tracing::info!(
            feature = %feature.name,
            status = feature.status.name(),
            required = feature.required,
            since = %feature.since,
            answer = feature.answer.as_deref(),
            "kernel feature"
        );
    }
    for path in &report.paths {
        tracing::info!(
            part = %path.part,
            path = %path.path,
            fallback = path.fallback,
            "data plane path"
        );
    }
    for uplink in &report.uplinks {
        tracing::info!(
            uplink = %uplink.name,
            present = uplink.present,
            up = uplink.up,
            default_route = uplink.default_route,
            "uplink"
        );
    }
    for problem in &report.problems {
        tracing::warn!(%problem, "host problem");
    }
}
