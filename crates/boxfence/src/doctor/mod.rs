//! `boxfence doctor`: checks the host settings boxfence's promises rest
//! on, and prints what it found (a table, or JSON with `--json`). Exits
//! with status 1 when a check fails.
//!
//! The policy is judged once per flow, in the prerouting hook after
//! destination NAT (DESIGN.md section 3). What the host does to box
//! traffic after that hook is outside the judgement: a later NAT chain
//! or a rewrite of the destination would send an allowed flow elsewhere;
//! other routing tables, IPsec policies or IPVS may carry it another way.
//! Those are what these checks look for.

mod after_judgement;

use std::process::{Command, ExitCode};

use serde::Serialize;

use crate::CliError;

/// Flags of `boxfence doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    /// The nftables table of the daemon to check around.
    #[arg(long, default_value = "boxfence")]
    table: String,
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
    ok: bool,
    checks: Vec<Check>,
}

/// Runs every check and prints the report.
pub(crate) fn run(args: &DoctorArgs, json: bool) -> Result<ExitCode, CliError> {
    let mut checks = vec![forwarding()];
    checks.extend(after_judgement::checks(&args.table, &Host));
    let report = Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        checks,
    };
    if json {
        crate::output::json(&report)?;
    } else {
        for check in &report.checks {
            let status = serde_json::to_value(check.status).unwrap_or_default();
            println!(
                "{:<28} {:<8} {}",
                check.name,
                status.as_str().unwrap_or("?"),
                check.detail
            );
        }
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn forwarding() -> Check {
    let read = |path: &str| std::fs::read_to_string(path).map(|v| v.trim() == "1");
    match (
        read("/proc/sys/net/ipv4/ip_forward"),
        read("/proc/sys/net/ipv6/conf/all/forwarding"),
    ) {
        (Ok(true), Ok(true)) => Check {
            name: "forwarding",
            status: Status::Ok,
            detail: "IPv4 and IPv6 forwarding are on".into(),
        },
        (Ok(_), Ok(_)) => Check {
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
