//! `boxfence box`: boxes (Box API shape), through the SDK's `Box`.

use std::process::ExitCode;

use boxfence_client::{Box, BoxGuest, BoxOptions, ExecRequest};
use boxfence_policy::BoxPolicy;

use crate::input::{ShapeArgs, json_arg, json_file, pairs};
use crate::machines::exec_result;
use crate::{CliError, Context, output};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BoxCommand {
    /// Create a box.
    Create {
        /// Runtime label, e.g. `node`.
        #[arg(long)]
        runtime: Option<String>,
        /// Network policy as JSON, or `@FILE` (default allow-all).
        #[arg(long, value_name = "JSON|@FILE")]
        policy: Option<String>,
        /// Metadata, `key=value` (repeat for more).
        #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// The app (default `default`, or the app token's).
        #[arg(long, short)]
        app: Option<String>,
        /// Its size and image.
        #[command(flatten)]
        shape: ShapeArgs,
    },
    /// Show a box with its network policy.
    Show {
        /// The box's id.
        id: String,
    },
    /// Change a box's network policy.
    #[command(subcommand)]
    Policy(BoxPolicyCommand),
    /// Run a command in a box; exits with the command's status.
    Exec {
        /// Seconds before the command is killed.
        #[arg(long)]
        timeout: Option<f64>,
        /// The box's id.
        id: String,
        /// Program and arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Delete a box.
    Rm {
        /// The box's id.
        id: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BoxPolicyCommand {
    /// Replace the policy of a running box (in force when this returns).
    Set {
        /// The box's id.
        id: String,
        /// The policy as JSON, e.g. '{"mode":"deny-all"}', or `@FILE`.
        #[arg(required_unless_present = "file")]
        policy: Option<String>,
        /// Read the policy from a file (`-` for stdin).
        #[arg(long, short, value_name = "FILE|-", conflicts_with = "policy")]
        file: Option<String>,
    },
}

fn parse_policy(value: &serde_json::Value, what: &str) -> Result<BoxPolicy, CliError> {
    BoxPolicy::from_json(value).map_err(|error| CliError::Usage(format!("{what}: {error}")))
}

fn show(context: &Context, sandbox: &Box) -> Result<(), CliError> {
    let info = sandbox.info();
    context.print(info, || {
        output::fields(&[
            ("id", info.id.clone()),
            ("app", info.app.clone()),
            ("runtime", info.runtime.clone().unwrap_or_default()),
            ("ipv4", info.addresses.ipv4.clone()),
            ("ipv6", info.addresses.ipv6.clone()),
            ("metadata", output::metadata(&info.metadata)),
            ("networkPolicy", output::compact(&info.network_policy)),
        ]);
    })
}

pub(crate) async fn run(command: BoxCommand, context: &Context) -> Result<ExitCode, CliError> {
    let client = context.client()?;
    match command {
        BoxCommand::Create {
            runtime,
            policy,
            metadata,
            app,
            shape,
        } => {
            let network_policy = policy
                .map(|text| parse_policy(&json_arg(&text)?, "--policy"))
                .transpose()?;
            let options = BoxOptions {
                runtime,
                network_policy,
                metadata: pairs(&metadata)?,
                app,
                guest: Some(BoxGuest {
                    cpus: shape.cpus,
                    memory_mb: shape.memory_mb,
                }),
                image: shape.image()?,
            };
            let sandbox = Box::create(&client, options).await?;
            output::warnings(sandbox.warnings());
            show(context, &sandbox)?;
        }
        BoxCommand::Show { id } => show(context, &Box::get(&client, &id).await?)?,
        BoxCommand::Policy(BoxPolicyCommand::Set { id, policy, file }) => {
            let document = match (policy, file) {
                (_, Some(file)) => json_file(&file)?,
                (Some(text), None) => json_arg(&text)?,
                (None, None) => return Err(CliError::Usage("give a policy or --file".into())),
            };
            let policy = parse_policy(&document, "policy")?;
            let mut sandbox = Box::get(&client, &id).await?;
            sandbox.update_network_policy(policy).await?;
            output::warnings(sandbox.warnings());
            context.print(sandbox.network_policy(), || {
                output::outln!("box {id}: {}", output::compact(sandbox.network_policy()));
            })?;
        }
        BoxCommand::Exec {
            timeout,
            id,
            command,
        } => {
            let sandbox = Box::get(&client, &id).await?;
            let request = ExecRequest {
                command,
                stdin: None,
                timeout,
            };
            let result = sandbox.exec(&request).await?;
            return exec_result(context, &result);
        }
        BoxCommand::Rm { id } => {
            Box::get(&client, &id).await?.delete().await?;
            context.print(&serde_json::json!({"id": id, "deleted": true}), || {
                output::outln!("deleted box {id}");
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
