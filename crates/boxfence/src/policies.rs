//! `boxfence policy`: app policies (Machines API shape).

use boxfence_client::PolicyInfo;

use crate::input::json_file;
use crate::{CliError, Context, output};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Create or update a policy from a JSON file (`-` for stdin): by `id`
    /// when given, else by `name`.
    Apply {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
        /// The policy document.
        #[arg(long = "file", short = 'f', value_name = "FILE|-")]
        file: String,
    },
    /// List the app's policies.
    Ls {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
    },
    /// Show a policy.
    Show {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
        /// The policy's id.
        id: String,
    },
    /// Delete a policy.
    Rm {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
        /// The policy's id.
        id: String,
    },
}

fn summary(policy: &PolicyInfo) -> Vec<String> {
    let rules = &policy.rules;
    let count = |direction| rules.iter().filter(|r| r.direction == direction).count();
    vec![
        policy.id.clone(),
        policy.name.clone(),
        output::compact(&policy.selector),
        count(boxfence_policy::Direction::Ingress).to_string(),
        count(boxfence_policy::Direction::Egress).to_string(),
        policy.updated_at.clone(),
    ]
}

const HEADER: [&str; 6] = ["ID", "NAME", "SELECTOR", "INGRESS", "EGRESS", "UPDATED"];

pub(crate) async fn run(command: PolicyCommand, context: &Context) -> Result<(), CliError> {
    let client = context.client()?;
    match command {
        PolicyCommand::Apply { app, file } => {
            let document = json_file(&file)?;
            let applied = client.apply_policy_json(&app, &document).await?;
            output::warnings(&applied.warnings);
            context.print(&applied, || {
                let policy = &applied.value;
                output::outln!("applied policy {} ({})", policy.name, policy.id);
            })
        }
        PolicyCommand::Ls { app } => {
            let policies = client.policies(&app).await?;
            context.print(&policies, || {
                let rows: Vec<_> = policies.iter().map(summary).collect();
                output::table(&HEADER, &rows);
            })
        }
        PolicyCommand::Show { app, id } => {
            let policy = client.policy(&app, &id).await?;
            // A policy is a document: shown as JSON either way.
            output::json(&policy)
        }
        PolicyCommand::Rm { app, id } => {
            client.delete_policy(&app, &id).await?;
            context.print(&serde_json::json!({"id": id, "deleted": true}), || {
                output::outln!("deleted policy {id}");
            })
        }
    }
}
