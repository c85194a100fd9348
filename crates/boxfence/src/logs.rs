//! `boxfence logs`: a machine's or box's flow log, one line per event with
//! the reason in words; `-f` keeps following.

use std::time::Duration;

use boxfence_policy::FlowEvent;

use crate::{CliError, Context, output};

/// How often `-f` asks for new events.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Flags of `boxfence logs`.
#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    /// The machine (with --app) or box id.
    id: String,
    /// The machine's app (Machines API); without it, the id is a box's.
    #[arg(long)]
    app: Option<String>,
    /// Keep printing new events.
    #[arg(short, long)]
    follow: bool,
    /// Only `allow` or `deny` events.
    #[arg(long)]
    verdict: Option<String>,
    /// At most this many past events.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// Prints the events, then (with `-f`) new ones as they come.
pub(crate) async fn run(args: LogsArgs, context: &Context) -> Result<(), CliError> {
    let client = context.client()?;
    let mut since = None;
    loop {
        let events = client
            .flows(
                args.app.as_deref(),
                &args.id,
                since,
                args.verdict.as_deref(),
                args.limit,
            )
            .await?;
        for event in &events {
            print_event(event, context.json)?;
        }
        if !args.follow {
            return Ok(());
        }
        if let Some(last) = events.last() {
            since = Some(last.time_ms + 1);
        } else if since.is_none() {
            since = Some(0);
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

fn print_event(event: &FlowEvent, json: bool) -> Result<(), CliError> {
    if json {
        return output::json_line(event);
    }
    output::outln!(
        "{} {} {}",
        output::timestamp(event.time_ms),
        event.machine_id,
        event.describe()
    );
    Ok(())
}
