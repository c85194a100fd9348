//! Network namespaces as runtimes make them: bound under /run/netns
//! (podman, containerd), or held by a process only (`/proc/<pid>/ns/net`,
//! a jailer's). Each is new and empty; the only link it ever gets is the
//! daemon's veth from the lab host. Removed on drop.

use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A runtime's network namespace.
pub(crate) struct Container {
    /// The runtime's container id.
    pub(crate) id: String,
    /// `CNI_NETNS`.
    pub(crate) netns: String,
    /// Its `ip netns` name, when bound under /run/netns.
    name: Option<String>,
    /// The process holding it, when only a process does.
    holder: Option<Child>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique() -> String {
    format!(
        "bfcni{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Container {
    /// A namespace bound at /run/netns/<name>, as podman's CNI backend
    /// makes one, with `resolv.conf` for `ip netns exec` once given.
    pub(crate) fn bound() -> Self {
        let name = unique();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "ip netns add {name}: {out:?}");
        Self {
            id: format!("{name}-ctr"),
            netns: format!("/run/netns/{name}"),
            name: Some(name),
            holder: None,
        }
    }

    /// A namespace only a process holds: `/proc/<pid>/ns/net`.
    pub(crate) fn held() -> Self {
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .spawn()
            .expect("unshare");
        let netns = format!("/proc/{}/ns/net", holder.id());
        // Until `unshare` has made it, the path names the test's own.
        let own = std::fs::read_link("/proc/self/ns/net").expect("own netns");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(&netns).ok().as_ref() == Some(&own) {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Self {
            id: unique(),
            netns,
            name: None,
            holder: Some(holder),
        }
    }

    /// Writes the resolv.conf `ip netns exec` shows inside, with the DNS
    /// servers of a CNI result, as a runtime does.
    pub(crate) fn write_resolv_conf(&self, result: &serde_json::Value) {
        let name = self.name.as_deref().expect("a bound namespace");
        let dir = format!("/etc/netns/{name}");
        std::fs::create_dir_all(&dir).expect("mkdir /etc/netns/<name>");
        let servers: String = result["dns"]["nameservers"]
            .as_array()
            .expect("dns in the result")
            .iter()
            .map(|server| format!("nameserver {}\n", server.as_str().expect("a string")))
            .collect();
        std::fs::write(format!("{dir}/resolv.conf"), servers).expect("resolv.conf");
    }

    /// Runs `argv` inside (its network namespace only, and the
    /// resolv.conf written for it).
    pub(crate) fn exec(&self, argv: &[&str]) -> Output {
        let mut command = match &self.name {
            Some(name) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", name]);
                command
            }
            None => {
                let mut command = Command::new("nsenter");
                command.arg(format!("--net={}", self.netns));
                command
            }
        };
        command.args(argv).output().expect("runs inside")
    }

    /// What curl inside gets from `url`: the status, or `errN` for its
    /// exit code N (7: refused, 6: unresolved).
    pub(crate) fn curl(&self, url: &str) -> String {
        let out = self.exec(&[&boxfence_lab::CURL_STATUS[..], &[url]].concat());
        boxfence_lab::curl_outcome(out.status.code(), &String::from_utf8_lossy(&out.stdout))
    }

    /// `ip -j addr show` inside.
    pub(crate) fn addresses(&self) -> serde_json::Value {
        let out = self.exec(&["ip", "-j", "addr", "show"]);
        serde_json::from_slice(&out.stdout).expect("ip -j")
    }

    /// Removes the namespace as its runtime would (`podman rm`): its
    /// binding, or its process.
    pub(crate) fn remove(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
        }
        if let Some(mut holder) = self.holder.take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.remove();
    }
}
