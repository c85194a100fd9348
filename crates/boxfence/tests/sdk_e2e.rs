//! The SDKs' own suites (sdk/typescript: node's test runner; sdk/python:
//! pytest) against a real `boxfence serve` with its data plane on, in a
//! sealed lab: each suite runs in the lab host's network namespace with
//! `BOXFENCE_URL` and `BOXFENCE_TOKEN` naming the daemon there, so every
//! box it makes reaches only the lab's internet. The daemon speaks plain
//! HTTP, so nginx (nginx-light) terminates TLS in front of it there, with a
//! certificate made for the run: `BOXFENCE_TLS_URL` and `BOXFENCE_TLS_CA`
//! let the suites call it over https. `scripts/test` installs the suites'
//! dependencies (`npm ci` in sdk/typescript) before the network goes.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use boxfence_lab::{Lab, require_root};
use support::{Daemon, TOKEN};

/// Where nginx serves the API over TLS, in the lab host.
const TLS_URL: &str = "https://127.0.0.1:4443";

/// nginx in the lab host terminating TLS for the daemon; stopped on drop.
struct TlsProxy<'a> {
    lab: &'a Lab,
    child: Child,
    config: PathBuf,
    /// The certificate (self-signed, for 127.0.0.1) clients must trust.
    ca: PathBuf,
}

impl<'a> TlsProxy<'a> {
    fn start(lab: &'a Lab) -> Self {
        let dir = lab.workdir().join("tls-proxy");
        std::fs::create_dir_all(&dir).expect("proxy directory");
        let (ca, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&ca)
            .output()
            .expect("openssl starts");
        assert!(made.status.success(), "certificate: {made:?}");
        let config = dir.join("nginx.conf");
        let d = dir.display();
        // Unbuffered, with no read timeout to speak of: flow streams pass
        // event by event and stay open while the suites read them.
        std::fs::write(
            &config,
            format!(
                "daemon off;\nuser root;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {d};\n  proxy_temp_path {d};\n\
                 server {{\n    listen 127.0.0.1:4443 ssl;\n\
                 ssl_certificate {ca};\n    ssl_certificate_key {key};\n\
                 location / {{ proxy_pass http://127.0.0.1:4280; proxy_http_version 1.1;\n\
                 proxy_buffering off; proxy_read_timeout 1h; }}\n  }}\n}}\n",
                ca = ca.display(),
                key = key.display(),
            ),
        )
        .expect("nginx config");
        let child = lab
            .host_command(["nginx", "-e", "stderr", "-c"])
            .arg(&config)
            .spawn()
            .expect("nginx starts (apt-get install nginx-light)");
        let proxy = Self {
            lab,
            child,
            config,
            ca,
        };
        let healthz = format!("{TLS_URL}/healthz");
        let ca = proxy.ca.display().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = lab
                .host_exec(["curl", "-sf", "--cacert", &ca, &healthz])
                .expect("curl runs");
            if out.status.success() {
                return proxy;
            }
            assert!(Instant::now() < deadline, "nginx serves TLS");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TlsProxy<'_> {
    fn drop(&mut self) {
        let _ = self
            .lab
            .host_command(["nginx", "-s", "stop", "-c"])
            .arg(&self.config)
            .status();
        let _ = self.child.wait();
    }
}

/// The repository's `sdk` directory.
fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

/// Runs `argv` in `dir` inside the lab host of a fresh daemon, with the
/// daemon's URL and token and its TLS proxy, and fails unless it succeeds.
fn run_suite(dir: &Path, argv: &[&str]) {
    let daemon = Daemon::start();
    let proxy = TlsProxy::start(&daemon.lab);
    let mut command: Command = daemon.lab.host_command(argv);
    let status = command
        .current_dir(dir)
        .env("BOXFENCE_URL", "http://127.0.0.1:4280")
        .env("BOXFENCE_TOKEN", TOKEN)
        .env("BOXFENCE_TLS_URL", TLS_URL)
        .env("BOXFENCE_TLS_CA", &proxy.ca)
        // Node reads it at start: the suite's https client trusts the proxy.
        .env("NODE_EXTRA_CA_CERTS", &proxy.ca)
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
            ".test-build/test/tls.test.js",
            ".test-build/test/types.test.js",
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

/// Whether sdk/typescript's dev dependencies (tsc, openapi-typescript)
/// are installed, as `scripts/test` does; without them `test` fails under
/// CI and is skipped elsewhere.
fn have_dev_dependencies(test: &str) -> bool {
    if sdk_dir()
        .join("typescript/node_modules/.bin/openapi-typescript")
        .exists()
    {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "sdk/typescript has no node_modules: run `npm ci` there (scripts/test does)"
    );
    eprintln!("skipping {test}: no node_modules in sdk/typescript");
    false
}

/// Runs one of sdk's scripts and fails unless it succeeds.
fn sdk_script(name: &str, args: &[&str]) {
    let status = Command::new(sdk_dir().join(name))
        .args(args)
        .status()
        .unwrap_or_else(|error| panic!("sdk/{name} starts: {error}"));
    assert!(status.success(), "sdk/{name} {args:?} failed: {status}");
}

#[test]
fn generated_types_are_current() {
    // No root, no network: the generators are local.
    if have_dev_dependencies("generated_types_are_current") {
        sdk_script("generate.sh", &["--check"]);
    }
}

#[test]
fn packages_install_and_import() {
    if have_dev_dependencies("packages_install_and_import") {
        sdk_script("check-packages.sh", &[]);
    }
}
