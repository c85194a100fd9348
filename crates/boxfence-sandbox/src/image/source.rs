//! What an import source holds: an OCI image layout (a directory, or a
//! tar of one: an OCI archive) or a docker-archive (`docker save`): the
//! image's name if it has one, its config and its layers, bottom first.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ImageError;

/// The annotation naming an image in an OCI layout's index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The media types of an index (a list of manifests, one per platform).
const INDEXES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// An image found in an unpacked source.
#[derive(Debug)]
pub(super) struct Found {
    /// Its name, if the source gives one.
    pub(super) name: Option<String>,
    /// Its config blob.
    pub(super) config: PathBuf,
    /// Its layer blobs, bottom first, each with the sha256 (hex) the
    /// source says it has, where it says.
    pub(super) layers: Vec<(PathBuf, Option<String>)>,
}

/// Reads the image in `dir`: an OCI layout (`index.json`) or a
/// docker-archive's contents (`manifest.json`).
pub(super) fn read(dir: &Path) -> Result<Found, ImageError> {
    if dir.join("index.json").is_file() {
        oci_layout(dir)
    } else if dir.join("manifest.json").is_file() {
        docker_archive(dir)
    } else {
        Err(ImageError::Format(
            "neither an OCI layout (index.json) nor a docker-archive (manifest.json)".into(),
        ))
    }
}

fn json(path: &Path) -> Result<Value, ImageError> {
    let text = std::fs::read(path).map_err(ImageError::io("read"))?;
    serde_json::from_slice(&text)
        .map_err(|e| ImageError::Format(format!("{}: {e}", path.display())))
}

fn field<'a>(value: &'a Value, key: &str, what: &str) -> Result<&'a Value, ImageError> {
    value
        .get(key)
        .ok_or_else(|| ImageError::Format(format!("{what} has no {key}")))
}

/// The blob a descriptor names, and its sha256.
fn blob(dir: &Path, descriptor: &Value) -> Result<(PathBuf, String), ImageError> {
    let digest = field(descriptor, "digest", "a descriptor")?
        .as_str()
        .unwrap_or_default();
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ImageError::Format(format!("digest `{digest}` is not sha256")))?;
    Ok((dir.join("blobs/sha256").join(hex), hex.to_owned()))
}

fn oci_layout(dir: &Path) -> Result<Found, ImageError> {
    let index = json(&dir.join("index.json"))?;
    let mut entry = first_manifest(&index)?.clone();
    let name = entry["annotations"][REF_NAME].as_str().map(str::to_owned);
    let mut manifest = json(&blob(dir, &entry)?.0)?;
    // A multi-platform image: the manifest of this host's platform.
    if INDEXES.contains(&manifest["mediaType"].as_str().unwrap_or_default()) {
        entry = first_manifest(&manifest)?.clone();
        manifest = json(&blob(dir, &entry)?.0)?;
    }
    let config = blob(dir, field(&manifest, "config", "the manifest")?)?.0;
    let layers = field(&manifest, "layers", "the manifest")?
        .as_array()
        .into_iter()
        .flatten()
        .map(|layer| blob(dir, layer).map(|(path, hex)| (path, Some(hex))))
        .collect::<Result<_, _>>()?;
    Ok(Found {
        name,
        config,
        layers,
    })
}

/// The index's manifest for this host's architecture, or its only one.
fn first_manifest(index: &Value) -> Result<&Value, ImageError> {
    let manifests = field(index, "manifests", "the index")?
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let ours = |m: &&Value| {
        let platform = &m["platform"];
        platform.is_null() || (platform["os"] == "linux" && platform["architecture"] == arch)
    };
    manifests
        .iter()
        .find(ours)
        .ok_or_else(|| ImageError::Format(format!("no manifest for linux/{arch}")))
}

fn docker_archive(dir: &Path) -> Result<Found, ImageError> {
    let manifest = json(&dir.join("manifest.json"))?;
    let image = manifest
        .get(0)
        .ok_or_else(|| ImageError::Format("manifest.json lists no image".into()))?;
    let path = |value: &Value| -> Result<PathBuf, ImageError> {
        let relative = Path::new(value.as_str().unwrap_or_default());
        let inside = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if relative.as_os_str().is_empty() || !inside {
            return Err(ImageError::Format(format!(
                "manifest.json names `{}`",
                relative.display()
            )));
        }
        Ok(dir.join(relative))
    };
    let layers = field(image, "Layers", "manifest.json")?
        .as_array()
        .into_iter()
        .flatten()
        .map(|layer| path(layer).map(|p| (p, None)))
        .collect::<Result<_, _>>()?;
    Ok(Found {
        name: image["RepoTags"][0].as_str().map(str::to_owned),
        config: path(field(image, "Config", "manifest.json")?)?,
        layers,
    })
}
