//! `boxfence machine`: machines (Machines API shape).

use std::process::ExitCode;

use boxfence_client::{ExecRequest, MachineConfig, MachineGuest, MachineInfo, NewMachine};
use boxfence_policy::BoxPolicy;

use crate::input::{ShapeArgs, json_arg, pairs};
use crate::{CliError, Context, output};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum MachineCommand {
    /// Create a machine.
    Create {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
        /// Its name (default: its id).
        #[arg(long)]
        name: Option<String>,
        /// Metadata, `key=value` (repeat for more).
        #[arg(long = "metadata", short = 'm', value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// Box policy as JSON, or `@FILE` (default allow-all).
        #[arg(long, value_name = "JSON|@FILE")]
        policy: Option<String>,
        /// Its size and image.
        #[command(flatten)]
        shape: ShapeArgs,
    },
    /// List the app's machines.
    Ls {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
    },
    /// Show a machine.
    Show {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
        /// The machine's id.
        id: String,
    },
    /// Delete a machine.
    Rm {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
        /// The machine's id.
        id: String,
    },
    /// Run a command in a machine; exits with the command's status.
    Exec {
        /// The app.
        #[arg(long, short, env = "BOXFENCE_APP")]
        app: String,
        /// Seconds before the command is killed.
        #[arg(long)]
        timeout: Option<f64>,
        /// The machine's id.
        id: String,
        /// Program and arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

fn row(machine: &MachineInfo) -> Vec<String> {
    vec![
        machine.id.clone(),
        machine.name.clone(),
        machine.addresses.ipv4.clone(),
        machine.addresses.ipv6.clone(),
        machine.network_policy.mode().to_owned(),
        output::metadata(&machine.config.metadata),
    ]
}

const HEADER: [&str; 6] = ["ID", "NAME", "IPV4", "IPV6", "POLICY", "METADATA"];

/// Prints an exec result and turns its status into the exit status.
pub(crate) fn exec_result(
    context: &Context,
    result: &boxfence_client::ExecOutput,
) -> Result<ExitCode, CliError> {
    context.print(result, || {
        output::out!("{}", result.stdout);
        eprint!("{}", result.stderr);
    })?;
    Ok(ExitCode::from(u8::try_from(result.exit_code).unwrap_or(1)))
}

pub(crate) async fn run(command: MachineCommand, context: &Context) -> Result<ExitCode, CliError> {
    let client = context.client()?;
    match command {
        MachineCommand::Create {
            app,
            name,
            metadata,
            policy,
            shape,
        } => {
            let network_policy = policy
                .map(|text| {
                    let value = json_arg(&text)?;
                    BoxPolicy::from_json(&value)
                        .map_err(|error| CliError::Usage(format!("--policy: {error}")))
                })
                .transpose()?;
            let request = NewMachine {
                name,
                config: MachineConfig {
                    metadata: pairs(&metadata)?,
                    guest: Some(MachineGuest {
                        cpus: shape.cpus,
                        memory_mb: shape.memory_mb,
                    }),
                    image: shape.image()?,
                },
                network_policy,
                attach: None,
            };
            let created = client.create_machine(&app, &request).await?;
            output::warnings(&created.warnings);
            context.print(&created, || output::table(&HEADER, &[row(&created.value)]))?;
        }
        MachineCommand::Ls { app } => {
            let machines = client.machines(&app).await?;
            context.print(&machines, || {
                output::table(&HEADER, &machines.iter().map(row).collect::<Vec<_>>());
            })?;
        }
        MachineCommand::Show { app, id } => {
            let machine = client.machine(&app, &id).await?;
            context.print(&machine, || {
                output::fields(&[
                    ("id", machine.id.clone()),
                    ("name", machine.name.clone()),
                    ("app", machine.app_name.clone()),
                    ("ipv4", machine.addresses.ipv4.clone()),
                    ("ipv6", machine.addresses.ipv6.clone()),
                    ("metadata", output::metadata(&machine.config.metadata)),
                    ("network_policy", output::compact(&machine.network_policy)),
                    ("created", machine.created_at.clone()),
                ]);
            })?;
        }
        MachineCommand::Rm { app, id } => {
            client.delete_machine(&app, &id).await?;
            context.print(&serde_json::json!({"id": id, "deleted": true}), || {
                output::outln!("deleted machine {id}");
            })?;
        }
        MachineCommand::Exec {
            app,
            timeout,
            id,
            command,
        } => {
            let request = ExecRequest {
                command,
                stdin: None,
                timeout,
            };
            let result = client.exec(&app, &id, &request).await?;
            return exec_result(context, &result);
        }
    }
    Ok(ExitCode::SUCCESS)
}
