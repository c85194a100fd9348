//! A real runtime: podman (Debian's, with its CNI backend) runs
//! containers on a boxfence network, inside the sealed lab's host
//! namespace, from an image imported from a tar of Debian's static
//! busybox (nothing is pulled). Its storage and configuration live in a
//! temporary directory.

use std::path::{Path, PathBuf};
use std::process::Output;

use boxfence_lab::require_root;
use serde_json::json;

use crate::support::Daemon;
use crate::{attached_machines, daemon, socket};

/// The image the test builds.
const IMAGE: &str = "localhost/boxfence-test-busybox";

/// podman configured for one test.
struct Podman<'a> {
    daemon: &'a Daemon,
    dir: tempfile::TempDir,
}

impl<'a> Podman<'a> {
    /// Writes the configuration (CNI backend, the plugin's directory, the
    /// network `boxnet` for app `app`) and imports the image.
    fn new(daemon: &'a Daemon, app: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = PathBuf::from(env!("CARGO_BIN_EXE_boxfence"))
            .parent()
            .expect("target dir")
            .to_path_buf();
        let networks = dir.path().join("cni");
        std::fs::create_dir_all(&networks).expect("mkdir");
        let conflist = json!({"cniVersion": "1.0.0", "name": "boxnet",
            "plugins": [{"type": "boxfence-cni", "app": app, "socket": socket(daemon)}]});
        std::fs::write(networks.join("boxnet.conflist"), conflist.to_string()).expect("conflist");
        let conf = format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\", \"/usr/lib/cni\"]\n\
             network_config_dir = \"{}\"\n[engine]\ncgroup_manager = \"cgroupfs\"\n\
             events_logger = \"file\"\nevents_logfile_path = \"{}\"\n",
            plugins.display(),
            networks.display(),
            dir.path().join("events.log").display(),
        );
        std::fs::write(dir.path().join("containers.conf"), conf).expect("containers.conf");
        let podman = Self { daemon, dir };
        podman.import_image();
        podman
    }

    /// `podman args`, in the lab host, with this test's storage.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let root = self.dir.path().join("storage");
        let runroot = self.dir.path().join("run");
        let mut argv = vec![
            "podman".to_owned(),
            "--root".to_owned(),
            root.display().to_string(),
            "--runroot".to_owned(),
            runroot.display().to_string(),
            "--storage-driver".to_owned(),
            "vfs".to_owned(),
            // runc: crun refuses the hybrid cgroup layout of hosts like
            // this one (boxfence's own sandbox works around it).
            "--runtime".to_owned(),
            "runc".to_owned(),
        ];
        argv.extend(args.iter().map(|arg| (*arg).to_owned()));
        self.daemon
            .lab
            .host_command(argv)
            .env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .envs(env.iter().copied())
            .output()
            .expect("podman runs")
    }

    /// `podman args`, which must succeed; its stdout.
    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Imports a root of Debian's static busybox as [`IMAGE`].
    fn import_image(&self) {
        let rootfs = self.dir.path().join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for dir in ["etc", "tmp", "proc", "sys", "dev", "run"] {
            std::fs::create_dir_all(rootfs.join(dir)).expect("mkdir");
        }
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static installed");
        for applet in [
            "sh", "sleep", "nc", "ip", "nslookup", "awk", "grep", "timeout",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        let tar = self.dir.path().join("image.tar");
        let out = std::process::Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .expect("tar");
        assert!(out.status.success(), "{out:?}");
        self.ok(&["import", &tar.display().to_string(), IMAGE], &[]);
    }

    /// Starts a container on `boxnet` with `CNI_ARGS` `args`.
    fn start(&self, name: &str, args: &str) {
        self.ok(
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "boxnet",
                "--dns",
                "10.200.0.1",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                "--pull",
                "never",
                IMAGE,
                "sleep",
                "600",
            ],
            &[("CNI_ARGS", args)],
        );
    }

    /// Whether an HTTP GET from container `name` to `host` (a name,
    /// resolved by busybox's own resolver, or an address) on `port` gets
    /// a 200, asking for `host` (the SNI/Host check judges it). (busybox's `wget` crashes in Debian 12's static build; `nc`
    /// and `nslookup` work.)
    fn reaches(&self, name: &str, host: &str, port: u16) -> bool {
        self.run(
            &[
                "exec",
                name,
                "sh",
                "-c",
                FETCH,
                "fetch",
                host,
                &port.to_string(),
            ],
            &[],
        )
        .status
        .success()
    }
}

/// `fetch HOST PORT`, in the container.
const FETCH: &str = "h=\"$1\"\n\
    case \"$h\" in *[a-z]*) h=$(nslookup -type=a \"$h\" | awk '/^Name:/{n=1} n&&/^Address: /{a=$2} END{print a}');; esac\n\
    [ -n \"$h\" ] || exit 6\n\
    printf 'GET / HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n' \"$1\" | nc -w 5 \"$h\" \"$2\" | grep -q ' 200 '\n";

impl Drop for Podman<'_> {
    fn drop(&mut self) {
        // Containers' processes and namespaces go with them.
        let _ = self.run(&["rm", "-a", "-f", "-t", "0"], &[]);
        let storage = self.dir.path().join("storage");
        let _ = self.run(&["system", "reset", "-f"], &[]);
        let _ = unmount_below(&storage);
    }
}

/// Unmounts what podman left mounted below `dir` (so the tempdir goes).
fn unmount_below(dir: &Path) -> std::io::Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    for target in mounts.lines().filter_map(|line| line.split(' ').nth(1)) {
        if Path::new(target).starts_with(dir) {
            let _ = std::process::Command::new("umount")
                .args(["-l", target])
                .output();
        }
    }
    Ok(())
}

/// The lab host's links named like box links.
fn box_links(daemon: &Daemon) -> Vec<String> {
    let out = daemon.lab.host_exec(["ip", "-o", "link"]).expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .filter(|name| name.starts_with("bf"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn podman_containers_on_a_boxfence_network() {
    if !require_root("podman_containers_on_a_boxfence_network") {
        return;
    }
    let daemon = daemon();
    daemon.ok("POST", "/v1/apps", r#"{"app_name": "web"}"#);
    let podman = Podman::new(&daemon, "web");

    // The app's egress policy on ports, selected by the container's label.
    podman.start("web1", "label.role=web");
    let machines = attached_machines(&daemon, "web");
    assert_eq!(machines.len(), 1, "{machines:?}");
    assert_eq!(machines[0]["config"]["metadata"]["role"], "web");
    assert!(
        podman.reaches("web1", "198.51.100.10", 8080),
        "no policy: open"
    );
    daemon.ok(
        "POST",
        "/v1/apps/web/network_policies",
        r#"{"name": "specific-egress", "selector": {"metadata": {"role": "web"}},
            "rules": [{"action": "allow", "direction": "egress",
                       "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 443}]}]}"#,
    );
    assert!(podman.reaches("web1", "198.51.100.10", 80));
    assert!(
        podman.reaches("web1", "api.github.com", 80),
        "DNS at the built-in resolver"
    );
    assert!(
        !podman.reaches("web1", "198.51.100.10", 8080),
        "port 8080 denied"
    );

    // A custom box policy with domains and CIDRs, from CNI_ARGS.
    podman.start(
        "agent",
        r#"boxfence.policy={"mode": "custom", "allowedDomains": ["api.github.com"], "allowedCidrs": ["104.16.0.0/12"]}"#,
    );
    assert!(podman.reaches("agent", "api.github.com", 80));
    assert!(podman.reaches("agent", "104.17.0.5", 80));
    assert!(
        !podman.reaches("agent", "github.com", 80),
        "name not allowed"
    );
    assert!(
        !podman.reaches("agent", "203.0.113.10", 80),
        "address not allowed"
    );

    // A live change cuts a container's open connection: `hold` talks to
    // the lab's echo server on port 9000 (no policy selects it yet) for
    // up to 20 s; the change allows port 80 only.
    podman.start("hold", "IgnoreUnknown=1");
    std::thread::scope(|scope| {
        // `nc N`: nc's status; 143 when `timeout` ended it (uncut).
        let talk = "(while :; do echo one; sleep 0.2; done) \\
                    | (timeout 20 nc 198.51.100.10 9000 >/dev/null; echo \"nc $?\")";
        let held =
            scope.spawn(|| podman.run(&["exec", "hold", "timeout", "25", "sh", "-c", talk], &[]));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !daemon
            .lab
            .host_exec(["conntrack", "-L", "-p", "tcp", "--dport", "9000"])
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("ESTABLISHED"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no connection to the echo server"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        daemon.ok(
            "POST",
            "/v1/apps/web/network_policies",
            r#"{"name": "web-only", "selector": {"all": true}, "rules": [{"action": "allow",
                "direction": "egress", "ports": [{"protocol": "tcp", "port": 80}]}]}"#,
        );
        let out = held.join().expect("held connection");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let status = stdout.lines().find_map(|line| line.strip_prefix("nc "));
        assert!(
            status.is_some_and(|status| status != "143"),
            "the connection was cut, not timed out: {out:?}"
        );
    });

    // podman rm leaves nothing behind.
    podman.ok(&["rm", "-f", "-t", "0", "web1", "agent", "hold"], &[]);
    assert!(attached_machines(&daemon, "web").is_empty());
    assert!(box_links(&daemon).is_empty(), "{:?}", box_links(&daemon));
    assert!(
        daemon.kernel_boxes().is_empty(),
        "{:?}",
        daemon.kernel_boxes()
    );
    assert!(
        daemon.netns_boxes().is_empty(),
        "{:?}",
        daemon.netns_boxes()
    );

    // kill -9 of the daemon between ADD and DEL: fail closed, then the
    // restart reconciles.
    podman.start(
        "held",
        r#"boxfence.policy={"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]}"#,
    );
    daemon.kill();
    assert!(podman.reaches("held", "104.17.0.5", 80));
    assert!(!podman.reaches("held", "198.51.100.10", 80), "still denied");
    // The DEL fails (no daemon); podman removes the container anyway.
    let _ = podman.run(&["rm", "-f", "-t", "0", "held"], &[]);
    daemon.spawn();
    assert!(attached_machines(&daemon, "web").is_empty());
    assert!(box_links(&daemon).is_empty(), "{:?}", box_links(&daemon));
    assert!(daemon.kernel_boxes().is_empty());
    assert!(daemon.netns_boxes().is_empty());
}
