//! `boxfence serve`: the daemon.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use boxfence_engine::AddressPool;
use boxfence_policy::Cidr;
use boxfence_server::{Server, ServerConfig};
use boxfence_store::SqliteStore;
use ipnet::{Ipv4Net, Ipv6Net};

use crate::config::{
    ApiFile, Config, ConfigFile, CreateFile, ExecFile, KernelFile, NameCheckSetting, NetworkFile,
    ResolverFile, RuntimeFile,
};
use crate::{CliError, data_plane};

/// Flags of `boxfence serve`; each overrides the config file's key.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// TOML config file (keys: listen, database, admin_token, body_limit,
    /// [network] uplink, ipv4_pool, ipv6_pool, exempt_cidrs, upstream_dns,
    /// [resolver] query_rate_per_box, tcp_connections_per_box,
    /// tcp_connections, [exec] max_concurrent, per_app, per_box,
    /// max_timeout, [create] per_app, [kernel] avoid; README lists every
    /// key).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port of the HTTP API [default: 127.0.0.1:4280].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Database URL [default: sqlite://./boxfence.db].
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    /// Admin token; without one, a token is generated on first start,
    /// printed once and stored hashed.
    #[arg(long, env = "BOXFENCE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    body_limit: Option<usize>,
    /// The host's interface to the internet [default: the default route's].
    #[arg(long, value_name = "IFACE")]
    uplink: Option<String>,
    /// IPv4 pool of machine addresses [default: 10.200.0.0/16].
    #[arg(long, value_name = "CIDR")]
    ipv4_pool: Option<Ipv4Net>,
    /// IPv6 pool of machine addresses [default: fd00:b0f::/64].
    #[arg(long, value_name = "CIDR")]
    ipv6_pool: Option<Ipv6Net>,
    /// Always-blocked range to exempt (repeat for more).
    #[arg(long = "exempt-cidr", value_name = "CIDR")]
    exempt_cidrs: Vec<Cidr>,
    /// Upstream resolver, IP or IP:port (repeat for more) [default: the
    /// host's /etc/resolv.conf].
    #[arg(long = "upstream-dns", value_name = "ADDR")]
    upstream_dns: Vec<String>,
    /// Prefix of box network namespace names [default: bfn-].
    #[arg(long, value_name = "PREFIX")]
    netns_prefix: Option<String>,
    /// Directory of per-box files [default: /run/boxfence].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The daemon's nftables table (one per daemon on a host) [default:
    /// boxfence].
    #[arg(long, value_name = "NAME")]
    table: Option<String>,
    /// Prefix of boxes' host-side interface names [default: bf-].
    #[arg(long, value_name = "PREFIX")]
    ifname_prefix: Option<String>,
    /// First of the four routing-rule preferences [default: 10090].
    #[arg(long, value_name = "PREF")]
    rule_pref: Option<u32>,
    /// Packet mark bit of box traffic, e.g. 0x100; name checks use the
    /// four above it [default: 0x1000000].
    #[arg(long, value_name = "BIT", value_parser = parse_mark)]
    mark: Option<u32>,
    /// NFQUEUE number of name checks [default: 19].
    #[arg(long, value_name = "N")]
    name_check_queue: Option<u16>,
    /// NFLOG group of denials [default: 7].
    #[arg(long, value_name = "N")]
    log_group: Option<u16>,
    /// DNS queries per second each box may send to the built-in resolver
    /// (bursts of twice that) [default: 2000].
    #[arg(long, value_name = "QPS")]
    query_rate_per_box: Option<u32>,
    /// TCP connections each box may hold open to the built-in resolver at
    /// once; more are closed [default: 16].
    #[arg(long, value_name = "N")]
    tcp_connections_per_box: Option<usize>,
    /// TCP connections all boxes may hold open to the built-in resolver at
    /// once; more are closed [default: 1024].
    #[arg(long, value_name = "N")]
    tcp_connections: Option<usize>,
    /// Serve the API only, without touching the host's network (machine
    /// work answers 501); config `[network] data_plane = false`.
    #[arg(long)]
    no_data_plane: bool,
    /// No flowtable fast path: every packet of a box flow passes the hooks
    /// (the `flowtable` kernel feature is avoided); config `[network]
    /// flowtable = false`.
    #[arg(long)]
    no_flowtable: bool,
    /// Do not check the names (TLS SNI, HTTP Host) of flows a domain
    /// authorised, nor refuse HTTP/3 to them; config `[network]
    /// name_check = "off"`.
    #[arg(long)]
    no_name_check: bool,
    /// Execs running at once on this host; more answer 429 [default: 64].
    #[arg(long, value_name = "N")]
    exec_max_concurrent: Option<usize>,
    /// Execs running at once in one app's boxes [default: 16].
    #[arg(long, value_name = "N")]
    exec_per_app: Option<usize>,
    /// Execs running at once in one box [default: 4].
    #[arg(long, value_name = "N")]
    exec_per_box: Option<usize>,
    /// Longest timeout an exec may ask for, in seconds [default: 600].
    #[arg(long, value_name = "SECONDS")]
    exec_max_timeout: Option<u64>,
    /// Creates of one app in progress at once; more answer 429 [default: 8].
    #[arg(long, value_name = "N")]
    create_per_app: Option<usize>,
    /// A kernel feature not to use even where the kernel has it, so its
    /// fallback runs (repeat for more; `boxfence doctor` lists them).
    #[arg(long = "avoid-feature", value_name = "NAME")]
    avoid_features: Vec<String>,
    /// The OCI runtime boxes run in: crun, runc or runsc [default: crun].
    #[arg(long, value_name = "NAME")]
    oci_runtime: Option<String>,
    /// A box's CPUs unless its machine says [default: 1].
    #[arg(long, value_name = "N")]
    box_cpus: Option<u32>,
    /// A box's memory in MiB unless its machine says [default: 512].
    #[arg(long, value_name = "MIB")]
    box_memory_mb: Option<u32>,
    /// Processes and threads a box may have at once [default: 1024].
    #[arg(long, value_name = "N")]
    pids_max: Option<u32>,
    /// Size of a box's /tmp in MiB [default: 256].
    #[arg(long, value_name = "MIB")]
    tmp_mb: Option<u32>,
    /// First host uid of the boxes' uid ranges [default: 524288].
    #[arg(long, value_name = "UID")]
    uid_base: Option<u32>,
    /// The box init binary [default: /usr/bin/catatonit].
    #[arg(long, value_name = "PATH")]
    box_init: Option<std::path::PathBuf>,
    /// The image store [default: <state_dir>/images].
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Check the configuration (file and flags), say what it sets, and
    /// exit: status 0 when it is valid, else the error.
    #[arg(long)]
    check_config: bool,
    /// Serve the API on this unix socket too, to root and the users and
    /// groups of `[api] unix_socket_uids` and `unix_socket_gids` without a
    /// token (the CNI plugin's way in) [default: none].
    #[arg(long, value_name = "PATH")]
    unix_socket: Option<PathBuf>,
}

impl ServeArgs {
    /// The configuration: flags over the file over the defaults.
    pub(crate) fn config(self) -> Result<Config, CliError> {
        let file = match &self.config {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        let flags = ConfigFile {
            listen: self.listen,
            database: self.database,
            admin_token: self.admin_token,
            body_limit: self.body_limit,
            network: NetworkFile {
                uplink: self.uplink,
                ipv4_pool: self.ipv4_pool,
                ipv6_pool: self.ipv6_pool,
                exempt_cidrs: (!self.exempt_cidrs.is_empty()).then_some(self.exempt_cidrs),
                upstream_dns: (!self.upstream_dns.is_empty()).then_some(self.upstream_dns),
                netns_prefix: self.netns_prefix,
                state_dir: self.state_dir,
                data_plane: self.no_data_plane.then_some(false),
                flowtable: self.no_flowtable.then_some(false),
                name_check: self.no_name_check.then_some(NameCheckSetting::Off),
                table: self.table,
                ifname_prefix: self.ifname_prefix,
                rule_pref: self.rule_pref,
                mark: self.mark,
                name_check_queue: self.name_check_queue,
                log_group: self.log_group,
            },
            resolver: ResolverFile {
                query_rate_per_box: self.query_rate_per_box,
                tcp_connections_per_box: self.tcp_connections_per_box,
                tcp_connections: self.tcp_connections,
            },
            exec: ExecFile {
                max_concurrent: self.exec_max_concurrent,
                per_app: self.exec_per_app,
                per_box: self.exec_per_box,
                max_timeout: self.exec_max_timeout,
            },
            create: CreateFile {
                per_app: self.create_per_app,
            },
            kernel: KernelFile {
                avoid: (!self.avoid_features.is_empty()).then_some(self.avoid_features),
            },
            runtime: RuntimeFile {
                oci_runtime: self.oci_runtime,
                cpus: self.box_cpus,
                memory_mb: self.box_memory_mb,
                pids_max: self.pids_max,
                tmp_mb: self.tmp_mb,
                uid_base: self.uid_base,
                init: self.box_init,
                images: self.images,
            },
            api: ApiFile {
                unix_socket: self.unix_socket,
                ..ApiFile::default()
            },
        };
        Ok(file.resolve(flags)?)
    }
}

/// Runs the daemon until SIGINT or SIGTERM (with `--check-config`, checks
/// its configuration only).
pub(crate) async fn run(args: ServeArgs) -> Result<(), CliError> {
    let (check, path) = (args.check_config, args.config.clone());
    let config = args.config()?;
    if check {
        return crate::check_config::report(&config, path.as_deref());
    }
    raise_open_file_limit(config.resolver.tcp_connections);
    let store = SqliteStore::open(&config.database).await?;
    let mut server_config = ServerConfig::new(AddressPool {
        ipv4: config.network.ipv4_pool,
        ipv6: config.network.ipv6_pool,
    });
    server_config.exempt_cidrs = config.network.exempt_cidrs.clone();
    server_config.admin_token = config.admin_token.clone();
    server_config.body_limit = config.body_limit;
    server_config.limits = config.limits;
    server_config.name_check = config.network.name_check;
    server_config.default_guest = boxfence_policy::Guest {
        cpus: config.runtime.limits.cpus,
        memory_mb: config.runtime.limits.memory_mb,
    };
    // Held for the daemon's lifetime.
    let (engine, _held) = data_plane::start(
        &config.network,
        &config.resolver,
        &config.kernel,
        &config.runtime,
    )?;
    let server = Server::start(server_config, Arc::new(store.clone()), engine).await?;
    if let Some(token) = &server.generated_admin_token {
        // Shown this once; the store keeps only its hash, so a token that
        // cannot be shown is an error, not a warning.
        writeln!(
            std::io::stdout(),
            "generated admin token (shown once, store it now):\n  {}",
            token.text
        )
        .map_err(|error| CliError::Io(format!("cannot show the generated admin token: {error}")))?;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| CliError::Io(format!("cannot listen on {}: {error}", config.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|error| CliError::Io(error.to_string()))?;
    // The daemon outlives its stdout (a closed pipe must not stop it).
    let _ = writeln!(std::io::stdout(), "boxfence listening on http://{address}");
    if let Some(socket) = &config.unix_socket {
        let _ = writeln!(
            std::io::stdout(),
            "boxfence listening on unix:{}",
            socket.path.display()
        );
    }
    server
        .serve_with_unix(listener, config.unix_socket.clone(), shutdown_signal())
        .await
        .map_err(|error| CliError::Io(error.to_string()))?;
    store.close().await;
    Ok(())
}

/// Raises this process's soft open-file limit to its hard one: boxes and
/// the resolver's TCP connections hold descriptors, and the usual soft
/// limit (1,024 under systemd) is what a box's flood would reach first.
/// Logs the limit in force, and warns when the resolver's TCP connections
/// alone could take half of it.
fn raise_open_file_limit(tcp_connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit");
            return;
        }
    };
    let open_files = match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => hard,
        Err(error) => {
            tracing::warn!(%error, soft, hard, "cannot raise the open-file limit");
            soft
        }
    };
    tracing::info!(open_files, "open-file limit");
    if u64::try_from(tcp_connections).unwrap_or(u64::MAX) > open_files / 2 {
        tracing::warn!(
            open_files,
            tcp_connections,
            "resolver.tcp_connections is over half the open-file limit: \
             a TCP flood could leave too few descriptors for the rest"
        );
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}

/// `--mark`: hexadecimal with `0x`, else decimal.
fn parse_mark(text: &str) -> Result<u32, String> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|error| format!("`{text}` is not a mark: {error}"))
}
