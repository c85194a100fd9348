//! One image layer unpacked into a directory of its own, ready to be a
//! lower directory of a box's overlay: its whiteouts (`.wh.NAME`, a file
//! the layer deletes from those below) become what overlayfs reads as
//! one, a character device 0:0 named `NAME`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path};

use flate2::read::GzDecoder;
use nix::sys::stat::{Mode, SFlag, mknod};

use super::ImageError;

/// The prefix of a whiteout's name.
const WHITEOUT: &str = ".wh.";
/// An opaque whiteout: the directory hides everything below it.
const OPAQUE: &str = ".wh..wh..opq";

/// Unpacks the layer `blob` (a tar, plain or gzip-compressed) into `dir`,
/// which exists and is empty.
pub(super) fn unpack(blob: impl Read, dir: &Path) -> Result<(), ImageError> {
    let mut reader = BufReader::new(blob);
    let gzip = reader
        .fill_buf()
        .map_err(ImageError::io("read layer"))?
        .starts_with(&[0x1f, 0x8b]);
    if gzip {
        entries(GzDecoder::new(reader), dir)
    } else {
        entries(reader, dir)
    }
}

fn entries(tar: impl Read, dir: &Path) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(tar);
    archive.set_preserve_permissions(true);
    archive.set_unpack_xattrs(false);
    let io = ImageError::io("unpack layer");
    for entry in archive.entries().map_err(io)? {
        let mut entry = entry.map_err(ImageError::io("unpack layer"))?;
        let path = entry
            .path()
            .map_err(ImageError::io("unpack layer"))?
            .into_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == OPAQUE {
            return Err(ImageError::Unsupported(format!(
                "opaque whiteout {} (a layer that replaces a whole directory)",
                path.display()
            )));
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT) {
            whiteout(dir, &path.with_file_name(hidden))?;
            continue;
        }
        // Refuses paths that leave `dir` (`..`, absolute, through a link).
        entry
            .unpack_in(dir)
            .map_err(ImageError::io("unpack layer"))?;
    }
    Ok(())
}

/// Marks `path` (relative to the layer) deleted, the way overlayfs reads it.
fn whiteout(dir: &Path, path: &Path) -> Result<(), ImageError> {
    let inside = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(ImageError::Unsupported(format!(
            "whiteout outside the layer: {}",
            path.display()
        )));
    }
    let target = dir.join(path);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(ImageError::io("unpack layer"))?;
    }
    mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0)
        .map_err(|errno| ImageError::io("make whiteout")(errno.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, *data)
                .expect("append");
        }
        builder.into_inner().expect("tar")
    }

    #[test]
    fn plain_and_gzip_layers_unpack_alike() {
        let tar = tar_of(&[("etc/marker", b"one")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).expect("gzip");
        for blob in [tar.clone(), gz.finish().expect("gzip")] {
            let dir = tempfile::tempdir().expect("tempdir");
            unpack(blob.as_slice(), dir.path()).expect("unpacks");
            let read = std::fs::read(dir.path().join("etc/marker")).expect("file");
            assert_eq!(read, b"one");
        }
    }

    #[test]
    fn opaque_whiteouts_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = tar_of(&[("etc/.wh..wh..opq", b"")]);
        let error = unpack(tar.as_slice(), dir.path()).expect_err("refused");
        assert!(
            error.to_string().contains("opaque whiteout etc/"),
            "{error}"
        );
    }
}
