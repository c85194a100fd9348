//! Test support: scratch network namespaces that are removed on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::HostNetns;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether `test` can run its kernel part: root, or else (after saying
/// why) false; when not root under `CI=true` it panics, so CI cannot pass
/// by skipping.
pub(crate) fn running_as_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root, and CI must run it"
    );
    eprintln!("skipping {test}: needs root (network namespaces, nftables)");
    false
}

/// A network namespace of its own for one test, deleted on drop.
#[derive(Debug)]
pub(crate) struct ScratchNetns {
    name: String,
}

impl ScratchNetns {
    /// Creates one, or `None` when not root (see [`running_as_root`]).
    pub(crate) fn new(test: &str) -> Option<Self> {
        if !running_as_root(test) {
            return None;
        }
        let name = format!(
            "bft{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(status.is_ok_and(|s| s.success()), "ip netns add {name}");
        Some(Self { name })
    }

    /// Where the namespace is bound (`/run/netns/<name>`), for `setns`.
    pub(crate) fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `f` on a thread that entered this network namespace.
    pub(crate) fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(self.path()).expect("open the namespace");
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                    f()
                })
                .join()
                .expect("netns thread")
        })
    }

    /// An nf_tables socket of this namespace (usable from any thread).
    pub(crate) fn nft_socket(&self) -> crate::nft_netlink::NftSocket {
        self.run_inside(|| crate::nft_netlink::NftSocket::open().expect("open the socket"))
    }

    /// Commands in this namespace.
    pub(crate) fn host(&self) -> HostNetns {
        HostNetns::at(format!("/run/netns/{}", self.name))
    }

    /// Makes a veth pair for each of `names` (the peer is the name and
    /// `p`): the box devices a table's ingress chains hook. Kernels before
    /// 6.16 refuse a chain on a device that is not there yet (the engine
    /// makes the link first there, see `features`), so a test that loads
    /// box chains makes their devices first, as the engine does.
    pub(crate) fn add_links(&self, names: &[&str]) {
        let batch: String = names
            .iter()
            .map(|name| format!("link add {name} type veth peer name {name}p\n"))
            .collect();
        self.host()
            .run("ip", &["-b", "-"], Some(&batch))
            .expect("box devices");
    }
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
