//! `boxfence`: the daemon (`serve`) and a command-line client for its API.

#![forbid(unsafe_code)]

mod apps;
mod boxes;
mod check_config;
mod claim;
mod config;
mod data_plane;
mod doctor;
mod explain;
mod images;
mod input;
mod logs;
mod machines;
mod output;
mod policies;
mod run;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Network policies for sandboxed machines ("boxes") on Linux.
#[derive(Debug, Parser)]
#[command(name = "boxfence", version, about)]
struct Cli {
    #[command(flatten)]
    connect: input::ConnectArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Format of the log lines on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (HTTP API, store, data plane).
    Serve(Box<serve::ServeArgs>),
    /// Manage apps and their tokens.
    #[command(subcommand)]
    App(apps::AppCommand),
    /// Manage app policies (Machines API shape).
    #[command(subcommand)]
    Policy(policies::PolicyCommand),
    /// Manage machines (Machines API shape).
    #[command(subcommand)]
    Machine(machines::MachineCommand),
    /// Manage boxes (Box API shape).
    #[command(subcommand, name = "box")]
    Boxes(boxes::BoxCommand),
    /// Would a flow be allowed for a machine, and why?
    Explain(explain::ExplainArgs),
    /// A machine's or box's flow log: denials with their reasons.
    Logs(logs::LogsArgs),
    /// Run one command in an ephemeral box, without a daemon (needs root).
    Run(run::RunArgs),
    /// Manage the host's images, which boxes' roots are made from (as
    /// root, on the daemon's host).
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Report what the host offers boxfence (kernel features, each part's
    /// path, prerequisites) and check the host settings it relies on (run
    /// as root on the daemon's host); exits with 1 when a required feature
    /// is missing or a check fails.
    Doctor(doctor::DoctorArgs),
    /// Print the API's OpenAPI document (what `openapi.json` at the
    /// repository's root holds, and the daemon serves at /openapi.json).
    Openapi,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Why a command failed; printed, and the exit status is 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The server refused or could not be reached.
    #[error("{0}")]
    Client(#[from] boxfence_client::ClientError),
    /// The configuration is not valid.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The daemon could not start.
    #[error("{0}")]
    Start(#[from] boxfence_server::StartError),
    /// Another daemon holds this one's state.
    #[error(transparent)]
    Claimed(#[from] claim::ClaimError),
    /// The database could not be opened.
    #[error("{0}")]
    Store(#[from] boxfence_store::StoreError),
    /// Reading input or writing output failed.
    #[error("{0}")]
    Io(String),
    /// The command line is not usable as given.
    #[error("{0}")]
    Usage(String),
}

/// Global output choice of the client subcommands.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct OutputArgs {
    /// Print JSON (as the API answers it) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// What every client subcommand gets: where to connect, how to print.
#[derive(Debug)]
pub(crate) struct Context {
    connect: input::ConnectArgs,
    json: bool,
}

impl Context {
    /// A client for the configured daemon.
    pub(crate) fn client(&self) -> Result<boxfence_client::Client, CliError> {
        self.connect.client()
    }

    /// Prints `value` as JSON with `--json`, else runs `human`.
    pub(crate) fn print<T: serde::Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(),
    ) -> Result<(), CliError> {
        if self.json {
            output::json(value)
        } else {
            human();
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "boxfence", &mut script);
        output::out!("{}", String::from_utf8_lossy(&script));
        return ExitCode::SUCCESS;
    }
    if let Command::Openapi = cli.command {
        output::out!("{}", boxfence_server::openapi_text());
        return ExitCode::SUCCESS;
    }
    init_logging(cli.log_format);
    if let Command::Doctor(args) = &cli.command {
        return doctor::run(args, cli.output.json).unwrap_or_else(|error| {
            output::print_error(&error);
            ExitCode::FAILURE
        });
    }
    if let Command::Image(command) = cli.command {
        return images::run(command, cli.output.json).map_or_else(
            |error| {
                output::print_error(&error);
                ExitCode::FAILURE
            },
            |()| ExitCode::SUCCESS,
        );
    }
    if let Command::Run(args) = cli.command {
        // Blocking and single-purpose: no async runtime needed.
        return run::run(args).unwrap_or_else(|error| {
            output::print_error(&error);
            ExitCode::FAILURE
        });
    }
    // The runtime is built only for commands that need one, so that
    // commands which must stay single-threaded can run before it.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let context = Context {
        connect: cli.connect,
        json: cli.output.json,
    };
    let result = runtime.block_on(async {
        let success = Ok(ExitCode::SUCCESS);
        match cli.command {
            Command::Serve(args) => serve::run(*args).await.and(success),
            Command::App(command) => apps::run(command, &context).await.and(success),
            Command::Policy(command) => policies::run(command, &context).await.and(success),
            Command::Machine(command) => machines::run(command, &context).await,
            Command::Boxes(command) => boxes::run(command, &context).await,
            Command::Explain(args) => explain::run(args, &context).await.and(success),
            Command::Logs(args) => logs::run(args, &context).await.and(success),
            Command::Completions { .. }
            | Command::Openapi
            | Command::Run(_)
            | Command::Image(_)
            | Command::Doctor(_) => success,
        }
    });
    result.unwrap_or_else(|error| {
        output::print_error(&error);
        ExitCode::FAILURE
    })
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
