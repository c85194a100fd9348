//! `boxfence logs`: flow log events, one line per event with the reason in
//! words (or JSON lines with `--json`, appended to a file with `--output`,
//! or sent to syslog with `--syslog`): of one machine or box, or of every
//! machine of an app; filtered by verdict and by reason; `-f` keeps
//! following.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use boxfence_policy::FlowEvent;

use crate::{CliError, Context, output};

/// How often `-f` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Flags of `boxfence logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// The machine (with --app) or box id; without it, every machine of
    /// --app.
    id: Option<String>,
    /// The machine's app (Machines API); without an id, the app whose
    /// machines' events are shown.
    #[arg(short = 'a', long)]
    app: Option<String>,
    /// Keep printing new events.
    #[arg(short, long)]
    follow: bool,
    /// Only `allow` or `deny` events.
    #[arg(long)]
    verdict: Option<String>,
    /// Only events of this layer (e.g. `box_policy`, `sni`) or whose
    /// reason contains this text.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Append the events to FILE as JSON lines (made with mode 0600)
    /// instead of printing them.
    #[arg(short, long, value_name = "FILE", conflicts_with = "syslog")]
    output: Option<PathBuf>,
    /// Send the events to the local syslog as JSON, tag `boxfence-flow`,
    /// facility daemon, denials as warnings, the rest as info (at SOCKET,
    /// default /dev/log).
    #[arg(long, value_name = "SOCKET", num_args = 0..=1, default_missing_value = "/dev/log")]
    syslog: Option<PathBuf>,
    /// At most this many past events (per machine).
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Where the events go.
enum Sink {
    Print { json: bool },
    File(std::fs::File),
    Syslog(UnixDatagram),
}

/// Syslog's facility `daemon` and the severities used.
const DAEMON: u8 = 3 << 3;
const WARNING: u8 = 4;
const INFO: u8 = 6;

/// Prints the events, then (with `-f`) new ones as they come.
pub(crate) async fn run(args: LogsArgs, context: &Context) -> Result<(), CliError> {
    if args.id.is_none() && args.app.is_none() {
        return Err(CliError::Usage(
            "give a machine or box id, or --app for every machine of an app".into(),
        ));
    }
    let client = context.client()?;
    let mut sink = match (&args.output, &args.syslog) {
        (_, Some(socket)) => {
            let syslog = UnixDatagram::unbound().map_err(|e| CliError::Io(e.to_string()))?;
            syslog.connect(socket).map_err(|e| {
                CliError::Io(format!("cannot reach syslog at {}: {e}", socket.display()))
            })?;
            Sink::Syslog(syslog)
        }
        (Some(path), None) => Sink::File(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| CliError::Io(format!("cannot open {}: {e}", path.display())))?,
        ),
        (None, None) => Sink::Print { json: context.json },
    };
    let mut since: HashMap<String, u64> = HashMap::new();
    let mut said_nothing = false;
    loop {
        let ids = match &args.id {
            Some(id) => vec![id.clone()],
            None => {
                let app = args.app.as_deref().unwrap_or_default();
                let machines = client.machines(app).await?;
                machines.into_iter().map(|m| m.id).collect()
            }
        };
        let mut events = Vec::new();
        for id in ids {
            let after = since.get(&id).copied();
            let found = client
                .flows(
                    args.app.as_deref(),
                    &id,
                    after,
                    args.verdict.as_deref(),
                    args.limit,
                )
                .await?;
            if let Some(last) = found.last() {
                since.insert(id, last.time_ms + 1);
            }
            events.extend(found);
        }
        events.retain(|event| matches_reason(event, args.reason.as_deref()));
        events.sort_by_key(|event| event.time_ms);
        for event in &events {
            write_event(&mut sink, event)?;
        }
        if events.is_empty() && !said_nothing && matches!(sink, Sink::Print { json: false }) {
            // On stderr: stdout carries events only.
            eprintln!("no events yet");
            said_nothing = true;
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Whether `event` passes `--reason`.
fn matches_reason(event: &FlowEvent, reason: Option<&str>) -> bool {
    let Some(text) = reason else { return true };
    let layer = event
        .layer
        .and_then(|layer| serde_json::to_value(layer).ok())
        .and_then(|value| value.as_str().map(str::to_owned));
    layer.as_deref() == Some(text) || event.reason.contains(text)
}

fn write_event(sink: &mut Sink, event: &FlowEvent) -> Result<(), CliError> {
    match sink {
        Sink::Print { json: true } => output::json_line(event),
        Sink::Print { json: false } => {
            output::outln!(
                "{} {} {}",
                output::timestamp(event.time_ms),
                event.machine_id,
                event.describe()
            );
            Ok(())
        }
        Sink::File(file) => {
            let mut line = json(event)?;
            line.push('\n');
            file.write_all(line.as_bytes())
                .map_err(|e| CliError::Io(format!("cannot write the events: {e}")))
        }
        Sink::Syslog(socket) => {
            let severity = if event.verdict == "deny" {
                WARNING
            } else {
                INFO
            };
            let message = format!(
                "<{}>boxfence-flow[{}]: {}",
                DAEMON | severity,
                std::process::id(),
                json(event)?
            );
            socket
                .send(message.as_bytes())
                .map(drop)
                .map_err(|e| CliError::Io(format!("cannot send the events to syslog: {e}")))
        }
    }
}

fn json(event: &FlowEvent) -> Result<String, CliError> {
    serde_json::to_string(event).map_err(|e| CliError::Io(e.to_string()))
}
