//! The `boxfence` binary: `serve` on a loopback port with a temp SQLite
//! file, and the client subcommands against it. This build has no data
//! plane wired in, so machine commands must fail with the server's 501
//! message rather than pretend.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_boxfence");
const ADMIN: &str = "cli-test-admin";

/// A running `boxfence serve`, killed on drop.
struct Daemon {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = format!("sqlite://{}", dir.path().join("bf.db").display());
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--no-data-plane",
                "--listen",
                "127.0.0.1:0",
                "--database",
                &database,
            ])
            .args(extra)
            .env("BOXFENCE_ADMIN_TOKEN", ADMIN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut url = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if let Some(rest) = line.strip_prefix("boxfence listening on ") {
                url = Some(rest.to_owned());
                break;
            }
        }
        Self {
            url: url.expect("the daemon says where it listens"),
            child,
            _dir: dir,
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .env("BOXFENCE_URL", &self.url)
            .env("BOXFENCE_TOKEN", ADMIN)
            .env_remove("BOXFENCE_APP")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("client output")
    }
}

impl Daemon {
    /// Runs a client command whose stdout is a pipe that nobody reads any
    /// more, as in `boxfence ... | head -1` once `head` has its line.
    fn run_into_closed_pipe(&self, args: &[&str]) -> Output {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        Command::new(BIN)
            .args(args)
            .env("BOXFENCE_URL", &self.url)
            .env("BOXFENCE_TOKEN", ADMIN)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("client output")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn apps_and_policies_round_trip_through_the_cli() {
    let daemon = Daemon::start(&[]);
    let out = daemon.run(&["app", "create", "my-app"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "created app my-app\n");

    let policy = r#"{"name": "specific-egress", "selector": {"all": true},
        "rules": [{"action": "allow", "direction": "egress",
                   "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 443}]}]}"#;
    let out = daemon.run(
        &["policy", "apply", "-a", "my-app", "-f", "-"],
        Some(policy),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("applied policy specific-egress"));

    let out = daemon.run(&["policy", "ls", "-a", "my-app"], None);
    let listing = text(&out.stdout);
    assert!(listing.starts_with("ID"), "{listing}");
    assert!(listing.contains("specific-egress"), "{listing}");

    let out = daemon.run(&["--json", "policy", "ls", "-a", "my-app"], None);
    let policies: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = policies[0]["id"].as_str().expect("id").to_owned();
    let out = daemon.run(&["policy", "show", "-a", "my-app", &id], None);
    assert!(text(&out.stdout).contains("\"port\": 443"));
    let out = daemon.run(&["policy", "rm", "-a", "my-app", &id], None);
    assert!(out.status.success());

    let out = daemon.run(&["--json", "app", "show", "my-app"], None);
    let app: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(app["app_name"], "my-app");

    let out = daemon.run(&["app", "token", "my-app"], None);
    assert!(text(&out.stdout).starts_with("bf_"));
    let out = daemon.run(&["app", "rm", "my-app"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn errors_print_the_server_message_and_exit_non_zero() {
    let daemon = Daemon::start(&[]);
    daemon.run(&["app", "create", "web"], None);
    let bad =
        r#"{"name": "x", "selector": {}, "rules": [{"action": "deny", "direction": "egress"}]}"#;
    let out = daemon.run(&["policy", "apply", "-a", "web", "-f", "-"], Some(bad));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("rules[0].action"), "{stderr}");
    assert!(stderr.contains("selector"), "{stderr}");

    let out = daemon.run(&["app", "show", "nope"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: app nope not found\n");

    // No data plane in this build: the API says so (501), the CLI too.
    for args in [
        &["machine", "create", "-a", "web"][..],
        &["box", "create", "--policy", r#"{"mode": "deny-all"}"#][..],
    ] {
        let out = daemon.run(args, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).contains("no data plane"),
            "{}",
            text(&out.stderr)
        );
    }

    let out = Command::new(BIN)
        .args(["app", "ls"])
        .env("BOXFENCE_URL", &daemon.url)
        .env("BOXFENCE_TOKEN", "wrong")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("bearer token"));
}

#[test]
fn a_bad_config_file_is_refused_with_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("boxfence.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:0\"\n[network]\nipv4_pol = \"10.0.0.0/8\"\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ipv4_pol"),
        "{}",
        text(&out.stderr)
    );

    // Exempting the boxes' own pool is refused.
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"sqlite://{}\"\n[network]\nexempt_cidrs = [\"10.200.0.0/24\"]\n",
            dir.path().join("bf.db").display()
        ),
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exempt_cidrs"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_config_says_what_the_file_sets_and_refuses_a_token_others_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("boxfence.toml");
    let check = || {
        Command::new(BIN)
            .args(["serve", "--check-config", "--config"])
            .arg(&path)
            .output()
            .expect("run")
    };
    std::fs::write(
        &path,
        "admin_token = \"secret-token-0123456789\"\ndatabase = \"sqlite:///nonexistent/dir/bf.db\"\n\
         [network]\ntable = \"boxfence_b\"\nlog_group = 8\n",
    )
    .expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = check();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("mode 0644"),
        "{}",
        text(&out.stderr)
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = check();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for part in [
        "configuration is valid",
        "sqlite:///nonexistent/dir/bf.db",
        "table inet boxfence_b",
        "log group 8",
    ] {
        assert!(said.contains(part), "{part:?} in {said}");
    }
    // What start would refuse, the check refuses.
    std::fs::write(&path, "[network]\nexempt_cidrs = [\"10.200.0.0/24\"]\n").expect("write");
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exempt_cidrs"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unknown_kernel_feature_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("boxfence.toml");
    // Without a data plane and on a free port, should it start after all.
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase = \"sqlite://{}\"\n\
             [network]\ndata_plane = false\n[kernel]\navoid = [\"warp_drive\"]\n",
            dir.path().join("bf.db").display()
        ),
    )
    .expect("write");
    // `timeout` ends a daemon that starts all the same (status 124).
    let out = Command::new("timeout")
        .args(["30", BIN, "serve", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for part in [
        "kernel.avoid",
        "warp_drive",
        "inet_ingress",
        "destroy_element",
    ] {
        assert!(stderr.contains(part), "{part:?} in {stderr}");
    }
}

#[test]
fn completions_are_printed_for_bash() {
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("_boxfence()"));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let daemon = Daemon::start(&[]);
    assert!(
        daemon
            .run(&["app", "create", "piped"], None)
            .status
            .success()
    );
    let policy = r#"{"name": "p", "selector": {"all": true}, "rules": []}"#;
    let out = daemon.run(&["policy", "apply", "-a", "piped", "-f", "-"], Some(policy));
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        &["--json", "policy", "ls", "-a", "piped"][..],
        &["policy", "ls", "-a", "piped"],
        &["completions", "bash"],
    ] {
        let out = daemon.run_into_closed_pipe(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{args:?} says nothing on stderr");
    }
}

#[test]
fn an_unreachable_server_is_reported_with_the_cause() {
    // A port nobody listens on: bound, then closed again.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let out = Command::new(BIN)
        .args(["app", "ls"])
        .env("BOXFENCE_URL", format!("http://127.0.0.1:{port}"))
        .env("BOXFENCE_TOKEN", ADMIN)
        .output()
        .expect("client output");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

#[test]
fn images_are_imported_listed_and_removed_in_the_configured_store() {
    if !nix::unistd::Uid::effective().is_root() {
        // Whiteouts are device files: importing needs root.
        assert!(std::env::var_os("CI").is_none(), "image import needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("boxfence.toml");
    let state = dir.path().join("state");
    std::fs::write(
        &config,
        format!("[network]\nstate_dir = \"{}\"\n", state.display()),
    )
    .expect("config");
    let layout = dir.path().join("layout");
    boxfence_sandbox::image::testing::oci_layout(&layout, "busybox:cli");
    let image = |args: &[&str]| {
        Command::new(BIN)
            .arg("image")
            .args(args)
            .args(["-c", &config.display().to_string()])
            .output()
            .expect("runs")
    };
    let imported = image(&["import", &layout.display().to_string()]);
    assert!(imported.status.success(), "{imported:?}");
    let renamed = image(&["import", &layout.display().to_string(), "--name", "app"]);
    assert!(renamed.status.success(), "{renamed:?}");
    let listed = text(&image(&["ls"]).stdout);
    let names: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["app:latest", "busybox:cli"], "{listed}");
    assert!(
        state.join("images/layers").is_dir(),
        "the store is under state_dir"
    );
    let bad = image(&[
        "import",
        &layout.display().to_string(),
        "--name",
        "Bad Name",
    ]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("image name `Bad Name`"),
        "{bad:?}"
    );
    let missing = image(&["rm", "nope"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("no image `nope:latest`"),
        "{missing:?}"
    );
    assert!(image(&["rm", "app"]).status.success());
    assert!(image(&["rm", "busybox:cli"]).status.success());
    assert_eq!(
        text(&image(&["ls"]).stdout).lines().count(),
        1,
        "only the header"
    );
}
