//! Images for tests and benchmarks, made from the host's busybox
//! (Debian's busybox-static), never downloaded: two layers (the second,
//! gzip-compressed, deletes a file of the first with a whiteout), written
//! as an OCI layout, an OCI archive or a docker-archive. They panic on
//! failure, as test code does.

use std::path::Path;

use sha2::{Digest as _, Sha256};

/// The host's static busybox.
const BUSYBOX: &str = "/bin/busybox";
/// Its applets the tests run.
const APPLETS: [&str; 16] = [
    "sh", "ls", "cat", "echo", "id", "touch", "kill", "sleep", "ps", "grep", "wc", "tr", "nc",
    "printf", "head", "true",
];
/// A file only the image has.
pub const MARKER: &str = "/etc/image-release";
/// A file the first layer has and the second deletes.
pub const DELETED: &str = "/etc/deleted";

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    builder
        .append_data(&mut header, path, data)
        .expect("append");
}

/// The layers' blobs, bottom first.
pub fn layers() -> [Vec<u8>; 2] {
    let mut first = tar::Builder::new(Vec::new());
    let busybox = std::fs::read(BUSYBOX).expect("busybox-static is installed");
    append(&mut first, "bin/busybox", 0o755, &busybox);
    for applet in APPLETS {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        first
            .append_link(&mut header, format!("bin/{applet}"), "busybox")
            .expect("link");
    }
    append(&mut first, &DELETED[1..], 0o644, b"gone in layer 2\n");
    let mut second = tar::Builder::new(Vec::new());
    append(&mut second, &MARKER[1..], 0o644, b"boxfence test image\n");
    append(&mut second, "etc/.wh.deleted", 0o644, b"");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, &second.into_inner().expect("tar")).expect("gzip");
    [
        first.into_inner().expect("tar"),
        gzip.finish().expect("gzip"),
    ]
}

fn config(layers: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", hex(l)))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

/// Writes an OCI image layout of the test image named `name` into `dir`.
pub fn oci_layout(dir: &Path, name: &str) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("blobs");
    let blob = |bytes: &[u8], media_type: &str| {
        let digest = hex(bytes);
        std::fs::write(blobs.join(&digest), bytes).expect("blob");
        serde_json::json!({
            "mediaType": media_type, "digest": format!("sha256:{digest}"), "size": bytes.len(),
        })
    };
    let layers = layers();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": blob(&config(&layers), "application/vnd.oci.image.config.v1+json"),
        "layers": [
            blob(&layers[0], "application/vnd.oci.image.layer.v1.tar"),
            blob(&layers[1], "application/vnd.oci.image.layer.v1.tar+gzip"),
        ],
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let mut entry = blob(&manifest, "application/vnd.oci.image.manifest.v1+json");
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
}

/// Writes the test image as an OCI archive (a tar of its layout) at `path`.
pub fn oci_archive(path: &Path, name: &str) {
    let layout = path.with_extension("layout");
    oci_layout(&layout, name);
    let mut builder = tar::Builder::new(std::fs::File::create(path).expect("archive"));
    builder.append_dir_all(".", &layout).expect("tar");
    builder.finish().expect("tar");
    std::fs::remove_dir_all(&layout).expect("layout removed");
}

/// Writes the test image as a docker-archive (`docker save`) at `path`.
pub fn docker_archive(path: &Path, name: &str) {
    let layers = layers();
    let mut builder = tar::Builder::new(Vec::new());
    append(&mut builder, "config.json", 0o644, &config(&layers));
    for (n, layer) in layers.iter().enumerate() {
        append(&mut builder, &format!("l{n}/layer.tar"), 0o644, layer);
    }
    let manifest = serde_json::json!([{
        "Config": "config.json", "RepoTags": [name],
        "Layers": ["l0/layer.tar", "l1/layer.tar"],
    }]);
    append(
        &mut builder,
        "manifest.json",
        0o644,
        manifest.to_string().as_bytes(),
    );
    std::fs::write(path, builder.into_inner().expect("tar")).expect("archive");
}
