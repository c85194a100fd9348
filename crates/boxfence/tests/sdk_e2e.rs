//! The SDKs' own suites (sdk/typescript: node's test runner; sdk/python:
//! pytest) against a real `boxfence serve` with its data plane on, in a
//! sealed lab: each suite runs in the lab host's network namespace with
//! `BOXFENCE_URL` and `BOXFENCE_TOKEN` naming the daemon there, so every
//! box it makes reaches only the lab's internet. `scripts/test` installs
//! the suites' dependencies (`npm ci` in sdk/typescript) before the
//! network goes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use boxfence_lab::require_root;
use support::{Daemon, TOKEN};

/// The repository's `sdk` directory.
fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

/// Runs `argv` in `dir` inside the lab host of a fresh daemon, with the
/// daemon's URL and token, and fails with its output unless it succeeds.
fn run_suite(dir: &Path, argv: &[&str]) {
    let daemon = Daemon::start();
    let mut command: Command = daemon.lab.host_command(argv);
    let status = command
        .current_dir(dir)
        .env("BOXFENCE_URL", "http://127.0.0.1:4280")
        .env("BOXFENCE_TOKEN", TOKEN)
        .status()
        .unwrap_or_else(|error| panic!("{argv:?} starts: {error}"));
    assert!(
        status.success(),
        "{argv:?} in {} failed: {status}",
        dir.display()
    );
}

#[test]
fn typescript_sdk_suite() {
    if !require_root("typescript_sdk_suite") {
        return;
    }
    let dir = sdk_dir().join("typescript");
    assert!(
        dir.join("node_modules/.bin/tsc").exists(),
        "sdk/typescript has no node_modules: run `npm ci` there (scripts/test does)"
    );
    // Compiling needs no network: the suite runs from its output.
    let built = Command::new("npx")
        .args(["--no-install", "tsc", "-p", "tsconfig.test.json"])
        .current_dir(&dir)
        .status()
        .expect("tsc starts");
    assert!(built.success(), "sdk/typescript does not compile");
    run_suite(
        &dir,
        &[
            "node",
            "--test",
            ".test-build/test/seeds.test.js",
            ".test-build/test/api.test.js",
        ],
    );
}

#[test]
fn python_sdk_suite() {
    if !require_root("python_sdk_suite") {
        return;
    }
    // Debian's interpreter, which has python3-httpx and python3-pytest.
    run_suite(
        &sdk_dir().join("python"),
        &[
            "/usr/bin/python3",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
        ],
    );
}
