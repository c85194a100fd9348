//! What the client subcommands read: JSON documents, `key=value` pairs,
//! and the connection settings.

use std::collections::BTreeMap;
use std::io::Read;

use boxfence_client::Client;
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
