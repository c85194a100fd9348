//! What the client subcommands print: tables for people, JSON for
//! scripts, and errors with the server's message and details.

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;

use crate::CliError;

/// `println!` for the client subcommands, through [`stdout`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
/// `print!` for the client subcommands, through [`stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}
pub(crate) use {out, outln};

/// Writes to stdout. A reader that went away (`boxfence ... | head -1`)
/// ends the process quietly and successfully, as tools such as `head`
/// expect: it asked for no more. (Rust ignores SIGPIPE, so `println!`
/// would panic there.) Not for the daemon, which must outlive its stdout.
pub(crate) fn stdout(text: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to stdout: {error}");
            std::process::exit(1);
        }
    }
}

/// Prints `value` as pretty JSON.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Io(e.to_string()))?;
    outln!("{text}");
    Ok(())
}

/// Prints rows under a header, columns aligned.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    out!("{}", table_text(header, rows));
}

/// Rows under a header, columns aligned, one line each.
pub(crate) fn table_text(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// Prints `key: value` lines.
pub(crate) fn fields(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in pairs {
        outln!("{key:<width$}  {value}");
    }
}

/// Prints warnings (entries accepted without effect) to stderr.
pub(crate) fn warnings(warnings: &[boxfence_policy::Diagnostic]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

/// Prints an error: the server's message, then each detail.
pub(crate) fn print_error(error: &CliError) {
    eprintln!("error: {error}");
    if let CliError::Client(boxfence_client::ClientError::Api { body, .. }) = error {
        // One problem is already the message; several are listed.
        if body.details.len() > 1 {
            for detail in &body.details {
                eprintln!("  {detail}");
            }
        }
    }
}

/// `k=v, k=v` for metadata.
pub(crate) fn metadata(map: &std::collections::BTreeMap<String, String>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Prints `value` as one line of JSON.
pub(crate) fn json_line<T: Serialize>(value: &T) -> Result<(), CliError> {
    outln!("{}", compact(value));
    Ok(())
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub(crate) fn timestamp(ms: u64) -> String {
    boxfence_store::format_unix(ms / 1000)
}

/// A compact JSON rendering of a serializable value.
pub(crate) fn compact<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
