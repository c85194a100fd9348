//! What the sandbox crate's root tests share: a box in a network
//! namespace of its own (no link: no packet goes anywhere), one test per
//! runtime, and OCI images built here from the host's busybox.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use boxfence_sandbox::{
    BoxSpec, DEFAULT_INIT, ExecResult, GeneratedEtc, Limits, RuntimeKind, Sandboxes, UidRange,
};

/// The box's network namespace (owned by its user namespace), bound
/// where the container's config names it; unbound on drop.
pub struct Netns(PathBuf);

impl Netns {
    fn bind(made: &std::fs::File) -> Self {
        use std::os::fd::AsRawFd as _;
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "bfsb-netns-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::File::create(&path).expect("mount point");
        let fd = format!("/proc/self/fd/{}", made.as_raw_fd());
        nix::mount::mount(
            Some(fd.as_str()),
            &path,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind the box's network namespace");
        Self(path)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A box: its container, its namespace, its state directory.
pub struct TestBox {
    pub sandboxes: Sandboxes,
    pub id: String,
    _netns: Netns,
    _dir: tempfile::TempDir,
}

impl TestBox {
    /// A box of the default root, or `None` when not root (outside CI).
    pub fn new(kind: RuntimeKind, zone: u16, limits: Limits) -> Option<Self> {
        Self::with_image(kind, zone, limits, |_| None)
    }

    /// A box whose root is the image `image` returns (after putting it
    /// in the box's store), or the default root.
    pub fn with_image(
        kind: RuntimeKind,
        zone: u16,
        limits: Limits,
        image: impl FnOnce(&Sandboxes) -> Option<String>,
    ) -> Option<Self> {
        if !nix::unistd::Uid::effective().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "isolation tests need root"
            );
            eprintln!("skipped: not root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let images = dir.path().join("images");
        let sandboxes = Sandboxes::new(kind, dir.path(), Path::new(DEFAULT_INIT), &images)
            .expect("the runtime and catatonit are installed (scripts/install-deps)");
        let id = format!("t-{}-{}-{zone}", kind.name(), std::process::id());
        let uids = UidRange::for_zone(1_000_000, zone).expect("range");
        let made = sandboxes
            .namespaces(&id, uids)
            .expect("the box's namespaces");
        let netns = Netns::bind(&made);
        let image = image(&sandboxes);
        let spec = BoxSpec {
            id: id.clone(),
            netns: netns.0.clone(),
            uids,
            limits,
            etc: GeneratedEtc {
                resolv_conf: b"nameserver 192.0.2.53\n".to_vec(),
                hostname: "testbox".into(),
            },
            image,
        };
        sandboxes.create(&spec).expect("the box's container starts");
        Some(Self {
            sandboxes,
            id,
            _netns: netns,
            _dir: dir,
        })
    }

    pub fn sh(&self, script: &str) -> ExecResult {
        let argv = ["sh", "-c", script].map(str::to_owned);
        self.sandboxes
            .exec(&self.id, &argv, b"", Duration::from_secs(20))
            .expect("exec")
    }
}

impl Drop for TestBox {
    fn drop(&mut self) {
        let _ = self.sandboxes.delete(&self.id);
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Each test, once per runtime Debian packages (crun and runc), named
/// `<runtime>::<test>` so every run is counted and can be picked alone.
#[macro_export]
macro_rules! per_runtime {
    ($($runtime:ident => $kind:expr),+; $tests:tt) => {
        $(per_runtime!(@one $runtime, $kind; $tests);)+
    };
    (@one $runtime:ident, $kind:expr; [$($test:ident),+]) => {
        mod $runtime {
            $(#[test]
            fn $test() {
                super::$test($kind);
            })+
        }
    };
}
