//! The local image store under the daemon's state directory. An import
//! unpacks each layer once, into `layers/<sha256>`, shared read-only by
//! every image and box that has it; an image is a name and its layers
//! (`refs/<sha256 of name>.json`); a box's root is an overlay of them
//! (see `bundle`). A box that uses an image holds it
//! (`users/<sha256 of name>/<container>`), so it cannot be removed
//! under the box. Every change takes the store's lock, so the CLI and
//! the daemon can share it.

mod layer;
mod source;
pub mod testing;

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Why an image could not be imported, found or removed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The source is not an image boxfence reads.
    #[error("not an image: {0}")]
    Format(String),
    /// The image uses something boxfence does not support.
    #[error("unsupported image: {0}")]
    Unsupported(String),
    /// A blob is not what its digest says.
    #[error("layer {path}: sha256 is {found}, the manifest says {expected}")]
    Digest {
        /// The blob.
        path: PathBuf,
        /// What the manifest says.
        expected: String,
        /// What it is.
        found: String,
    },
    /// Neither the source nor the caller gives a name boxes can use.
    #[error("the source names no image{}; give it a name", .0.as_ref().map(|n| format!(" boxes can use (it says `{n}`)")).unwrap_or_default())]
    Unnamed(Option<String>),
    /// No image of that name.
    #[error("no image `{0}` in this host's image store (boxfence image import)")]
    NotFound(String),
    /// Boxes use the image.
    #[error("image `{name}` is in use by {} box(es): {}; delete them first", .boxes.len(), .boxes.join(", "))]
    InUse {
        /// The image.
        name: String,
        /// The containers that use it.
        boxes: Vec<String>,
    },
}

impl ImageError {
    fn io(op: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { op, source }
    }
}

/// An image as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Its name (`busybox:latest`).
    pub name: String,
    /// The sha256 of its config.
    pub id: String,
    /// Its layers' sha256, bottom first.
    pub layers: Vec<String>,
    /// Bytes of its layer blobs as imported.
    pub size: u64,
}

/// An image ready to be a box's root: its layer directories, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its name.
    pub name: String,
    /// Its unpacked layers, bottom first.
    pub layers: Vec<PathBuf>,
}

/// The store in one directory.
#[derive(Debug)]
pub struct ImageStore {
    dir: PathBuf,
}

/// Names each import's scratch directory apart.
static SCRATCH: AtomicU64 = AtomicU64::new(0);

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl ImageStore {
    /// The store in `dir` (made when first written).
    pub fn open(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn lock(&self) -> Result<Flock<File>, ImageError> {
        std::fs::create_dir_all(&self.dir).map_err(ImageError::io("make the image store"))?;
        let file = File::create(self.dir.join(".lock")).map_err(ImageError::io("lock"))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| ImageError::io("lock")(errno.into()))
    }

    fn key(name: &str) -> String {
        hex(Sha256::digest(name.as_bytes()))
    }

    fn reference(&self, name: &str) -> PathBuf {
        self.dir
            .join("refs")
            .join(format!("{}.json", Self::key(name)))
    }

    fn users(&self, name: &str) -> PathBuf {
        self.dir.join("users").join(Self::key(name))
    }

    /// Imports the image in `source` (an OCI layout directory, an OCI
    /// archive or a docker-archive) under the name `naming` makes of the
    /// name the source gives (if any); none: refused. An image of that
    /// name in use by a box is not replaced.
    pub fn import(
        &self,
        source: &Path,
        naming: impl FnOnce(Option<&str>) -> Option<String>,
    ) -> Result<ImageInfo, ImageError> {
        let _lock = self.lock()?;
        let scratch = self.dir.join("tmp").join(format!(
            "{}-{}",
            std::process::id(),
            SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.import_locked(source, naming, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    fn import_locked(
        &self,
        source: &Path,
        naming: impl FnOnce(Option<&str>) -> Option<String>,
        scratch: &Path,
    ) -> Result<ImageInfo, ImageError> {
        std::fs::create_dir_all(scratch).map_err(ImageError::io("make scratch space"))?;
        let unpacked = if source.is_dir() {
            source.to_owned()
        } else {
            let archive = File::open(source).map_err(ImageError::io("open the archive"))?;
            let dir = scratch.join("source");
            tar::Archive::new(archive)
                .unpack(&dir)
                .map_err(ImageError::io("unpack the archive"))?;
            dir
        };
        let found = source::read(&unpacked)?;
        let name = naming(found.name.as_deref()).ok_or(ImageError::Unnamed(found.name))?;
        let holders = self.holders(&name);
        if !holders.is_empty() {
            return Err(ImageError::InUse {
                name,
                boxes: holders,
            });
        }
        let config = std::fs::read(&found.config).map_err(ImageError::io("read the config"))?;
        let mut info = ImageInfo {
            id: hex(Sha256::digest(&config)),
            name,
            layers: Vec::new(),
            size: 0,
        };
        for (blob, expected) in &found.layers {
            let (digest, size) = sha256_of(blob)?;
            if let Some(expected) = expected.as_ref().filter(|e| **e != digest) {
                return Err(ImageError::Digest {
                    path: blob.clone(),
                    expected: expected.clone(),
                    found: digest,
                });
            }
            self.unpack_layer(blob, &digest, scratch)?;
            info.layers.push(digest);
            info.size += size;
        }
        let json = serde_json::to_vec_pretty(&info).map_err(std::io::Error::other);
        let path = self.reference(&info.name);
        let written = json.and_then(|json| {
            std::fs::create_dir_all(self.dir.join("refs"))?;
            let temporary = scratch.join("ref.json");
            std::fs::write(&temporary, json)?;
            std::fs::rename(&temporary, &path)
        });
        written.map_err(ImageError::io("write the image's reference"))?;
        Ok(info)
    }

    /// Unpacks `blob` as layer `digest` unless it is there already.
    fn unpack_layer(&self, blob: &Path, digest: &str, scratch: &Path) -> Result<(), ImageError> {
        let target = self.dir.join("layers").join(digest);
        if target.is_dir() {
            return Ok(());
        }
        let partial = scratch.join(digest);
        std::fs::create_dir_all(&partial).map_err(ImageError::io("make a layer"))?;
        let file = File::open(blob).map_err(ImageError::io("open a layer"))?;
        layer::unpack(file, &partial)?;
        std::fs::create_dir_all(self.dir.join("layers")).map_err(ImageError::io("make a layer"))?;
        // Whole or not at all: a layer directory is complete once there.
        std::fs::rename(&partial, &target).map_err(ImageError::io("keep a layer"))
    }

    /// The images in the store, by name.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let mut images = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join("refs")) else {
            return Ok(images);
        };
        for entry in entries {
            let path = entry.map_err(ImageError::io("list images"))?.path();
            let text = std::fs::read(&path).map_err(ImageError::io("read an image"))?;
            let info: ImageInfo = serde_json::from_slice(&text)
                .map_err(|e| ImageError::Format(format!("{}: {e}", path.display())))?;
            images.push(info);
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// The image `name`, if the store has it.
    pub fn info(&self, name: &str) -> Result<ImageInfo, ImageError> {
        let text = match std::fs::read(self.reference(name)) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(name.to_owned()));
            }
            Err(e) => return Err(ImageError::io("read an image")(e)),
        };
        serde_json::from_slice(&text).map_err(|e| ImageError::Format(format!("{name}: {e}")))
    }

    /// Whether the store has image `name`.
    pub fn has(&self, name: &str) -> bool {
        self.reference(name).is_file()
    }

    /// Marks image `name` used by `container` and returns its layers: it
    /// cannot be removed until [`ImageStore::release`].
    pub fn hold(&self, name: &str, container: &str) -> Result<Image, ImageError> {
        let _lock = self.lock()?;
        let info = self.info(name)?;
        let users = self.users(name);
        std::fs::create_dir_all(&users)
            .and_then(|()| File::create(users.join(container)).map(drop))
            .map_err(ImageError::io("hold the image"))?;
        Ok(Image {
            name: info.name,
            layers: info
                .layers
                .iter()
                .map(|layer| self.dir.join("layers").join(layer))
                .collect(),
        })
    }

    /// Releases every image `container` holds.
    pub fn release(&self, container: &str) -> Result<(), ImageError> {
        let _lock = self.lock()?;
        let Ok(images) = std::fs::read_dir(self.dir.join("users")) else {
            return Ok(());
        };
        for image in images.flatten() {
            match std::fs::remove_file(image.path().join(container)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ImageError::io("release the image")(e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The containers that hold image `name`.
    fn holders(&self, name: &str) -> Vec<String> {
        let mut holders: Vec<String> = std::fs::read_dir(self.users(name))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        holders.sort();
        holders
    }

    /// Removes image `name` and the layers no other image has; refused
    /// while a box uses it.
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        let _lock = self.lock()?;
        let info = self.info(name)?;
        let boxes = self.holders(name);
        if !boxes.is_empty() {
            return Err(ImageError::InUse {
                name: name.to_owned(),
                boxes,
            });
        }
        std::fs::remove_file(self.reference(name)).map_err(ImageError::io("remove the image"))?;
        let _ = std::fs::remove_dir(self.users(name));
        let kept: Vec<String> = self.list()?.into_iter().flat_map(|i| i.layers).collect();
        for layer in info.layers.iter().filter(|l| !kept.contains(l)) {
            std::fs::remove_dir_all(self.dir.join("layers").join(layer))
                .map_err(ImageError::io("remove a layer"))?;
        }
        Ok(())
    }
}

/// The sha256 (hex) and size of the file at `path`.
fn sha256_of(path: &Path) -> Result<(String, u64), ImageError> {
    let mut file = File::open(path).map_err(ImageError::io("open a layer"))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 16];
    let mut size = 0;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(ImageError::io("read a layer"))?;
        if n == 0 {
            return Ok((hex(hasher.finalize()), size));
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
}
