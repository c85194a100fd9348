//! `boxfence serve --check-config`: what an operator (or a package's
//! test) runs before starting the service. The configuration was loaded
//! and checked by then; this says what it sets and refuses a config file
//! others can read while an admin token is configured.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::CliError;
use crate::config::Config;
use crate::output::outln;

/// Prints the settings that place the daemon on the host, or fails on a
/// config file readable by group or others while `admin_token` is set.
pub(crate) fn report(config: &Config, path: Option<&Path>) -> Result<(), CliError> {
    if let Some(path) = path {
        let mode = std::fs::metadata(path)
            .map_err(|e| CliError::Io(format!("cannot read {}: {e}", path.display())))?
            .permissions()
            .mode();
        if config.admin_token.is_some() && mode & 0o077 != 0 {
            return Err(CliError::Usage(format!(
                "{} has mode {:04o} and admin_token is set: make it 0600 (chmod 600), so the token is not readable by others",
                path.display(),
                mode & 0o7777
            )));
        }
    }
    let network = &config.network;
    // Checked at start otherwise, after the store is opened.
    crate::data_plane::always_blocked(network)?;
    let owned = &network.owned;
    outln!("configuration is valid");
    outln!("  listen      {}", config.listen);
    if let Some(socket) = &config.unix_socket {
        outln!("  unix socket {}", socket.path.display());
    }
    outln!("  database    {}", config.database);
    outln!("  state_dir   {}", network.state_dir.display());
    if let Some(images) = &config.runtime.images {
        outln!("  images      {}", images.display());
    }
    outln!(
        "  data plane  {}",
        if network.data_plane { "on" } else { "off" }
    );
    outln!("  pools       {} {}", network.ipv4_pool, network.ipv6_pool);
    outln!(
        "  owns        netns {}*, links {}*, table inet {}, rule preferences {}-{}, mark {:#x}, queue {}, log group {}",
        network.netns_prefix,
        owned.ifname_prefix,
        owned.table,
        owned.rule_pref,
        owned.rule_pref + crate::config::RULE_PREFS - 1,
        owned.mark,
        owned.name_check_queue,
        owned.log_group
    );
    Ok(())
}
