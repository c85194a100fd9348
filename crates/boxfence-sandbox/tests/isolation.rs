//! A box's container seen from inside, once per runtime Debian packages
//! (crun and runc): nothing of the host in sight, no new user namespace,
//! its limits hold, and it is a machine (a background process outlives
//! its exec and dies with delete). As root; each box joins an empty
//! network namespace the test made, so no packet goes anywhere.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use boxfence_sandbox::{Limits, RuntimeKind, UidRange};

mod support;
use support::{TestBox, text};

/// The size of the test boxes.
const LIMITS: Limits = Limits {
    cpus: 1,
    memory_mb: 64,
    pids_max: 64,
    tmp_mb: 8,
};

per_runtime!(
    crun => boxfence_sandbox::RuntimeKind::Crun,
    runc => boxfence_sandbox::RuntimeKind::Runc;
    [host_files_and_processes_are_out_of_sight,
        no_new_user_namespace_mount_or_keyring,
        limits_hold_and_the_host_is_untouched,
        a_background_process_outlives_its_exec_and_dies_with_delete,
        a_timeout_kills_what_the_exec_started,
        ping_works_for_host_gids_past_2_31]
);

fn host_files_and_processes_are_out_of_sight(kind: RuntimeKind) {
    let canary_dir = tempfile::Builder::new()
        .prefix("boxfence-canary")
        .tempdir_in("/srv")
        .expect("canary dir");
    let canary = canary_dir.path().join("canary.txt");
    std::fs::write(&canary, "secret canary").expect("canary");
    // World-readable: only the box's root filesystem keeps it out.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(canary_dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("mode");
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o644)).expect("mode");
    let Some(b) = TestBox::new(kind, 1, LIMITS) else {
        return;
    };
    let mut host_sleep = Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("host process");
    let dir = canary_dir.path().display();
    let seen = b.sh(&format!(
        "cat {}; ls {dir}; ls -A /; ls /etc",
        canary.display()
    ));
    assert!(!text(&seen.stdout).contains("secret"), "{seen:?}");
    assert!(!text(&seen.stderr).contains("secret"), "{seen:?}");
    assert!(text(&seen.stderr).contains("No such file"), "{seen:?}");
    let root = text(&seen.stdout);
    for hidden in ["home", "root", "srv", "var/lib", "opt", "mnt"] {
        assert!(
            !root.lines().any(|l| l == hidden),
            "/{hidden} shown: {root}"
        );
    }
    assert!(!root.contains("shadow"), "{root}");
    let ps = b.sh("ls /proc | grep -E '^[0-9]+$' | wc -l; cat /proc/1/cmdline | tr '\\0' ' '");
    let lines: Vec<String> = text(&ps.stdout).lines().map(str::to_owned).collect();
    // init, sh, ls, grep, wc and a few more at most; the host has hundreds.
    assert!(
        lines[0].trim().parse::<u32>().expect("count") < 10,
        "{ps:?}"
    );
    assert!(
        lines[1].contains("boxfence-init"),
        "pid 1 is the box's init: {ps:?}"
    );
    assert!(
        !text(&b.sh("ps -e -o comm 2>/dev/null || ls /proc").stdout).contains("sleep"),
        "the host's sleep is not visible"
    );
    // Its root is the box's own unprivileged host uid, as the host
    // sees its processes.
    let first = UidRange::for_zone(1_000_000, 1).expect("range").first;
    for pid in host_pids_in_cgroup(&b.id) {
        let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap_or_default();
        let fields: Vec<&str> = map.split_whitespace().collect();
        assert_eq!(fields, ["0", &first.to_string(), "65536"], "{pid}");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(status.contains(&format!("Uid:\t{first}\t")), "{status}");
    }
    let id = b.sh("id -u; touch /usr/x 2>&1; touch /etc/x 2>&1");
    assert!(text(&id.stdout).starts_with("0\n"), "{id:?}");
    assert!(text(&id.stdout).contains("Read-only"), "{id:?}");
    let _ = host_sleep.kill();
    let _ = host_sleep.wait();
}

fn no_new_user_namespace_mount_or_keyring(kind: RuntimeKind) {
    let Some(b) = TestBox::new(kind, 2, LIMITS) else {
        return;
    };
    for probe in ["unshare -U true", "unshare -Ur true", "unshare -m true"] {
        let out = b.sh(probe);
        assert_ne!(out.exit_code, 0, "{probe} worked: {out:?}");
        assert!(
            text(&out.stderr).contains("Operation not permitted"),
            "{probe}: {out:?}"
        );
    }
    let mount = b.sh("mount -t tmpfs none /tmp 2>&1; echo $?");
    assert!(!text(&mount.stdout).ends_with("\n0\n"), "{mount:?}");
    let python = "import ctypes; l=ctypes.CDLL(None); l.syscall.restype=ctypes.c_long; \
                  print(l.syscall(250, 0, 0, 0, 0, 0), ctypes.get_errno())";
    let keyctl = b.sh(&format!("python3 -c '{python}'"));
    assert!(
        text(&keyctl.stdout).starts_with("-1"),
        "keyctl refused: {keyctl:?}"
    );
    let caps = b.sh("grep CapEff /proc/self/status");
    assert!(text(&caps.stdout).contains("00000000000001fb"), "{caps:?}");
}

fn limits_hold_and_the_host_is_untouched(kind: RuntimeKind) {
    let Some(b) = TestBox::new(kind, 3, LIMITS) else {
        return;
    };
    // Writing past /tmp's bound fails.
    let fill = b.sh("dd if=/dev/zero of=/tmp/fill bs=1M count=32 2>&1; echo rc=$?");
    assert!(text(&fill.stdout).contains("No space left"), "{fill:?}");
    // Forking past the pids limit fails, the box stays usable after.
    let forks = b.sh("for i in $(seq 200); do sleep 5 & done 2>&1 | head -3; echo done");
    assert!(
        text(&forks.stdout).contains("Resource temporarily unavailable")
            || text(&forks.stdout).contains("Cannot fork")
            || forks.exit_code != 0,
        "{forks:?}"
    );
    let other = TestBox::new(kind, 4, LIMITS).expect("another box");
    assert_eq!(text(&other.sh("echo alive").stdout), "alive\n");
    // Allocating past memory_mb gets the allocating process killed.
    let hog = b.sh("python3 -c 'x = bytearray(200 << 20); print(len(x))'");
    assert_eq!(hog.exit_code, 137, "killed by the OOM killer: {hog:?}");
    assert!(b.sandboxes.is_running(&b.id), "the box itself lives on");
}

fn a_background_process_outlives_its_exec_and_dies_with_delete(kind: RuntimeKind) {
    let Some(b) = TestBox::new(kind, 5, LIMITS) else {
        return;
    };
    let started = Instant::now();
    let first = b.sh("sleep 300 >/dev/null 2>&1 & echo $!");
    // Usually 20 ms; seconds would mean the exec waited for sleep.
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = text(&first.stdout).trim().to_owned();
    let second = b.sh(&format!("kill -0 {pid} && echo alive"));
    assert_eq!(text(&second.stdout), "alive\n", "{second:?}");
    let host_pids = host_pids_in_cgroup(&b.id);
    assert!(!host_pids.is_empty(), "the sleep is in the box's cgroup");
    b.sandboxes.delete(&b.id).expect("deleted");
    // Killed at once; reaped within moments (usually under 50 ms).
    let deadline = Instant::now() + Duration::from_secs(2);
    for pid in host_pids {
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} outlived delete"
        );
    }
}

fn a_timeout_kills_what_the_exec_started(kind: RuntimeKind) {
    let Some(b) = TestBox::new(kind, 6, LIMITS) else {
        return;
    };
    let argv = ["sh", "-c", "sleep 100"].map(str::to_owned);
    let out = b
        .sandboxes
        .exec(&b.id, &argv, b"", Duration::from_millis(500))
        .expect("exec");
    assert_eq!(out.exit_code, boxfence_sandbox::TIMED_OUT, "{out:?}");
    let left = b.sh("ps -e -o comm 2>/dev/null | grep -c sleep || true");
    assert_eq!(text(&left.stdout).trim(), "0", "{left:?}");
}

/// Host pids of the box's processes, from its pids cgroup (v1 or v2).
fn host_pids_in_cgroup(id: &str) -> Vec<String> {
    for base in ["/sys/fs/cgroup/pids/boxfence", "/sys/fs/cgroup/boxfence"] {
        if let Ok(procs) = std::fs::read_to_string(format!("{base}/{id}/cgroup.procs")) {
            return procs.lines().map(str::to_owned).collect();
        }
    }
    Vec::new()
}

fn ping_works_for_host_gids_past_2_31(kind: RuntimeKind) {
    // Zone 32767 from the tests' base: the box's gids start past 2^31,
    // which the kernel refuses in a ping range written from the host.
    let zone = 32_767;
    assert!(UidRange::for_zone(1_000_000, zone).expect("range").first > 1 << 31);
    let Some(b) = TestBox::new(kind, zone, LIMITS) else {
        return;
    };
    let range = b.sh("cat /proc/sys/net/ipv4/ping_group_range");
    assert_eq!(
        text(&range.stdout).split_whitespace().collect::<Vec<_>>(),
        ["0", "65535"]
    );
    let python = "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM, \
                  socket.IPPROTO_ICMP); print('icmp socket')";
    let socket = b.sh(&format!("python3 -c \"{python}\""));
    assert_eq!(text(&socket.stdout), "icmp socket\n", "{socket:?}");
}
