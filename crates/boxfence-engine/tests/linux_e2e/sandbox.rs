//! What a box command sees of the host's filesystem: its programs, and
//! none of its state. Until boxes run in an OCI runtime (issue 13) this is
//! the exec helper's own root; afterwards, the same test guards it.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;

use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[(
    "no_host_unix_socket_is_reachable_from_a_box",
    no_host_unix_socket_is_reachable_from_a_box,
)];

/// Host directories where services keep sockets.
const SOCKET_DIRS: [&str; 10] = [
    "/var/lib", "/run", "/tmp", "/var/tmp", "/dev/shm", "/home", "/srv", "/opt", "/mnt", "/etc",
];

/// Sockets bound on the host for one test, each world-writable in a
/// world-readable directory of its own; removed on drop.
struct HostSockets {
    dirs: Vec<PathBuf>,
    _listeners: Vec<UnixListener>,
}

impl HostSockets {
    fn bind() -> Self {
        let name = format!("boxfence-e2e-{}", std::process::id());
        let (mut dirs, mut listeners) = (Vec::new(), Vec::new());
        for parent in SOCKET_DIRS {
            let dir = Path::new(parent).join(&name);
            std::fs::create_dir_all(&dir).expect("socket directory");
            dirs.push(dir.clone());
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("mode");
            let path = dir.join("service.sock");
            let _ = std::fs::remove_file(&path);
            listeners.push(UnixListener::bind(&path).expect("bind host socket"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).expect("mode");
        }
        Self {
            dirs,
            _listeners: listeners,
        }
    }

    fn paths(&self) -> Vec<String> {
        self.dirs
            .iter()
            .map(|dir| dir.join("service.sock").display().to_string())
            .collect()
    }
}

impl Drop for HostSockets {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn no_host_unix_socket_is_reachable_from_a_box(rig: &Rig) {
    let sockets = HostSockets::bind();
    // The host itself reaches every one (the test would prove nothing
    // otherwise).
    for path in sockets.paths() {
        std::os::unix::net::UnixStream::connect(&path).expect("the host reaches its socket");
    }
    let b = rig.create("sock1", json!({"mode": "allow-all"}), &[]);
    let script = format!(
        "import socket\n\
         for p in {:?}:\n\
         \x20 s=socket.socket(socket.AF_UNIX)\n\
         \x20 try:\n    s.connect(p); print('REACHED', p)\n\
         \x20 except OSError as e: print('refused', p, type(e).__name__)\n",
        sockets.paths()
    );
    let out = rig.exec(&b, &["python3", "-c", &script]);
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdout.lines().count(), SOCKET_DIRS.len(), "{out:?}");
    assert!(!out.stdout.contains("REACHED"), "{}", out.stdout);
    // The host's state is out of sight, its programs are not.
    let listing = |dir: &str| rig.exec(&b, &["ls", "-A", dir]).stdout;
    assert_eq!(listing("/var").trim(), "tmp", "only scratch space in /var");
    let root = listing("/");
    for hidden in ["home", "root", "srv", "opt", "mnt"] {
        assert!(
            !root.lines().any(|l| l == hidden),
            "/{hidden} is hidden: {root}"
        );
    }
    assert!(root.lines().any(|l| l == "usr"), "{root}");
    let write = rig.exec(
        &b,
        &["sh", "-c", "touch /usr/x || touch /etc/x || echo read-only"],
    );
    assert_eq!(write.stdout.trim(), "read-only", "{write:?}");
}
