//! The engine configuration for a sealed lab, shared by the end-to-end
//! tests and the benchmarks (included with `#[path]`).

use std::sync::Arc;

use boxfence_dataplane::HostNetns;
use boxfence_engine::{AddressPool, LinuxConfig};
use boxfence_lab::Lab;
use boxfence_policy::{AlwaysBlocked, Cidr};

/// Boxes of the lab: crun (the default), small, catatonit as their init.
pub(crate) fn lab_sandbox() -> boxfence_engine::SandboxConfig {
    boxfence_engine::SandboxConfig {
        runtime: boxfence_sandbox::RuntimeKind::Crun,
        init: boxfence_sandbox::DEFAULT_INIT.into(),
        limits: boxfence_sandbox::Limits {
            cpus: 1,
            memory_mb: 256,
            pids_max: 256,
            tmp_mb: 64,
        },
        uid_base: 1 << 20,
        images: None,
    }
}

/// A daemon's configuration in `lab`, its commands run in `host`: pool
/// 10.200.0.0/16 and fd00:b0f::/64, the lab's documentation ranges exempted,
/// its uplink, its box namespace prefix; boxes as [`lab_sandbox`].
pub(crate) fn lab_config(lab: &Lab, host: HostNetns) -> LinuxConfig {
    let pool = AddressPool {
        ipv4: "10.200.0.0/16".parse().expect("pool"),
        ipv6: "fd00:b0f::/64".parse().expect("pool"),
    };
    let exempt: Vec<Cidr> = ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"]
        .iter()
        .map(|c| c.parse().expect("cidr"))
        .collect();
    let pools: [Cidr; 2] = [pool.ipv4.into(), pool.ipv6.into()].map(|net: ipnet::IpNet| net.into());
    let blocked = AlwaysBlocked::with_exemptions(&exempt, &pools).expect("exemptions");
    LinuxConfig {
        table: "boxfence".into(),
        netns_prefix: lab.namespace_prefix().into(),
        ifname_prefix: "bf-".into(),
        pool,
        uplinks: vec![lab.uplink().into()],
        always_blocked: Arc::new(blocked),
        sandbox: lab_sandbox(),
        state_dir: lab.workdir().join("state"),
        rule_pref: 10_090,
        mark: 0x0100_0000,
        log_group: 7,
        resolver_port: 53,
        host,
        avoid: Vec::new(),
        // Most tests speak line protocols on domain-authorised flows; the
        // name-check tests turn it on (`Rig::with_name_check`).
        name_check: None,
    }
}
