//! The flowtable fast path: established box flows are offloaded to a
//! software flowtable, and what the policy promises still holds for
//! them: a revoking update cuts them before it returns, a deleted table
//! takes them with it (fail closed), denials are counted and logged as
//! before, and the switch leaves no flowtable.
//!
//! Each test skips, saying so, on a kernel without `nf_flow_table` (this
//! host's); `scripts/test-kernels` runs them on kernels that have it.
//! The connections are driven by a process entered into the box's
//! network namespace directly rather than by the engine's exec, so that
//! nothing runs the rig's runtime (and with it the watchdog) meanwhile:
//! the test decides when a deleted table comes back.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use boxfence_dataplane::features::FastPath;
use boxfence_dataplane::nft::Command as NftCommand;
use boxfence_dataplane::nft_netlink::NftSocket;
use boxfence_dataplane::ruleset::FLOWTABLE;

use super::rig::*;

pub(crate) const TESTS: &[(&str, Test)] = &[
    (
        "fast_path_flow_is_cut_by_the_update_that_revokes_it",
        fast_path_flow_is_cut_by_the_update_that_revokes_it,
    ),
    (
        "fast_path_flows_go_with_a_deleted_table",
        fast_path_flows_go_with_a_deleted_table,
    ),
    (
        "fast_path_table_reads_back_as_the_model",
        fast_path_table_reads_back_as_the_model,
    ),
    (
        "fast_path_keeps_denials_counted_and_logged",
        fast_path_keeps_denials_counted_and_logged,
    ),
];

pub(crate) const OWN_TESTS: &[(&str, OwnRigTest)] = &[
    (
        "fast_path_avoided_leaves_no_flowtable",
        fast_path_avoided_leaves_no_flowtable,
    ),
    (
        "fast_path_follows_uplinks_that_come_and_go",
        fast_path_follows_uplinks_that_come_and_go,
    ),
];

/// Stray echoes allowed after a cut: data that arrived before it but
/// was read a little later (under emulation the box's loop is slow).
/// Without the cut holding at once they would go on for the flowtable's
/// garbage collection period (1 s) or for good.
const STRAY: f64 = 0.3;

/// True when the kernel has `nf_flow_table` (the engine's probe loads
/// the module where it is one); else says why the test is skipped.
fn has_flowtables(rig: &Rig, test: &str) -> bool {
    let module = std::path::Path::new("/sys/module/nf_flow_table").exists();
    if !module {
        eprintln!(
            "{test}: skipped, this kernel has no nf_flow_table (scripts/test-kernels runs it)"
        );
        return false;
    }
    assert_eq!(
        rig.engine.paths().forwarding,
        FastPath::Flowtable,
        "nf_flow_table is there, so the engine takes the fast path: {:?}",
        rig.engine.kernel_features()
    );
    true
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// What a held connection saw: when each echo came back, and how it ended.
struct Held {
    echoes: Vec<f64>,
    end: String,
}

impl Held {
    fn echoes_between(&self, from: f64, to: f64) -> Vec<f64> {
        self.echoes
            .iter()
            .copied()
            .filter(|t| *t > from && *t < to)
            .collect()
    }
}

/// Runs `during` while the box holds a connection to the lab's hold
/// server for `secs`, sending a line every 10 ms and noting when each
/// echo comes back; `during` runs once the flow is seen offloaded. An
/// echo may take 10 s before the box gives up. The box tries to connect
/// for up to 5 s: on kernels that make the link before its chain, a
/// connection sent within milliseconds of the create was seen refused
/// as unreachable (5.10, and 6.12 without the fast path), which the
/// exec of the other tests never is, being slower to start.
fn hold(rig: &Rig, spec: &MachineSpec, secs: f64, during: impl FnOnce()) -> Held {
    let script = format!(
        "import socket,time\n\
         for i in range(50):\n\
         \x20 try: s=socket.create_connection(('{SERVER_V4}',9000),timeout=10); break\n\
         \x20 except OSError: time.sleep(0.1)\n\
         end=time.time()+{secs}\n\
         try:\n\
         \x20 while time.time()<end:\n\
         \x20   s.sendall(b'x\\n')\n\
         \x20   if not s.recv(100): print('closed'); break\n\
         \x20   print(repr(time.time()), flush=True); time.sleep(0.01)\n\
         \x20 else: print('ran out')\n\
         except Exception as e: print('cut', type(e).__name__)\n"
    );
    let netns = format!("--net={}", rig.box_netns(spec).display());
    let child = Command::new("nsenter")
        .args([netns.as_str(), "python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsenter runs");
    wait_offloaded(rig);
    during();
    let out = child.wait_with_output().expect("the box's process ends");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    let end = lines.pop().unwrap_or_default().to_owned();
    Held {
        echoes: lines.iter().filter_map(|l| l.parse().ok()).collect(),
        end: format!("{end} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// Waits up to 10 s for conntrack to show the hold connection offloaded.
fn wait_offloaded(rig: &Rig) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = rig.host(&["conntrack", "-L", "-p", "tcp", "--dport", "9000"]);
        let listed = String::from_utf8_lossy(&out.stdout);
        if listed.contains("[OFFLOAD]") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the established flow is offloaded: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The flow is offloaded (conntrack says so) and echoes come back; the
/// update that denies its destination cuts it before it returns: no
/// echo comes back after that (but strays), where a fast path left to
/// the flowtable's garbage collection would carry on for a second.
fn fast_path_flow_is_cut_by_the_update_that_revokes_it(rig: &Rig) {
    if !has_flowtables(rig, "fast_path_flow_is_cut_by_the_update_that_revokes_it") {
        return;
    }
    let b = rig.create("ftcut", json!({"mode": "allow-all"}), &[]);
    let mut answered = 0.0;
    let held = hold(rig, &b, 4.0, || {
        std::thread::sleep(Duration::from_millis(500));
        let deny = json!({"mode": "custom", "deniedCidrs": ["198.51.100.0/24"]});
        rig.update(&b, deny, &[]);
        answered = now();
    });
    assert!(
        !held.echoes_between(0.0, answered).is_empty(),
        "echoes before the update: {}",
        held.end
    );
    let last = held.echoes.last().copied().unwrap_or_default();
    eprintln!(
        "{} echoes; the last {:.3} s after the update answered",
        held.echoes.len(),
        last - answered
    );
    let late = held.echoes_between(answered + STRAY, f64::MAX);
    assert!(
        late.is_empty(),
        "echoes after the cut: {late:?} ({})",
        held.end
    );
    assert!(held.end.starts_with("cut"), "{}", held.end);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), REFUSED);
}

/// Someone deletes the table: the flowtable goes with it and its flows
/// fall back to the hooks, where unmarked box traffic is unreachable, so
/// no echo comes back until the engine restores the table (by its check,
/// which the test runs after 1.5 s), and the restored table forwards the
/// box's new connections again. (The held connection itself is reset
/// after the restore, with or without the fast path: what the box sent
/// meanwhile was answered unreachable.)
fn fast_path_flows_go_with_a_deleted_table(rig: &Rig) {
    if !has_flowtables(rig, "fast_path_flows_go_with_a_deleted_table") {
        return;
    }
    let b = rig.create("ftdel", json!({"mode": "allow-all"}), &[]);
    let (mut deleted, mut restored) = (0.0, 0.0);
    let held = hold(rig, &b, 5.0, || {
        std::thread::sleep(Duration::from_millis(300));
        let out = rig.host(&["nft", "delete", "table", "inet", "boxfence"]);
        deleted = now();
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_millis(1500));
        restored = now();
        assert!(rig.engine.check().expect("check runs"), "restored");
    });
    let before = held.echoes_between(0.0, deleted);
    assert!(
        !before.is_empty(),
        "echoes before the deletion: {}",
        held.end
    );
    eprintln!(
        "{} echoes before the deletion, the last {:.3} s before it",
        before.len(),
        deleted - before.last().copied().unwrap_or_default()
    );
    let through = held.echoes_between(deleted + STRAY, restored);
    assert!(
        through.is_empty(),
        "echoes without a table: {through:?} ({})",
        held.end
    );
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
}

/// The kernel's table, its flowtable included, reads back as the model
/// lists it after boxes joined and one left the flowtable (else the
/// watchdog would restore it at every look, tearing the fast path down);
/// and a device taken out behind the engine's back is a difference.
fn fast_path_table_reads_back_as_the_model(rig: &Rig) {
    if !has_flowtables(rig, "fast_path_table_reads_back_as_the_model") {
        return;
    }
    let a = rig.create("ftrda", json!({"mode": "allow-all"}), &[]);
    let b = rig.create("ftrdb", json!({"mode": "deny-all"}), &[]);
    rig.runtime
        .block_on(SharedLinuxEngine(Arc::clone(&rig.engine)).delete_machine(&a.id))
        .expect("delete");
    let listed = rig.host(&["nft", "list", "flowtables", "inet"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let device = format!("bf-{}", b.id);
    assert!(
        listed.contains(&device) && !listed.contains(&format!("bf-{}", a.id)),
        "{listed}"
    );
    assert!(!rig.engine.repair().expect("compares"), "intact: {listed}");
    // Over netlink: nft 1.0.6's `delete flowtable ... { devices = ... }`
    // is refused (EOPNOTSUPP) by 5.10 and 6.12 alike.
    let removal = [NftCommand::DeleteFlowtableDevices {
        name: FLOWTABLE.into(),
        devices: vec![device.clone()],
    }];
    HostNetns::at(rig.lab.host_netns_path())
        .in_netns(|| NftSocket::open().and_then(|mut s| s.apply("boxfence", &removal)))
        .expect("in the lab host")
        .expect("the device removed behind the engine's back");
    assert!(rig.engine.repair().expect("compares"), "repaired");
    let listed = rig.host(&["nft", "list", "flowtables", "inet"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&device));
}

/// Beside an offloaded flow, a denied connection of the same box is
/// refused, logged with its layer and counted, as without the fast path
/// (denied packets never reach the forward hook, so never the flowtable).
fn fast_path_keeps_denials_counted_and_logged(rig: &Rig) {
    if !has_flowtables(rig, "fast_path_keeps_denials_counted_and_logged") {
        return;
    }
    let b = rig.create(
        "ftlog",
        json!({"mode": "custom", "deniedCidrs": ["203.0.113.0/24"]}),
        &[],
    );
    let denied = format!("boxfence_box_denied_packets_total{{machine=\"{}\"}}", b.id);
    let mut refused = String::new();
    let held = hold(rig, &b, 2.0, || {
        refused = rig.curl(&b, "http://203.0.113.10/");
    });
    assert_eq!(refused, REFUSED);
    assert!(held.end.starts_with("ran out"), "{}", held.end);
    let events = events_until(rig, &b, |e| e.layer == Some(Layer::BoxPolicy));
    assert!(
        events.iter().any(|e| e.layer == Some(Layer::BoxPolicy)),
        "{events:#?}"
    );
    let text = rig.engine.metrics_text();
    assert!(metric(&text, &denied).is_some_and(|v| v >= 1.0), "{text}");
}

/// With the feature avoided (`[network] flowtable = false`) the table
/// has no flowtable and no forward chain, the path says so, and flows
/// are not offloaded.
fn fast_path_avoided_leaves_no_flowtable() {
    let rig = Rig::avoiding(vec![Feature::Flowtable]);
    let module = std::path::Path::new("/sys/module/nf_flow_table").exists();
    if !module {
        eprintln!(
            "fast_path_avoided_leaves_no_flowtable: skipped, this kernel has no nf_flow_table"
        );
        return;
    }
    assert_eq!(rig.engine.paths().forwarding, FastPath::Hooks);
    let b = rig.create("ftoff", json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&b, &format!("http://{SERVER_V4}/")), "200");
    let out = rig.host(&["nft", "list", "table", "inet", "boxfence"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !table.contains("flowtable") && !table.contains("flow add"),
        "{table}"
    );
    let out = rig.host(&["conntrack", "-L"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(!listed.contains("[OFFLOAD]"), "{listed}");
}

/// An uplink configured but absent at the start joins the flowtable at
/// the watchdog's next check once it appears (before, it stayed out until
/// a restart), and leaves the model when it goes (the kernel drops it by
/// itself), so the comparison finds the table intact both times instead
/// of restoring a table that names a device the kernel refuses.
fn fast_path_follows_uplinks_that_come_and_go() {
    let test = "fast_path_follows_uplinks_that_come_and_go";
    let rig = Rig::with_uplink_to_come("late0");
    if !has_flowtables(&rig, test) {
        return;
    }
    let devices = || {
        let out = rig.host(&["nft", "list", "flowtables", "inet"]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!devices().contains("late0"), "{}", devices());
    for step in [
        &["ip", "link", "add", "late0", "type", "dummy"][..],
        &["ip", "link", "set", "late0", "up"],
    ] {
        let out = rig.host(step);
        assert!(out.status.success(), "{step:?}: {out:?}");
    }
    rig.engine.check().expect("check runs");
    assert!(devices().contains("late0"), "joined: {}", devices());
    assert!(!rig.engine.repair().expect("compares"), "intact");

    let out = rig.host(&["ip", "link", "del", "late0"]);
    assert!(out.status.success(), "{out:?}");
    rig.engine.check().expect("check runs");
    assert!(!devices().contains("late0"), "gone: {}", devices());
    assert!(
        !rig.engine.repair().expect("compares"),
        "a gone uplink is no alteration"
    );
}
