//! What a box command sees of the host's filesystem: its programs, and
//! none of its state; a box from an image sees the image, and its
//! network policy holds as for any box.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;

use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[
    (
        "no_host_unix_socket_is_reachable_from_a_box",
        no_host_unix_socket_is_reachable_from_a_box,
    ),
    (
        "a_box_from_an_image_is_enforced_like_any_other",
        a_box_from_an_image_is_enforced_like_any_other,
    ),
];

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

fn a_box_from_an_image_is_enforced_like_any_other(rig: &Rig) {
    use boxfence_sandbox::image::testing;
    let store = boxfence_sandbox::ImageStore::open(&rig.engine_config().state_dir.join("images"));
    let source = rig.engine_config().state_dir.join("e2e-image");
    testing::oci_layout(&source, "busybox:e2e");
    let imported = store.import(&source, |n| n.map(str::to_owned));
    let _ = std::fs::remove_dir_all(&source);
    imported.expect("imported");
    let policy = json!({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]});
    let b = rig.create_from("image1", policy, &[], Some("busybox:e2e"));
    let root = rig.exec(&b, &["ls", "/"]);
    assert_eq!(
        root.stdout, "bin\ndev\netc\nproc\nrun\ntmp\nvar\n",
        "{root:?}"
    );
    // busybox's nc: its static wget needs the name service even for an
    // address (it crashes without /etc/nsswitch.conf's libraries).
    let get = |ip: std::net::Ipv4Addr| {
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 80 | head -1");
        rig.exec(&b, &["sh", "-c", &script])
    };
    let allowed = get(CDN_OUTSIDE_DENIED_V4);
    assert!(allowed.stdout.starts_with("HTTP/1."), "{allowed:?}");
    let denied = get(SERVER_V4);
    assert_eq!(denied.stdout, "", "{denied:?}");
    assert!(
        denied.stderr.contains("refused"),
        "rejected at once: {denied:?}"
    );
    let in_use = store.remove("busybox:e2e").expect_err("in use");
    assert!(in_use.to_string().contains("in use by 1 box"), "{in_use}");
    rig.runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).delete_machine(&b.id))
        .expect("deleted");
    store.remove("busybox:e2e").expect("free after delete");
}
