//! `boxfence doctor`: what the host offers boxfence and whether it keeps
//! boxfence's promises. It probes the kernel's features, reports the path
//! each part of the data plane would take and the other prerequisites
//! (the same report as `GET /v1/host`), then checks the host settings
//! that act on box traffic after the judgement; it prints a table, or
//! JSON with `--json`, and exits with status 1 when a required feature is
//! missing or a check fails.
//!
//! The policy is judged once per flow, in the prerouting hook after
//! destination NAT (DESIGN.md section 3). What the host does to box
//! traffic after that hook is outside the judgement: a later NAT chain
//! or a rewrite of the destination would send an allowed flow elsewhere;
//! other routing tables, IPsec policies or IPVS may carry it another way.
//! Those are what the after-judgement checks look for. They read `nft -j`
//! and `ip -j`: a command an operator runs may use the host's tools,
//! unlike the daemon.

mod after_judgement;
mod table;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use boxfence_dataplane::features::KernelFeatures;
use boxfence_engine::host;
use boxfence_policy::{Forwarding, HostReport};
use serde::Serialize;

use crate::CliError;
use crate::config::ConfigFile;

/// Flags of `boxfence doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// The nftables table of the daemon to check around.
    #[arg(long, default_value = "boxfence")]
    table: String,
    /// The daemon's config file: its `[network] uplink`, `name_check` and
    /// `[kernel] avoid` are reported as the daemon would take them.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// As boxfence needs it.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Breaks a promise of boxfence.
    Fail,
    /// Could not be checked (no root, a tool missing).
    Unknown,
}

impl Status {
    /// Its name, as the JSON says it.
    fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// Its name, stable for scripts.
    pub(crate) name: &'static str,
    /// How it came out.
    pub(crate) status: Status,
    /// What was found, for a person.
    pub(crate) detail: String,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report {
    /// The host report is ok and no check failed.
    ok: bool,
    /// As `GET /v1/host` answers it.
    host: HostReport,
    checks: Vec<Check>,
}

/// Probes the kernel, runs every check and prints the report.
pub(crate) fn run(args: &DoctorArgs, json: bool) -> Result<ExitCode, CliError> {
    let file = match &args.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    let config = file.resolve(ConfigFile::default())?;
    let (uplink, avoid) = (config.network.uplink, config.kernel.avoid);
    let features = KernelFeatures::probe(&avoid).map_err(|error| error.to_string());
    let uplinks = crate::data_plane::uplinks(uplink);
    let mut host = host::gather(features.as_ref().map_err(String::as_str), Some(&uplinks));
    host::require_sandbox(&mut host, config.runtime.runtime, &config.runtime.init);
    if let (Ok(features), true) = (&features, config.network.name_check) {
        host::require_name_check(&mut host, features);
    }
    let mut checks = vec![forwarding(host.forwarding)];
    checks.extend(after_judgement::checks(&args.table, &Host));
    let report = Report {
        ok: host.ok && checks.iter().all(|c| c.status != Status::Fail),
        host,
        checks,
    };
    if json {
        crate::output::json(&report)?;
    } else {
        crate::output::out!("{}", table::render(&report.host, &report.checks));
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn forwarding(found: Forwarding) -> Check {
    match (found.ipv4, found.ipv6) {
        (Some(true), Some(true)) => Check {
            name: "forwarding",
            status: Status::Ok,
            detail: "IPv4 and IPv6 forwarding are on".into(),
        },
        (Some(_), Some(_)) => Check {
            name: "forwarding",
            status: Status::Warn,
            detail: "forwarding is off: boxes reach nothing until `boxfence serve` turns it on"
                .into(),
        },
        _ => Check {
            name: "forwarding",
            status: Status::Unknown,
            detail: "cannot read the forwarding sysctls".into(),
        },
    }
}

/// The host, as the checks read it: JSON from its own tools.
pub(crate) trait HostView {
    /// `nft -j list ruleset`.
    fn ruleset(&self) -> Result<serde_json::Value, String>;
    /// `ip -j <family> rule`, `ip -j xfrm policy`, ...: `ip -j` with `args`.
    fn ip(&self, args: &[&str]) -> Result<serde_json::Value, String>;
    /// A file under /proc, if it exists.
    fn proc_file(&self, path: &str) -> Option<String>;
}

/// The host this process runs on.
struct Host;

impl Host {
    fn json(program: &str, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = Command::new(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Array(Vec::new()));
        }
        serde_json::from_str(&text).map_err(|e| format!("{program} printed no JSON: {e}"))
    }
}

impl HostView for Host {
    fn ruleset(&self) -> Result<serde_json::Value, String> {
        Self::json("nft", &["-j", "list", "ruleset"])
    }

    fn ip(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        Self::json("ip", &all)
    }

    fn proc_file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}
