//! What the client subcommands read: JSON documents, `key=value` pairs,
//! and the connection settings.

use std::collections::BTreeMap;
use std::io::Read;

use boxfence_client::Client;
use boxfence_policy::{GuestRequest, guest, image};
use serde_json::Value;

use crate::CliError;

/// Connection settings of the client subcommands.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnectArgs {
    /// The daemon's URL.
    #[arg(long, env = "BOXFENCE_URL", default_value = boxfence_client::DEFAULT_URL,
          global = true)]
    url: String,
    /// The admin token or an app token.
    #[arg(long, env = "BOXFENCE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

impl ConnectArgs {
    pub(crate) fn client(&self) -> Result<Client, CliError> {
        let token = self.token.as_deref().ok_or_else(|| {
            CliError::Usage("no token: set BOXFENCE_TOKEN or pass --token".into())
        })?;
        Ok(Client::new(&self.url, token))
    }
}

/// Reads a JSON document from a file, or standard input for `-`.
pub(crate) fn json_file(path: &str) -> Result<Value, CliError> {
    let text = if path == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Io(format!("cannot read standard input: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Io(format!("cannot read {path}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{path} is not JSON: {e}")))
}

/// A JSON document given inline, or `@FILE` / `@-` to read one.
pub(crate) fn json_arg(text: &str) -> Result<Value, CliError> {
    match text.strip_prefix('@') {
        Some(path) => json_file(path),
        None => serde_json::from_str(text)
            .map_err(|e| CliError::Usage(format!("`{text}` is not JSON: {e}"))),
    }
}

/// `key=value` pairs into a map.
pub(crate) fn pairs(items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::Usage(format!("`{item}` is not key=value")))
        })
        .collect()
}

/// A box's size and image, as `run`, `machine create` and `box create`
/// take them.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ShapeArgs {
    /// CPUs' worth of time (1-64) [default: the daemon's `[runtime] cpus`].
    #[arg(long, value_parser = within(guest::CPUS))]
    pub(crate) cpus: Option<u32>,
    /// Memory in MiB (32-262144) [default: `[runtime] memory_mb`].
    #[arg(long = "memory-mb", value_parser = within(guest::MEMORY_MB))]
    pub(crate) memory_mb: Option<u32>,
    /// The image of the box's root, from the host's image store
    /// (`boxfence image import`); `:latest` where no tag is given
    /// [default: a read-only view of the host's system directories].
    #[arg(long)]
    pub(crate) image: Option<String>,
}

impl ShapeArgs {
    /// The size asked for.
    pub(crate) fn guest(&self) -> GuestRequest {
        GuestRequest {
            cpus: self.cpus,
            memory_mb: self.memory_mb,
        }
    }

    /// The image, normalised, if one was given.
    pub(crate) fn image(&self) -> Result<Option<String>, CliError> {
        self.image
            .as_deref()
            .map(|given| {
                image::normalize(given).ok_or_else(|| {
                    CliError::Usage(format!("--image {given}: must be {}", image::RULE))
                })
            })
            .transpose()
    }
}

/// A flag's parser for sizes in `range` (a request's bounds).
fn within(range: std::ops::RangeInclusive<u32>) -> clap::builder::RangedI64ValueParser<u32> {
    clap::value_parser!(u32).range(i64::from(*range.start())..=i64::from(*range.end()))
}
