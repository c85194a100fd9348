//! The lab: two namespaces, their servers, and their teardown.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::addresses::UPLINK;
use crate::names::{self, LabNames};
use crate::netns::{self, NetNs};
use crate::servers::{ServerFiles, Servers};
use crate::{LabError, exec, processes, seal, tls, topology};

/// A sealed test network (DESIGN.md section 4).
///
/// * The **lab host** namespace, where the daemon under test runs. Its only
///   link is the veth [`Lab::uplink`] to the internet namespace:
///   [`LAB_HOST_V4`](crate::LAB_HOST_V4)/24 and
///   [`LAB_HOST_V6`](crate::LAB_HOST_V6)/64, default routes via the
///   internet side, forwarding on.
/// * The **internet** namespace, with test servers on every address of
///   [`SERVER_ADDRS`](crate::SERVER_ADDRS): HTTP on 80 and 8080, HTTPS on
///   443, UDP echo on 5353, a line-echo "hold" server on TCP 9000.
///
/// Dropping the lab kills every process inside its namespaces (the
/// daemon's included), removes its namespaces and every `/run/netns` entry
/// starting with [`Lab::namespace_prefix`], and its work directory. Errors
/// there are printed to stderr; [`Lab::close`] returns them instead.
#[derive(Debug)]
pub struct Lab {
    names: LabNames,
    host: NetNs,
    internet: NetNs,
    workdir: PathBuf,
    tls_cert: PathBuf,
    servers: Option<Servers>,
    torn_down: bool,
}

impl Lab {
    /// Builds a lab and returns once every test server answers from the
    /// lab host. Also removes what labs of dead test processes left behind.
    ///
    /// # Errors
    ///
    /// When any step fails (not root, `ip`/`openssl`/`python3` missing,
    /// servers not up within 20 s); whatever was built is torn down.
    pub fn new() -> Result<Self, LabError> {
        let names = LabNames::fresh();
        for e in names::sweep_stale(&names) {
            eprintln!("boxfence-lab: {e}");
        }
        let workdir = std::env::temp_dir().join(&names.id);
        let mut lab = Self {
            host: NetNs::named(&names.host),
            internet: NetNs::named(&names.internet),
            tls_cert: PathBuf::new(),
            workdir,
            names,
            servers: None,
            torn_down: false,
        };
        // On any error below, dropping `lab` tears down what exists.
        std::fs::create_dir_all(&lab.workdir).map_err(|source| LabError::Io {
            context: "cannot create lab directory",
            path: lab.workdir.clone(),
            source,
        })?;
        lab.host.create()?;
        lab.internet.create()?;
        topology::build(&lab.host, &lab.internet)?;
        let pair = tls::generate(&lab.workdir)?;
        lab.servers = Some(Servers::start(
            &lab.internet,
            &lab.host,
            &ServerFiles {
                dir: &lab.workdir,
                cert: &pair.cert,
                key: &pair.key,
            },
        )?);
        lab.tls_cert = pair.cert;
        // DNS goes here: a later issue starts dnsmasq in the internet
        // namespace on DNS_V4/DNS_V6 port 53 (test names, query log in
        // `workdir`), as one more child stopped in `teardown`.
        Ok(lab)
    }

    /// The lab's unique id, `bfl<pid>-<n>`.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.names.id
    }

    /// The lab host's uplink interface name, for the daemon's
    /// `[network] uplink`.
    #[must_use]
    pub fn uplink(&self) -> &str {
        UPLINK
    }

    /// The lab host namespace's name under `/run/netns`.
    #[must_use]
    pub fn host_netns(&self) -> &str {
        self.host.name()
    }

    /// The lab host namespace's path, e.g. for `nsenter --net=`.
    #[must_use]
    pub fn host_netns_path(&self) -> &Path {
        self.host.path()
    }

    /// The internet namespace's name under `/run/netns`.
    #[must_use]
    pub fn internet_netns(&self) -> &str {
        self.internet.name()
    }

    /// The internet namespace's path.
    #[must_use]
    pub fn internet_netns_path(&self) -> &Path {
        self.internet.path()
    }

    /// The prefix the daemon under test must give the namespaces it pins in
    /// `/run/netns` for its boxes; teardown removes every such entry.
    #[must_use]
    pub fn namespace_prefix(&self) -> &str {
        &self.names.boxes
    }

    /// A scratch directory of this lab (daemon config, state, logs),
    /// removed at teardown.
    #[must_use]
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The HTTPS servers' self-signed certificate (PEM), valid for every
    /// server address: `curl --cacert` instead of `-k`.
    #[must_use]
    pub fn tls_cert(&self) -> &Path {
        &self.tls_cert
    }

    /// A command that runs `argv` in the lab host's network namespace (and
    /// this process's other namespaces), to configure before running.
    pub fn host_command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.host.command(argv)
    }

    /// A command that runs `argv` in the internet namespace.
    pub fn internet_command<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.internet.command(argv)
    }

    /// Runs `argv` in the lab host to completion and returns its output,
    /// whatever its exit status.
    ///
    /// # Errors
    ///
    /// When the program cannot be started.
    pub fn host_exec<I, S>(&self, argv: I) -> Result<Output, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        exec::output(&mut self.host.command(argv))
    }

    /// Runs `argv` in the internet namespace to completion and returns its
    /// output, whatever its exit status.
    ///
    /// # Errors
    ///
    /// When the program cannot be started.
    pub fn internet_exec<I, S>(&self, argv: I) -> Result<Output, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        exec::output(&mut self.internet.command(argv))
    }

    /// What curl in the internet namespace gets from `url` within 3 s: the
    /// HTTP status, or `err<curl's exit code>` when it got no answer.
    ///
    /// # Errors
    ///
    /// When curl cannot be started.
    pub fn internet_curl(&self, url: &str) -> Result<String, LabError> {
        let options = "curl -s -m 3 -o /dev/null -w %{http_code}".split(' ');
        let out = self.internet_exec(options.chain([url]))?;
        Ok(if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            format!("err{}", out.status.code().unwrap_or(-1))
        })
    }

    /// Starts a long-running program (the daemon) in the lab host, with
    /// stdin closed and stdout/stderr inherited; use [`Lab::host_command`]
    /// for anything else. Teardown kills it if it still runs.
    ///
    /// # Errors
    ///
    /// When the program cannot be started.
    pub fn spawn_in_host<I, S>(&self, argv: I) -> Result<Child, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.host.command(argv);
        cmd.stdin(Stdio::null());
        let mut child = cmd.spawn().map_err(|source| LabError::Spawn {
            what: exec::describe(&cmd),
            source,
        })?;
        // Returned only once it is where teardown looks for it.
        if let Err(error) = processes::wait_until_in(child.id(), self.host.path()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(error);
        }
        Ok(child)
    }

    /// Runs `f` on a fresh thread inside the lab host's network namespace
    /// and returns its result: how test code reaches the daemon's API.
    /// Sockets made in `f` stay in the lab host. A panic in `f` continues
    /// on the caller's thread.
    ///
    /// # Errors
    ///
    /// When the thread cannot enter the namespace.
    pub fn in_host<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        self.host.run_in(f)
    }

    /// Like [`Lab::in_host`], in the internet namespace (e.g. to connect
    /// to a box's address for ingress tests).
    ///
    /// # Errors
    ///
    /// When the thread cannot enter the namespace.
    pub fn in_internet<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        self.internet.run_in(f)
    }

    /// Routes `cidr` (e.g. the daemon's box pool) from the internet
    /// namespace to the lab host, so the internet can open connections to
    /// box addresses (ingress tests). Without it the internet only answers
    /// the lab host's own uplink addresses.
    ///
    /// # Errors
    ///
    /// When `ip route replace` fails (e.g. `cidr` is not a prefix).
    pub fn route_to_host(&self, cidr: &str) -> Result<(), LabError> {
        topology::route_to_host(&self.internet, cidr)
    }

    /// Checks that the lab is sealed: the internet has no interface but
    /// `lo` (which carries the server addresses) and the uplink's peer;
    /// the uplink veth joins exactly the lab host and the internet; every
    /// other lab-host interface but `lo` is a veth into a namespace named
    /// [`Lab::namespace_prefix`]`…` (a box), whose own interfaces are `lo`
    /// and veths into the lab host; and no address of the root namespace
    /// is reachable from the lab host. Returns the root-namespace
    /// addresses tried. Holds with the daemon and its boxes running, but
    /// call it while no box is being created or deleted: a half-made box
    /// (veth without a pinned peer) reads as a leak.
    ///
    /// # Errors
    ///
    /// [`LabError::NotSealed`] saying what is open, or the failure of a
    /// command the check runs.
    pub fn assert_sealed(&self) -> Result<Vec<SocketAddr>, LabError> {
        seal::check(&self.host, &self.internet, &self.names.boxes)
    }

    /// Tears the lab down now and reports every failure, instead of
    /// printing them as dropping does.
    ///
    /// # Errors
    ///
    /// [`LabError::Teardown`] listing each thing that could not be removed.
    pub fn close(mut self) -> Result<(), LabError> {
        let errors = self.teardown();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown(errors))
        }
    }

    /// Removes everything of this lab, carrying on past failures so one
    /// stuck piece does not leave the rest behind.
    fn teardown(&mut self) -> Vec<LabError> {
        if std::mem::replace(&mut self.torn_down, true) {
            return Vec::new();
        }
        let mut errors = Vec::new();
        if let Some(mut servers) = self.servers.take() {
            errors.extend(servers.stop().err());
        }
        // Every pin named `<id>-…`: both lab namespaces and the daemon's.
        let prefix = self.names.owned_prefix();
        match netns::pinned_with_prefix(&prefix) {
            Ok(pins) => {
                // Processes first, so nothing (e.g. the daemon) re-creates
                // what is being removed.
                errors.extend(processes::kill_all_in(&pins));
                errors.extend(pins.iter().filter_map(|p| netns::remove(p).err()));
            }
            Err(e) => errors.push(e),
        }
        match netns::pinned_with_prefix(&prefix) {
            Ok(left) if left.is_empty() => {}
            Ok(left) => errors.push(LabError::Leftover(left)),
            Err(e) => errors.push(e),
        }
        netns::unmount_under(&self.workdir);
        match std::fs::remove_dir_all(&self.workdir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => errors.push(LabError::Io {
                context: "cannot remove lab directory",
                path: self.workdir.clone(),
                source,
            }),
        }
        errors
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.teardown() {
            eprintln!("boxfence-lab {}: teardown: {e}", self.names.id);
        }
    }
}
