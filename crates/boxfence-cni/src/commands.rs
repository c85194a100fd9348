//! The commands, each a few calls of the daemon's API: a container's
//! attachment is the app's machine whose `attached` names the container
//! and interface.

use serde_json::{Value, json};

use crate::client::{Answer, Daemon};
use crate::error::CniError;
use crate::identity::{Identity, NETWORK_KEY};
use crate::result::{add_result, result_addresses};
use crate::spec::{Command, Env, NetConf, version_answer};

/// Runs `env`'s command with `conf`; what to print on success (none for
/// DEL, CHECK, GC and STATUS).
pub fn run(env: &Env, conf: &NetConf) -> Result<Option<Value>, CniError> {
    let daemon = Daemon::new(conf.socket.clone());
    match env.command {
        Command::Version => Ok(Some(version_answer(&conf.cni_version))),
        Command::Add => add(&daemon, env, conf).map(Some),
        Command::Del => del(&daemon, env, conf).map(|()| None),
        Command::Check => check(&daemon, env, conf).map(|()| None),
        Command::Gc => gc(&daemon, conf).map(|()| None),
        Command::Status => status(&daemon, conf).map(|()| None),
    }
}

fn machines_path(conf: &NetConf) -> String {
    format!("/v1/apps/{}/machines", conf.app)
}

/// The API's error as this plugin's: validation errors are the
/// configuration's (with the policy's source in place of its field),
/// caps and a busy store are worth a retry.
fn refused(answer: &Answer, what: &str, policy_source: Option<&str>) -> CniError {
    let mut message = answer.message();
    if let (Some(source), Some(details)) =
        (policy_source, answer.body["error"]["details"].as_array())
    {
        let problems: Vec<String> = details
            .iter()
            .filter_map(|detail| {
                let path = detail["path"].as_str()?;
                let rest = path.strip_prefix("network_policy")?;
                let rest = rest.strip_prefix('.').unwrap_or(rest);
                Some(format!("{source}: {rest}: {}", detail["message"].as_str()?))
            })
            .collect();
        if !problems.is_empty() {
            message = problems.join("; ");
        }
    }
    let message = format!("{what}: {message}");
    match answer.status {
        400 | 404 => CniError::InvalidConfig(message),
        429 | 503 => CniError::TryAgainLater(message),
        _ => CniError::Daemon(message),
    }
}

/// The app's machine attached for this container and interface.
fn find(daemon: &Daemon, env: &Env, conf: &NetConf) -> Result<Option<Value>, CniError> {
    let answer = daemon.call("GET", &machines_path(conf), None)?;
    if answer.status == 404 {
        // No app, no attachment.
        return Ok(None);
    }
    if answer.status != 200 {
        return Err(refused(&answer, "listing the app's machines", None));
    }
    Ok(answer.body.as_array().and_then(|machines| {
        machines
            .iter()
            .find(|machine| {
                let attached = &machine["attached"];
                attached["kind"] == "cni"
                    && attached["container_id"] == env.container_id.as_str()
                    && attached["ifname"] == env.ifname.as_str()
            })
            .cloned()
    }))
}

fn add(daemon: &Daemon, env: &Env, conf: &NetConf) -> Result<Value, CniError> {
    let netns = env.netns.as_deref().unwrap_or_default();
    // ADD again for the same container and interface: the attachment
    // made the first time.
    if let Some(machine) = find(daemon, env, conf)?
        && machine["attached"]["netns"] == netns
    {
        return add_result(&machine, netns, &conf.cni_version);
    }
    let identity = Identity::gather(env.args.as_deref(), conf)?;
    let mut body = json!({
        "config": {"metadata": identity.metadata},
        "attach": {
            "kind": "cni",
            "container_id": env.container_id,
            "netns": netns,
            "ifname": env.ifname,
        },
    });
    if let Some(policy) = &identity.policy {
        body["network_policy"] = policy.value.clone();
    }
    let answer = daemon.call("POST", &machines_path(conf), Some(&body))?;
    if answer.status != 201 {
        let source = identity
            .policy
            .as_ref()
            .map(|policy| policy.source.as_str());
        return Err(refused(&answer, "attaching the container", source));
    }
    add_result(&answer.body, netns, &conf.cni_version)
}

fn delete(daemon: &Daemon, conf: &NetConf, machine: &Value) -> Result<(), CniError> {
    let id = machine["id"].as_str().unwrap_or_default();
    let answer = daemon.call("DELETE", &format!("{}/{id}", machines_path(conf)), None)?;
    match answer.status {
        // Already gone is what DEL wants.
        200 | 404 => Ok(()),
        _ => Err(refused(&answer, "detaching the container", None)),
    }
}

fn del(daemon: &Daemon, env: &Env, conf: &NetConf) -> Result<(), CniError> {
    match find(daemon, env, conf)? {
        Some(machine) => delete(daemon, conf, &machine),
        None => Ok(()),
    }
}

fn check(daemon: &Daemon, env: &Env, conf: &NetConf) -> Result<(), CniError> {
    if !conf.at_least(0, 4) {
        return Err(CniError::IncompatibleVersion(format!(
            "{}: CHECK needs 0.4.0 or later",
            conf.cni_version
        )));
    }
    let previous = conf.raw.get("prevResult").ok_or_else(|| {
        CniError::InvalidConfig("CHECK needs `prevResult`, the result of the ADD".into())
    })?;
    let machine = find(daemon, env, conf)?.ok_or_else(|| {
        CniError::UnknownContainer(format!(
            "container {} has no attachment on interface {} in app {}",
            env.container_id, env.ifname, conf.app
        ))
    })?;
    let now = add_result(
        &machine,
        env.netns.as_deref().unwrap_or_default(),
        &conf.cni_version,
    )?;
    let (had, has) = (result_addresses(previous), result_addresses(&now));
    if let Some(missing) = had.iter().find(|address| !has.contains(address)) {
        return Err(CniError::NotEnforced(format!(
            "prevResult's address {missing} is not the attachment's (it has {})",
            has.join(", ")
        )));
    }
    let id = machine["id"].as_str().unwrap_or_default();
    let answer = daemon.call("GET", &format!("{}/{id}/check", machines_path(conf)), None)?;
    match answer.status {
        200 => Ok(()),
        409 => Err(CniError::NotEnforced(answer.message())),
        _ => Err(refused(&answer, "checking the attachment", None)),
    }
}

/// Removes the network's attachments whose container and interface are
/// not in `cni.dev/valid-attachments`.
fn gc(daemon: &Daemon, conf: &NetConf) -> Result<(), CniError> {
    let valid: Vec<(String, String)> = conf.raw["cni.dev/valid-attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            Some((
                entry["containerID"].as_str()?.to_owned(),
                entry["ifname"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let answer = daemon.call("GET", &machines_path(conf), None)?;
    if answer.status == 404 {
        return Ok(());
    }
    if answer.status != 200 {
        return Err(refused(&answer, "listing the app's machines", None));
    }
    let mut errors = Vec::new();
    for machine in answer.body.as_array().into_iter().flatten() {
        let attached = &machine["attached"];
        let ours = attached["kind"] == "cni"
            && machine["config"]["metadata"][NETWORK_KEY] == conf.name.as_str();
        let key = (
            attached["container_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            attached["ifname"].as_str().unwrap_or_default().to_owned(),
        );
        if ours
            && !valid.contains(&key)
            && let Err(error) = delete(daemon, conf, machine)
        {
            errors.push(error.to_string());
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::Daemon(errors.join("; ")))
    }
}

fn status(daemon: &Daemon, conf: &NetConf) -> Result<(), CniError> {
    let unavailable = |why: String| CniError::NotAvailable(format!("boxfence: {why}"));
    let health = daemon
        .call("GET", "/healthz", None)
        .map_err(|error| unavailable(error.to_string()))?;
    if health.status != 200 {
        return Err(unavailable(format!(
            "the daemon is unhealthy: {}",
            health.body
        )));
    }
    let app = daemon
        .call("GET", &format!("/v1/apps/{}", conf.app), None)
        .map_err(|error| unavailable(error.to_string()))?;
    match app.status {
        200 => Ok(()),
        _ => Err(unavailable(format!("app {}: {}", conf.app, app.message()))),
    }
}
