//! `boxfence explain`: would a flow be allowed for a machine, and why?

use boxfence_policy::Flow;
use serde_json::{Map, Value, json};

use crate::{CliError, Context, output};

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// The app.
    #[arg(long, short, env = "BOXFENCE_APP")]
    app: String,
    /// The machine's id.
    machine: String,
    /// `egress` (the machine connects) or `ingress`.
    #[arg(long, default_value = "egress")]
    direction: String,
    /// `tcp`, `udp` or `icmp`.
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// The remote port (egress) or the machine's port (ingress).
    #[arg(long)]
    port: Option<u16>,
    /// The remote address.
    #[arg(long)]
    ip: Option<String>,
    /// The name the remote address was resolved from (egress).
    #[arg(long)]
    domain: Option<String>,
}

pub(crate) async fn run(args: ExplainArgs, context: &Context) -> Result<(), CliError> {
    let mut flow = Map::new();
    flow.insert("direction".into(), json!(args.direction));
    flow.insert("protocol".into(), json!(args.protocol));
    if let Some(port) = args.port {
        flow.insert("port".into(), json!(port));
    }
    if let Some(ip) = args.ip {
        flow.insert("ip".into(), json!(ip));
    }
    if let Some(domain) = args.domain {
        flow.insert("domain".into(), json!(domain));
    }
    let flow: Flow = serde_json::from_value(Value::Object(flow))
        .map_err(|error| CliError::Usage(format!("invalid flow: {error}")))?;
    let verdict = context
        .client()?
        .evaluate(&args.app, &args.machine, &flow)
        .await?;
    context.print(&verdict, || {
        let layer = verdict
            .layer
            .map_or_else(String::new, |layer| format!(" by {}", layer.as_str()));
        output::outln!(
            "{}{layer}: {}",
            verdict.verdict.to_uppercase(),
            verdict.reason
        );
        for finding in &verdict.findings {
            output::outln!(
                "  {:<15} {}  {}",
                finding.layer.as_str(),
                if finding.allowed { "allow" } else { "deny " },
                output::compact(&finding.reason)
            );
        }
        if let Some(name_check) = &verdict.name_check {
            println!("{name_check}");
        }
        for caveat in &verdict.caveats {
            output::outln!("note: {caveat}");
        }
    })
}
