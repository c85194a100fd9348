//! The daemon's configuration: a TOML file, each key overridable by a
//! flag of `boxfence serve`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use boxfence_dataplane::features::Feature;
use boxfence_policy::Cidr;
use boxfence_server::{ExecLimits, Limits};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;

pub(crate) use api::ApiFile;
pub(crate) use kernel::{KernelFile, KernelSettings};
pub(crate) use owned::{MARK_BITS, Owned, RULE_PREFS};
pub(crate) use runtime::RuntimeFile;

mod api;
mod kernel;
mod owned;
mod runtime;

/// Where the daemon listens unless told otherwise (loopback only).
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:4280";
/// The boxes' IPv4 pool unless told otherwise.
pub(crate) const DEFAULT_IPV4_POOL: &str = "10.200.0.0/16";
/// The boxes' IPv6 pool unless told otherwise.
pub(crate) const DEFAULT_IPV6_POOL: &str = "fd00:b0f::/64";
/// Prefix of the box network namespaces' names.
const DEFAULT_NETNS_PREFIX: &str = "bfn-";
/// Per-box files (the resolv.conf shown inside each box).
const DEFAULT_STATE_DIR: &str = "/run/boxfence";
/// The longest `[exec] max_timeout` (a day, as before it was a setting).
const MAX_EXEC_TIMEOUT_SECONDS: u64 = 24 * 3600;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is not valid.
    #[error("invalid {key}: {message}")]
    Value {
        /// The key (as in the file).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The daemon's configuration, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Address and port of the HTTP API.
    pub(crate) listen: SocketAddr,
    /// Database URL, e.g. `sqlite://./boxfence.db`.
    pub(crate) database: String,
    /// The admin token; when `None`, one is generated on first start.
    pub(crate) admin_token: Option<String>,
    /// Largest request body in bytes.
    pub(crate) body_limit: usize,
    /// What the data plane uses.
    pub(crate) network: NetworkConfig,
    /// How the built-in resolver serves boxes.
    pub(crate) resolver: ResolverSettings,
    /// What one tenant may hold at once (`[exec]`, `[create]`).
    pub(crate) limits: Limits,
    /// Kernel features not to use (`[kernel]`).
    pub(crate) kernel: KernelSettings,
    /// How boxes' containers are made (`[runtime]`).
    pub(crate) runtime: boxfence_engine::SandboxConfig,
    /// The API's unix socket, if any (`[api]`).
    pub(crate) unix_socket: Option<boxfence_server::UnixSocket>,
}

/// The `[resolver]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolverSettings {
    /// Queries per second each box may send (bursts of twice that); the
    /// rest are answered REFUSED.
    pub(crate) query_rate_per_box: u32,
    /// TCP connections one box may hold open at once; more are closed.
    pub(crate) tcp_connections_per_box: usize,
    /// TCP connections all boxes may hold open at once; more are closed.
    pub(crate) tcp_connections: usize,
}

/// The `[network]` section: what the data plane uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkConfig {
    /// The host's interface to the internet; `None`: the default route's.
    pub(crate) uplink: Option<String>,
    /// Where machines' IPv4 addresses come from.
    pub(crate) ipv4_pool: Ipv4Net,
    /// Where machines' IPv6 addresses come from.
    pub(crate) ipv6_pool: Ipv6Net,
    /// Always-blocked ranges the operator exempts (e.g. a package mirror).
    pub(crate) exempt_cidrs: Vec<Cidr>,
    /// Resolvers the built-in resolver forwards to; empty: the host's
    /// `/etc/resolv.conf`.
    pub(crate) upstream_dns: Vec<SocketAddr>,
    /// Box network namespaces are `/run/netns/<netns_prefix><id>`.
    pub(crate) netns_prefix: String,
    /// Where per-box files (resolv.conf) live.
    pub(crate) state_dir: std::path::PathBuf,
    /// False: serve the API only (machine work answers 501).
    pub(crate) data_plane: bool,
    /// Whether domain-authorised TCP flows must claim an allowed name
    /// (TLS SNI, HTTP Host) and HTTP/3 to them is refused (issue 19).
    pub(crate) name_check: bool,
    /// What it owns in its network namespace (table, interface prefix,
    /// rule preferences, marks, queue, log group).
    pub(crate) owned: Owned,
}

/// `[network] name_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NameCheckSetting {
    /// Names are checked (the default).
    On,
    /// The behaviour before issue 19: a domain authorises addresses only.
    Off,
}

/// The file as written: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) database: Option<String>,
    pub(crate) admin_token: Option<String>,
    pub(crate) body_limit: Option<usize>,
    #[serde(default)]
    pub(crate) network: NetworkFile,
    #[serde(default)]
    pub(crate) resolver: ResolverFile,
    #[serde(default)]
    pub(crate) exec: ExecFile,
    #[serde(default)]
    pub(crate) create: CreateFile,
    #[serde(default)]
    pub(crate) kernel: KernelFile,
    #[serde(default)]
    pub(crate) runtime: RuntimeFile,
    #[serde(default)]
    pub(crate) api: ApiFile,
}

/// The `[exec]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecFile {
    pub(crate) max_concurrent: Option<usize>,
    pub(crate) per_app: Option<usize>,
    pub(crate) per_box: Option<usize>,
    /// Seconds.
    pub(crate) max_timeout: Option<u64>,
}

/// The `[create]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateFile {
    pub(crate) per_app: Option<usize>,
}

/// The `[resolver]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolverFile {
    pub(crate) query_rate_per_box: Option<u32>,
    pub(crate) tcp_connections_per_box: Option<usize>,
    pub(crate) tcp_connections: Option<usize>,
}

/// The `[network]` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkFile {
    pub(crate) uplink: Option<String>,
    pub(crate) ipv4_pool: Option<Ipv4Net>,
    pub(crate) ipv6_pool: Option<Ipv6Net>,
    pub(crate) exempt_cidrs: Option<Vec<Cidr>>,
    pub(crate) upstream_dns: Option<Vec<String>>,
    pub(crate) netns_prefix: Option<String>,
    pub(crate) state_dir: Option<std::path::PathBuf>,
    pub(crate) data_plane: Option<bool>,
    /// False: no flowtable fast path (the kernel feature is avoided).
    pub(crate) flowtable: Option<bool>,
    /// `"off"`: names of domain-authorised flows are not checked.
    pub(crate) name_check: Option<NameCheckSetting>,
    pub(crate) table: Option<String>,
    pub(crate) ifname_prefix: Option<String>,
    pub(crate) rule_pref: Option<u32>,
    pub(crate) mark: Option<u32>,
    pub(crate) name_check_queue: Option<u16>,
    pub(crate) log_group: Option<u16>,
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub(crate) fn read(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: shown,
            message: error.to_string(),
        })
    }

    /// `overrides` (flags) over this file over the defaults.
    pub(crate) fn resolve(self, overrides: ConfigFile) -> Result<Config, ConfigError> {
        let limits = limits(&self, &overrides)?;
        let network = overrides.network;
        let netns_prefix = (network.netns_prefix.clone())
            .or_else(|| self.network.netns_prefix.clone())
            .unwrap_or_else(|| DEFAULT_NETNS_PREFIX.to_owned());
        let pools = (
            match network.ipv4_pool.or(self.network.ipv4_pool) {
                Some(pool) => pool,
                None => parse_default("network.ipv4_pool", DEFAULT_IPV4_POOL)?,
            },
            match network.ipv6_pool.or(self.network.ipv6_pool) {
                Some(pool) => pool,
                None => parse_default("network.ipv6_pool", DEFAULT_IPV6_POOL)?,
            },
        );
        let owned = owned::resolve_owned(&network, &self.network, &netns_prefix, pools)?;
        let upstream = network
            .upstream_dns
            .or(self.network.upstream_dns)
            .unwrap_or_default()
            .iter()
            .map(|text| parse_resolver(text))
            .collect::<Result<_, _>>()?;
        let resolver = resolve_resolver(overrides.resolver, self.resolver)?;
        let mut kernel = kernel::resolve_kernel(overrides.kernel, self.kernel)?;
        let flowtable = network.flowtable.or(self.network.flowtable);
        if flowtable == Some(false) && !kernel.avoid.contains(&Feature::Flowtable) {
            kernel.avoid.push(Feature::Flowtable);
        }
        let mut runtime = runtime::resolve_runtime(overrides.runtime, self.runtime)?;
        let state_dir = network
            .state_dir
            .or(self.network.state_dir)
            .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
        // `boxfence run` and `boxfence image` use the daemon's store.
        runtime
            .images
            .get_or_insert_with(|| state_dir.join("images"));
        let unix_socket = api::resolve_api(overrides.api, self.api);
        Ok(Config {
            listen: match overrides.listen.or(self.listen) {
                Some(listen) => listen,
                None => parse_default("listen", DEFAULT_LISTEN)?,
            },
            database: overrides
                .database
                .or(self.database)
                .unwrap_or_else(|| boxfence_store::DEFAULT_DATABASE.to_owned()),
            admin_token: overrides
                .admin_token
                .or(self.admin_token)
                .filter(|token| !token.is_empty()),
            body_limit: overrides
                .body_limit
                .or(self.body_limit)
                .unwrap_or(boxfence_server::DEFAULT_BODY_LIMIT),
            network: NetworkConfig {
                uplink: network.uplink.or(self.network.uplink),
                ipv4_pool: pools.0,
                ipv6_pool: pools.1,
                exempt_cidrs: network
                    .exempt_cidrs
                    .or(self.network.exempt_cidrs)
                    .unwrap_or_default(),
                upstream_dns: upstream,
                netns_prefix,
                state_dir,
                data_plane: network
                    .data_plane
                    .or(self.network.data_plane)
                    .unwrap_or(true),
                name_check: network.name_check.or(self.network.name_check)
                    != Some(NameCheckSetting::Off),
                owned,
            },
            resolver,
            limits,
            kernel,
            runtime,
            unix_socket,
        })
    }
}

/// The `[resolver]` section: `overrides` over `file` over the defaults;
/// each limit must be at least 1, since 0 would refuse every query (or
/// every TCP connection).
fn resolve_resolver(
    overrides: ResolverFile,
    file: ResolverFile,
) -> Result<ResolverSettings, ConfigError> {
    fn at_least_one<T: From<u8> + PartialOrd>(
        key: &'static str,
        value: T,
    ) -> Result<T, ConfigError> {
        if value < T::from(1) {
            return Err(ConfigError::Value {
                key,
                message: "must be at least 1 (0 would refuse everything)".into(),
            });
        }
        Ok(value)
    }
    Ok(ResolverSettings {
        query_rate_per_box: at_least_one(
            "resolver.query_rate_per_box",
            overrides
                .query_rate_per_box
                .or(file.query_rate_per_box)
                .unwrap_or(boxfence_engine::QUERY_RATE_PER_BOX),
        )?,
        tcp_connections_per_box: at_least_one(
            "resolver.tcp_connections_per_box",
            overrides
                .tcp_connections_per_box
                .or(file.tcp_connections_per_box)
                .unwrap_or(boxfence_resolver::tcp::TCP_CONNECTIONS_PER_BOX),
        )?,
        tcp_connections: at_least_one(
            "resolver.tcp_connections",
            overrides
                .tcp_connections
                .or(file.tcp_connections)
                .unwrap_or(boxfence_resolver::tcp::TCP_CONNECTIONS),
        )?,
    })
}

/// The `[exec]` and `[create]` caps: flags over the file over the
/// defaults; each at least 1.
fn limits(file: &ConfigFile, flags: &ConfigFile) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let cap =
        |key: &'static str, flag: Option<usize>, file: Option<usize>, default: usize| match flag
            .or(file)
            .unwrap_or(default)
        {
            0 => Err(ConfigError::Value {
                key,
                message: "must be at least 1 (0 would refuse every request)".into(),
            }),
            cap => Ok(cap),
        };
    let (exec, flag) = (&file.exec, &flags.exec);
    let max_timeout = flag
        .max_timeout
        .or(exec.max_timeout)
        .map_or(defaults.exec.max_timeout, Duration::from_secs);
    if max_timeout.is_zero() || max_timeout.as_secs() > MAX_EXEC_TIMEOUT_SECONDS {
        return Err(ConfigError::Value {
            key: "exec.max_timeout",
            message: format!("must be 1 to {MAX_EXEC_TIMEOUT_SECONDS} seconds"),
        });
    }
    Ok(Limits {
        exec: ExecLimits {
            max_concurrent: cap(
                "exec.max_concurrent",
                flag.max_concurrent,
                exec.max_concurrent,
                defaults.exec.max_concurrent,
            )?,
            per_app: cap(
                "exec.per_app",
                flag.per_app,
                exec.per_app,
                defaults.exec.per_app,
            )?,
            per_box: cap(
                "exec.per_box",
                flag.per_box,
                exec.per_box,
                defaults.exec.per_box,
            )?,
            max_timeout,
        },
        creates_per_app: cap(
            "create.per_app",
            flags.create.per_app,
            file.create.per_app,
            defaults.creates_per_app,
        )?,
    })
}

/// Parses a built-in default (never fails in practice; an error names
/// the key rather than panicking).
fn parse_default<T: std::str::FromStr>(key: &'static str, text: &str) -> Result<T, ConfigError> {
    text.parse().map_err(|_| ConfigError::Value {
        key,
        message: format!("bad built-in default {text}"),
    })
}

/// `1.1.1.1`, `1.1.1.1:5353`, `2606:4700::1111` or `[2606:4700::1111]:53`.
fn parse_resolver(text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse::<SocketAddr>()
        .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|_| ConfigError::Value {
            key: "network.upstream_dns",
            message: format!("`{text}` is not an IP address or IP:port"),
        })
}

#[cfg(test)]
mod tests;
