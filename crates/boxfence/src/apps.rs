//! `boxfence app`: apps and their tokens.

use crate::{CliError, Context, output};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AppCommand {
    /// Create an app.
    Create {
        /// Its name.
        name: String,
    },
    /// Show an app.
    Show {
        /// Its name.
        name: String,
    },
    /// List the apps the token sees.
    Ls,
    /// Delete an app with its policies and tokens.
    Rm {
        /// Its name.
        name: String,
        /// Also delete its machines.
        #[arg(long)]
        force: bool,
    },
    /// Mint a token that sees only this app (shown once).
    Token {
        /// The app.
        name: String,
    },
}

pub(crate) async fn run(command: AppCommand, context: &Context) -> Result<(), CliError> {
    let client = context.client()?;
    match command {
        AppCommand::Create { name } => {
            let app = client.create_app(&name).await?;
            context.print(&app, || output::outln!("created app {}", app.app_name))
        }
        AppCommand::Show { name } => {
            let app = client.app(&name).await?;
            context.print(&app, || {
                output::fields(&[
                    ("name", app.app_name.clone()),
                    ("created", app.created_at.clone()),
                ]);
            })
        }
        AppCommand::Ls => {
            let apps = client.apps().await?;
            context.print(&apps, || {
                let rows: Vec<_> = apps
                    .iter()
                    .map(|app| vec![app.app_name.clone(), app.created_at.clone()])
                    .collect();
                output::table(&["NAME", "CREATED"], &rows);
            })
        }
        AppCommand::Rm { name, force } => {
            client.delete_app(&name, force).await?;
            context.print(&serde_json::json!({"id": name, "deleted": true}), || {
                output::outln!("deleted app {name}")
            })
        }
        AppCommand::Token { name } => {
            let token = client.mint_token(&name).await?;
            context.print(&token, || {
                output::outln!("{}", token.token);
                eprintln!(
                    "(token for app {}; shown once, stored only hashed)",
                    token.app_name
                );
            })
        }
    }
}
