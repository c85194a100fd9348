//! Boxes from images: the store imports each format, shares layers,
//! refuses to remove an image in use or to use one it does not have; a
//! box from an image runs the image's programs and sees only its files.
//! As root (whiteouts are device files; boxes need root), with images
//! built from the host's busybox.

use std::path::Path;

use boxfence_sandbox::{ImageError, ImageStore, Limits, RuntimeKind};

mod support;
use boxfence_sandbox::image::testing::{self as images, DELETED, MARKER};
use support::{TestBox, text};

const LIMITS: Limits = Limits {
    cpus: 1,
    memory_mb: 64,
    pids_max: 64,
    tmp_mb: 8,
};

/// The name the test image is imported as.
const NAME: &str = "busybox:test";

/// The name the source gives.
fn own_name(found: Option<&str>) -> Option<String> {
    found.map(str::to_owned)
}

/// A box from the test image, imported from what `write` makes of it.
fn box_from(kind: RuntimeKind, zone: u16, write: fn(&Path, &str)) -> Option<TestBox> {
    TestBox::with_image(kind, zone, LIMITS, |sandboxes| {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("image");
        write(&source, NAME);
        sandboxes
            .images()
            .import(&source, own_name)
            .expect("imported");
        Some(NAME.to_owned())
    })
}

fn as_root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    assert!(
        root || std::env::var_os("CI").is_none(),
        "image tests need root"
    );
    root
}

per_runtime!(
    crun => boxfence_sandbox::RuntimeKind::Crun,
    runc => boxfence_sandbox::RuntimeKind::Runc;
    [a_box_from_an_image_runs_its_programs_and_sees_only_its_files]
);

fn a_box_from_an_image_runs_its_programs_and_sees_only_its_files(kind: RuntimeKind) {
    let Some(b) = box_from(kind, 11, images::oci_layout) else {
        return;
    };
    let root = b.sh("ls -A /; echo; ls /etc; cat /etc/image-release; busybox | head -1");
    let out = text(&root.stdout);
    let mut parts = out.split("\n\n");
    let top: Vec<&str> = parts.next().unwrap_or_default().lines().collect();
    // The image's directories and the box's mount points, nothing else.
    assert_eq!(
        top,
        ["bin", "dev", "etc", "proc", "run", "tmp", "var"],
        "{root:?}"
    );
    let rest = parts.next().unwrap_or_default();
    assert!(rest.contains("image-release"), "{root:?}");
    assert!(rest.contains("resolv.conf"), "the box's resolver: {root:?}");
    assert!(
        !rest.contains("deleted"),
        "the second layer deleted it: {root:?}"
    );
    assert!(rest.contains("boxfence test image"), "{root:?}");
    assert!(
        rest.contains("BusyBox"),
        "the image's busybox runs: {root:?}"
    );
    let host = b.sh(&format!(
        "ls /usr /lib; cat {DELETED}; touch /bin/x; touch {MARKER}"
    ));
    assert_ne!(host.exit_code, 0);
    let errors = text(&host.stderr);
    assert!(
        errors.contains("/usr") && errors.contains("/lib"),
        "{host:?}"
    );
    assert_eq!(
        errors.matches("Read-only file system").count(),
        2,
        "{host:?}"
    );
    let tmp = b.sh("echo scratch > /tmp/x && cat /tmp/x");
    assert_eq!(text(&tmp.stdout), "scratch\n", "{tmp:?}");
}

#[test]
fn each_format_imports_and_layers_are_shared() {
    if !as_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("store"));
    let layout = dir.path().join("layout");
    images::oci_layout(&layout, "busybox:layout");
    images::oci_archive(&dir.path().join("oci.tar"), "busybox:oci");
    images::docker_archive(&dir.path().join("docker.tar"), "busybox:docker");
    let from_layout = store.import(&layout, own_name).expect("layout");
    let from_oci = store
        .import(&dir.path().join("oci.tar"), own_name)
        .expect("oci archive");
    let from_docker = store
        .import(&dir.path().join("docker.tar"), |_| Some("renamed:1".into()))
        .expect("docker-archive");
    assert_eq!(from_layout.layers, from_oci.layers);
    assert_eq!(
        from_layout.layers, from_docker.layers,
        "same content, same layers"
    );
    let names: Vec<String> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["busybox:layout", "busybox:oci", "renamed:1"]);
    let layers = || {
        std::fs::read_dir(dir.path().join("store/layers"))
            .expect("layers")
            .count()
    };
    assert_eq!(layers(), 2, "each layer unpacked once");
    store.remove("busybox:layout").expect("removed");
    store.remove("busybox:oci").expect("removed");
    assert_eq!(layers(), 2, "still used by renamed:1");
    store.remove("renamed:1").expect("removed");
    assert_eq!(layers(), 0, "no image has them any more");
    let missing = store.remove("renamed:1").expect_err("gone");
    assert!(
        matches!(missing, ImageError::NotFound(ref n) if n == "renamed:1"),
        "{missing}"
    );
}

#[test]
fn a_corrupt_layer_is_refused() {
    if !as_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    images::oci_layout(dir.path(), NAME);
    let blobs = dir.path().join("blobs/sha256");
    for blob in std::fs::read_dir(&blobs).expect("blobs").flatten() {
        let bytes = std::fs::read(blob.path()).expect("blob");
        if bytes.len() > 1 << 20 {
            std::fs::write(blob.path(), &bytes[..bytes.len() - 1]).expect("truncate");
        }
    }
    let store = ImageStore::open(&dir.path().join("store"));
    let error = store.import(dir.path(), own_name).expect_err("corrupt");
    assert!(error.to_string().contains("the manifest says"), "{error}");
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn an_image_in_use_stays_and_an_unknown_one_is_named() {
    let Some(b) = box_from(RuntimeKind::Crun, 12, images::docker_archive) else {
        return;
    };
    let images = b.sandboxes.images();
    let error = images.remove(NAME).expect_err("in use");
    assert!(
        error
            .to_string()
            .contains(&format!("in use by 1 box(es): {}", b.id)),
        "{error}"
    );
    assert_eq!(text(&b.sh("echo alive").stdout), "alive\n");
    let unknown = images.hold("nope:1", "other").expect_err("unknown");
    assert_eq!(
        unknown.to_string(),
        "no image `nope:1` in this host's image store (boxfence image import)"
    );
    b.sandboxes.delete(&b.id).expect("deleted");
    images.remove(NAME).expect("free once the box is gone");
}
