//! Each box's container: made once its network exists, found again or
//! made anew after a restart, removed before its network goes. Container
//! work runs off the change thread (a runtime takes tens of milliseconds
//! per container, which one app's creates must not add to another's
//! policy changes).

use std::fs::File;
use std::path::PathBuf;

use boxfence_dataplane::ruleset::BoxLink;
use boxfence_sandbox::{
    BoxSpec, GeneratedEtc, ImageError, Limits, RuntimeKind, Sandboxes, UidRange,
};

use super::LinuxEngine;
use crate::{EngineError, ExecOutput, ExecRequest, MachineSpec};

/// How boxes' containers are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The OCI runtime.
    pub runtime: RuntimeKind,
    /// The box init on the host (catatonit).
    pub init: PathBuf,
    /// A box's size when its machine names none.
    pub limits: Limits,
    /// Box uid ranges are `uid_base + zone × 65,536`.
    pub uid_base: u32,
    /// The image store; none: `<state_dir>/images`.
    pub images: Option<PathBuf>,
}

impl LinuxEngine {
    /// The box containers, or why there are none (the runtime missing):
    /// then every create and exec fails, never runs a box with less.
    fn sandboxes(&self) -> Result<&Sandboxes, EngineError> {
        self.sandboxes
            .as_ref()
            .map_err(|why| EngineError::Sandbox(why.clone()))
    }

    /// The container id of box `id`: its network namespace's name, unique
    /// on the host.
    fn container(&self, id: &str) -> String {
        self.link_config.netns(id)
    }

    /// The box's host uid range.
    fn uids(&self, link: &BoxLink) -> Result<UidRange, EngineError> {
        UidRange::for_zone(self.config.sandbox.uid_base, link.zone).map_err(sandbox)
    }

    /// A new network namespace for the box, owned by its user namespace
    /// (made now), for the data plane to wire; the container joins both.
    /// Without a runtime, none: the box's create fails at its container.
    pub(crate) fn box_netns(&self, link: &BoxLink) -> Result<Option<File>, EngineError> {
        let Ok(sandboxes) = self.sandboxes() else {
            return Ok(None);
        };
        sandboxes
            .namespaces(&self.container(&link.id), self.uids(link)?)
            .map(Some)
            .map_err(sandbox)
    }

    /// Whether the box's network namespace is one the container can join:
    /// owned by the box's pinned user namespace (a box made before user
    /// namespaces owned them, or whose pin is gone, is made anew).
    pub(crate) fn has_userns(&self, id: &str) -> bool {
        self.sandboxes()
            .map_or(true, |sandboxes| sandboxes.has_userns(&self.container(id)))
    }

    /// Whether this host's image store has `image`.
    pub(crate) fn check_image(&self, image: &str) -> Result<(), EngineError> {
        if self.sandboxes()?.images().has(image) {
            Ok(())
        } else {
            Err(EngineError::NoSuchImage(image.to_owned()))
        }
    }

    /// Makes the box's container in its namespaces and starts its init,
    /// of the machine's size (or the configured one) and from its image
    /// (or the default root).
    pub(crate) fn start_sandbox(
        &self,
        link: &BoxLink,
        machine: &MachineSpec,
    ) -> Result<(), EngineError> {
        let sandboxes = self.sandboxes()?;
        let config = &self.config.sandbox;
        let uids = self.uids(link)?;
        // Its namespaces were made with it (`box_netns`), ping range
        // included (see `boxfence_sandbox::userns`).
        let netns = self.link_config.netns_path(&link.id);
        let resolv = self.config.state_dir.join(&link.id).join("resolv.conf");
        let spec = BoxSpec {
            id: self.container(&link.id),
            netns,
            uids,
            limits: machine.guest.map_or(config.limits, |guest| Limits {
                cpus: guest.cpus,
                memory_mb: guest.memory_mb,
                ..config.limits
            }),
            etc: GeneratedEtc {
                resolv_conf: std::fs::read(&resolv).map_err(sandbox)?,
                hostname: link.id.clone(),
            },
            image: machine.image.clone(),
        };
        match sandboxes.create(&spec) {
            Err(boxfence_sandbox::SandboxError::Image(ImageError::NotFound(name))) => {
                Err(EngineError::NoSuchImage(name))
            }
            other => other.map_err(sandbox),
        }
    }

    /// Ends the box's processes and removes its container.
    pub(crate) fn stop_sandbox(&self, id: &str) -> Result<(), EngineError> {
        self.sandboxes()?
            .delete(&self.container(id))
            .map_err(sandbox)
    }

    /// After a restart, before the network is reconciled: removes the
    /// containers of boxes the store no longer has, and of boxes without
    /// a user namespace (their network is made anew); their processes end
    /// before their network goes. Returns what failed.
    pub(crate) fn remove_stale_sandboxes(&self, keep: &[String]) -> Vec<String> {
        let Ok(sandboxes) = self.sandboxes() else {
            return Vec::new();
        };
        let keep: Vec<String> = keep
            .iter()
            .map(|id| self.container(id))
            .filter(|id| sandboxes.has_userns(id))
            .collect();
        let prefix = &self.config.netns_prefix;
        sandboxes
            .ids()
            .into_iter()
            .filter(|id| id.starts_with(prefix.as_str()) && !keep.contains(id))
            .filter_map(|stale| sandboxes.delete(&stale).err())
            .map(|error| error.to_string())
            .collect()
    }

    /// After a restart, once the network is reconciled: keeps each box's
    /// container that runs in the box's network namespace and makes the
    /// others anew. Returns what failed.
    pub(crate) fn ensure_sandboxes(&self, links: &[(BoxLink, MachineSpec)]) -> Vec<String> {
        let sandboxes = match self.sandboxes() {
            Ok(sandboxes) => sandboxes,
            Err(_) if links.is_empty() => return Vec::new(),
            Err(error) => return vec![error.to_string()],
        };
        let mut errors = Vec::new();
        for (link, machine) in links {
            let netns = self.link_config.netns_path(&link.id);
            if !sandboxes.runs_in(&self.container(&link.id), &netns)
                && let Err(error) = self.start_sandbox(link, machine)
            {
                errors.push(error.to_string());
            }
        }
        errors
    }

    pub(crate) fn exec_blocking(
        &self,
        id: &str,
        request: &ExecRequest,
    ) -> Result<ExecOutput, EngineError> {
        if !self.lock().links.contains_key(id) {
            return Err(EngineError::NoSuchMachine(id.to_owned()));
        }
        let result = self
            .sandboxes()?
            .exec(
                &self.container(id),
                &request.command,
                request.stdin.as_deref().unwrap_or_default().as_bytes(),
                request
                    .timeout
                    .unwrap_or(std::time::Duration::from_secs(60)),
            )
            .map_err(|e| EngineError::Exec(e.to_string()))?;
        Ok(ExecOutput {
            exit_code: result.exit_code,
            stdout: String::from_utf8_lossy(&result.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&result.stderr).into_owned(),
        })
    }
}

fn sandbox(error: impl std::fmt::Display) -> EngineError {
    EngineError::Sandbox(error.to_string())
}
