//! `boxfence-lab run -- COMMAND...`: runs COMMAND in the host namespace of
//! a fresh sealed lab (its internet namespace, test servers and DNS up)
//! and tears the lab down when COMMAND exits, whatever its status. For
//! scripts that must keep their traffic inside namespaces they made, such
//! as `scripts/schemathesis.sh`. COMMAND gets the lab's facts a daemon's
//! config needs: `BOXFENCE_LAB_UPLINK`, `BOXFENCE_LAB_NETNS_PREFIX`,
//! `BOXFENCE_LAB_WORKDIR` (removed at teardown) and
//! `BOXFENCE_LAB_UPSTREAM_DNS`. Exits with COMMAND's status.

use std::process::ExitCode;

use boxfence_lab::{Lab, LabDns, LabError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.split_first() {
        Some((run, rest)) if run == "run" => rest.strip_prefix(&["--".to_owned()]).unwrap_or(rest),
        _ => &[],
    };
    if command.is_empty() {
        eprintln!("usage: boxfence-lab run -- COMMAND [ARG...]");
        return ExitCode::from(2);
    }
    match run(command) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("boxfence-lab: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the lab, runs `command` in its host, and returns its status; the
/// lab and its DNS are torn down on return (drop).
fn run(command: &[String]) -> Result<u8, LabError> {
    let lab = Lab::new()?;
    let _dns = LabDns::start(&lab, 60)?;
    let workdir = lab.workdir().display().to_string();
    let env = [
        ("BOXFENCE_LAB_UPLINK", lab.uplink().to_owned()),
        (
            "BOXFENCE_LAB_NETNS_PREFIX",
            lab.namespace_prefix().to_owned(),
        ),
        ("BOXFENCE_LAB_WORKDIR", workdir),
        (
            "BOXFENCE_LAB_UPSTREAM_DNS",
            boxfence_lab::DNS_V4.to_string(),
        ),
    ];
    let argv = ["env".to_owned()]
        .into_iter()
        .chain(env.iter().map(|(name, value)| format!("{name}={value}")))
        .chain(command.iter().cloned());
    let mut child = lab.spawn_in_host(argv)?;
    let status = child.wait().map_err(|source| LabError::Io {
        context: "cannot wait for the command",
        path: command[0].clone().into(),
        source,
    })?;
    Ok(status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(1))
}
