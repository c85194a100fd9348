//! `boxfence run`: one ephemeral box for one command, without a daemon.

use std::process::ExitCode;
use std::sync::Arc;

use boxfence_engine::{EphemeralRun, ExecRequest, run_pool};
use boxfence_policy::{AlwaysBlocked, AppPolicy, BoxPolicy, Cidr, CustomPolicy, DomainPattern};

use crate::CliError;
use crate::data_plane;

/// Flags of `boxfence run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// A box policy or an app policy, as a file or inline JSON.
    #[arg(long, value_name = "FILE|JSON")]
    policy: Vec<String>,
    /// Allow this domain pattern (box policy `allowedDomains`).
    #[arg(long = "allow-domain", value_name = "PATTERN")]
    allow_domains: Vec<DomainPattern>,
    /// Allow this CIDR (box policy `allowedCidrs`).
    #[arg(long = "allow-cidr", value_name = "CIDR")]
    allow_cidrs: Vec<Cidr>,
    /// Deny this CIDR (box policy `deniedCidrs`).
    #[arg(long = "deny-cidr", value_name = "CIDR")]
    deny_cidrs: Vec<Cidr>,
    /// Exempt this always-blocked range (operator setting).
    #[arg(long = "exempt-cidr", value_name = "CIDR")]
    exempt_cidrs: Vec<Cidr>,
    /// Upstream DNS server [default: the host's /etc/resolv.conf].
    #[arg(long = "upstream-dns", value_name = "IP")]
    upstream_dns: Vec<std::net::IpAddr>,
    /// The interface to masquerade out of [default: any but boxes'].
    #[arg(long, value_name = "IFACE")]
    uplink: Option<String>,
    /// The box's size and image.
    #[command(flatten)]
    shape: crate::input::ShapeArgs,
    /// Seconds the command may run.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Runs the command in a fresh box and returns its exit status.
pub(crate) fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let (box_policy, app_policies) = policies(&args)?;
    let pool = run_pool();
    let pools: [Cidr; 2] = [
        ipnet::IpNet::V4(pool.ipv4).into(),
        ipnet::IpNet::V6(pool.ipv6).into(),
    ];
    let always_blocked = AlwaysBlocked::with_exemptions(&args.exempt_cidrs, &pools)
        .map_err(|e| CliError::Usage(format!("--exempt-cidr: {e}")))?;
    let configured: Vec<_> = args
        .upstream_dns
        .iter()
        .map(|ip| std::net::SocketAddr::new(*ip, 53))
        .collect();
    let image = args.shape.image()?;
    let sandbox = crate::config::ConfigFile::default()
        .resolve(crate::config::ConfigFile::default())?
        .runtime;
    let run = EphemeralRun {
        guest: Some(args.shape.guest().or(boxfence_policy::Guest {
            cpus: sandbox.limits.cpus,
            memory_mb: sandbox.limits.memory_mb,
        })),
        image,
        box_policy,
        app_policies,
        always_blocked: Arc::new(always_blocked),
        uplinks: args.uplink.into_iter().collect(),
        sandbox,
        upstreams: data_plane::upstreams(&configured),
        request: ExecRequest {
            command: args.command,
            stdin: None,
            timeout: Some(std::time::Duration::from_secs(args.timeout)),
        },
    };
    let output = run.run().map_err(|e| CliError::Io(e.to_string()))?;
    crate::output::out!("{}", output.stdout);
    eprint!("{}", output.stderr);
    Ok(ExitCode::from(u8::try_from(output.exit_code).unwrap_or(1)))
}

/// The box policy from the flags, or from `--policy`; app policies from
/// `--policy` too.
fn policies(args: &RunArgs) -> Result<(BoxPolicy, Vec<AppPolicy>), CliError> {
    let mut box_policy = None;
    let mut app_policies = Vec::new();
    for source in &args.policy {
        let text = if source.trim_start().starts_with('{') {
            source.clone()
        } else {
            std::fs::read_to_string(source)
                .map_err(|e| CliError::Io(format!("--policy {source}: {e}")))?
        };
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Usage(format!("--policy: not JSON: {e}")))?;
        if value.get("mode").is_some() {
            box_policy = Some(
                BoxPolicy::from_json(&value)
                    .map_err(|e| CliError::Usage(format!("--policy: {e}")))?,
            );
        } else {
            app_policies.push(
                AppPolicy::from_json(&value)
                    .map_err(|e| CliError::Usage(format!("--policy: {e}")))?,
            );
        }
    }
    let lists = !args.allow_domains.is_empty()
        || !args.allow_cidrs.is_empty()
        || !args.deny_cidrs.is_empty();
    match (box_policy, lists) {
        (Some(_), true) => Err(CliError::Usage(
            "give the box policy either with --policy or with --allow-*/--deny-cidr, not both"
                .into(),
        )),
        (Some(policy), false) => Ok((policy, app_policies)),
        (None, false) => Ok((BoxPolicy::AllowAll, app_policies)),
        (None, true) => Ok((
            BoxPolicy::Custom(CustomPolicy {
                allowed_domains: args.allow_domains.clone(),
                allowed_cidrs: args.allow_cidrs.clone(),
                denied_cidrs: args.deny_cidrs.clone(),
            }),
            app_policies,
        )),
    }
}
