//! `boxfence image`: the host's image store, which the daemon and
//! `boxfence run` make boxes' roots from. It works on the store in the
//! daemon's state directory directly (as root, on the daemon's host): an
//! import reads a local file, and the store's lock keeps it consistent
//! with a running daemon.

use std::path::PathBuf;

use boxfence_policy::image::{RULE, normalize};
use boxfence_sandbox::{ImageInfo, ImageStore};

use crate::CliError;
use crate::config::ConfigFile;
use crate::output;

/// `boxfence image ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ImageCommand {
    /// Import an image: an OCI archive, an OCI layout directory or a
    /// docker-archive (`docker save`). Its layers are unpacked once.
    Import {
        /// The archive or directory.
        source: PathBuf,
        /// Its name [default: the name the source gives].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the images.
    Ls {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an image (refused while a box uses it) and the layers no
    /// other image has.
    Rm {
        /// Its name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Which store.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// The daemon's config file (its `[network] state_dir` holds the
    /// store).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
}

impl StoreArgs {
    fn open(&self) -> Result<ImageStore, CliError> {
        let file = match &self.config {
            Some(path) => ConfigFile::read(path)?,
            None => ConfigFile::default(),
        };
        let config = file.resolve(ConfigFile::default())?;
        let dir = config
            .runtime
            .images
            .ok_or_else(|| CliError::Io("the configuration names no image store".into()))?;
        Ok(ImageStore::open(&dir))
    }
}

fn name(given: &str) -> Result<String, CliError> {
    normalize(given).ok_or_else(|| CliError::Usage(format!("image name `{given}`: must be {RULE}")))
}

/// Runs an image command.
pub(crate) fn run(command: ImageCommand, json: bool) -> Result<(), CliError> {
    let failed = |e: boxfence_sandbox::ImageError| CliError::Io(e.to_string());
    match command {
        ImageCommand::Import {
            source,
            name: given,
            store,
        } => {
            let given = given.as_deref().map(name).transpose()?;
            // The given name, or the source's if boxes can name it.
            let naming = |found: Option<&str>| given.or_else(|| found.and_then(normalize));
            let info = store.open()?.import(&source, naming).map_err(failed)?;
            show(&[info], json)
        }
        ImageCommand::Ls { store } => show(&store.open()?.list().map_err(failed)?, json),
        ImageCommand::Rm { name: given, store } => {
            store.open()?.remove(&name(&given)?).map_err(failed)
        }
    }
}

fn show(images: &[ImageInfo], json: bool) -> Result<(), CliError> {
    if json {
        return output::json(&images);
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .map(|image| {
            vec![
                image.name.clone(),
                image.id.chars().take(12).collect(),
                image.layers.len().to_string(),
                format!("{:.1} MiB", image.size as f64 / f64::from(1 << 20)),
            ]
        })
        .collect();
    output::table(&["NAME", "ID", "LAYERS", "SIZE"], &rows);
    Ok(())
}
