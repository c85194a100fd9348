//! The root filesystem of a box without an image: a read-only view of the
//! host's programs and libraries (`/usr`, `/bin`, `/sbin`, `/lib*`) and of
//! the few `/etc` entries programs need to run, resolve names and check
//! certificates, and nothing else of the host: no `/home`, `/root`,
//! `/srv`, `/var`, `/opt`, `/mnt`, no other `/etc` file (passwd, shadow,
//! ssh keys, the host's hosts file), no unix socket. The mount points are
//! made here, in the bundle's own `rootfs` directory, because a runtime
//! makes them from inside the box's user namespace, where the bundle
//! (owned by the host's root) is not writable.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::spec::Mount;

/// Host directories shown read-only (a symlink, as in a merged /usr,
/// stays a symlink).
const SYSTEM_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// `/etc` entries shown read-only, where the host has them: the dynamic
/// loader's configuration, Debian's alternatives (many `/usr/bin` links
/// point there), name service and address selection, certificates,
/// time zone, and files programs read to know the system.
const ETC_ALLOWED: [&str; 20] = [
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "services",
    "protocols",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "localtime",
    "timezone",
    "mime.types",
    "os-release",
    "debian_version",
    "bash.bashrc",
    "profile",
];

/// Files boxfence writes for the box instead of showing the host's.
#[derive(Debug, Clone)]
pub struct GeneratedEtc {
    /// /etc/resolv.conf: the box's resolver.
    pub resolv_conf: Vec<u8>,
    /// /etc/hostname and the name /etc/hosts gives 127.0.1.1.
    pub hostname: String,
}

/// Writes the skeleton of the default root into `rootfs` (empty
/// directories, symlinks and mount-point files) and the generated /etc
/// files into `files`; returns the mounts that fill it, to be mounted
/// before the runtime makes `rootfs` read-only.
pub fn prepare(rootfs: &Path, files: &Path, etc: &GeneratedEtc) -> std::io::Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    std::fs::create_dir_all(rootfs)?;
    std::fs::create_dir_all(files)?;
    for dir in SYSTEM_DIRS {
        show(
            Path::new("/").join(dir).as_path(),
            rootfs,
            &format!("/{dir}"),
            &mut mounts,
        )?;
    }
    std::fs::create_dir_all(rootfs.join("etc"))?;
    for entry in ETC_ALLOWED {
        let host = Path::new("/etc").join(entry);
        show(&host, rootfs, &format!("/etc/{entry}"), &mut mounts)?;
    }
    for (name, text) in generated(etc) {
        let source = files.join(name);
        std::fs::write(&source, text)?;
        let destination = format!("/etc/{name}");
        touch(&rootfs.join(&destination[1..]))?;
        mounts.push(read_only_bind(&source.to_string_lossy(), &destination));
    }
    for dir in MOUNT_POINTS {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    Ok(mounts)
}

/// Mount points every box root has (its kernel filesystems and scratch
/// space are mounted there).
const MOUNT_POINTS: [&str; 6] = ["proc", "dev", "tmp", "run", "var/tmp", "etc"];

/// The root of a box with an image: a read-only overlay at `rootfs` of
/// the image's `layers` (bottom first) under `top`, the box's own layer,
/// which holds the mount points and the generated resolv.conf, hostname
/// and hosts (the image keeps its own users and groups). Nothing is
/// written to the shared layers; the box writes only to its tmpfs.
pub fn prepare_image(
    rootfs: &Path,
    top: &Path,
    layers: &[PathBuf],
    etc: &GeneratedEtc,
) -> std::io::Result<()> {
    for dir in MOUNT_POINTS {
        std::fs::create_dir_all(top.join(dir))?;
    }
    for (name, text) in generated(etc).into_iter().take(3) {
        std::fs::write(top.join("etc").join(name), text)?;
    }
    std::fs::create_dir_all(rootfs)?;
    let mut lower = top.to_string_lossy().into_owned();
    for layer in layers.iter().rev() {
        let layer = layer.to_string_lossy();
        // Overlay's option syntax has no escape for these.
        if layer.contains([',', ':']) {
            return Err(std::io::Error::other(format!("layer path {layer}")));
        }
        lower.push(':');
        lower.push_str(&layer);
    }
    mount(
        Some("overlay"),
        rootfs,
        Some("overlay"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("lowerdir={lower}").as_str()),
    )
    .map_err(std::io::Error::from)
}

/// Unmounts a box root's overlay, if it has one.
pub fn unmount(rootfs: &Path) -> std::io::Result<()> {
    match umount2(rootfs, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

/// Shows host `path` at `destination`: a symlink as the same symlink, a
/// directory or file as a read-only bind mount; nothing if absent.
fn show(
    path: &Path,
    rootfs: &Path,
    destination: &str,
    mounts: &mut Vec<Mount>,
) -> std::io::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let inside = rootfs.join(&destination[1..]);
    if let Some(parent) = inside.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        let _ = std::fs::remove_file(&inside);
        return symlink(std::fs::read_link(path)?, &inside);
    }
    if meta.is_dir() {
        std::fs::create_dir_all(&inside)?;
    } else {
        touch(&inside)?;
    }
    mounts.push(read_only_bind(&path.to_string_lossy(), destination));
    Ok(())
}

fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
}

/// A read-only, recursive bind mount without setuid or device files.
pub fn read_only_bind(source: &str, destination: &str) -> Mount {
    Mount {
        destination: destination.to_owned(),
        kind: "bind".into(),
        source: source.to_owned(),
        options: ["rbind", "ro", "nosuid", "nodev"]
            .map(str::to_owned)
            .to_vec(),
    }
}

/// The /etc files written for the box: its resolver, its own name, and
/// (for the default root only: the first three are an image box's) a
/// passwd and group naming only root and nobody (the host's users stay
/// unknown to it).
fn generated(etc: &GeneratedEtc) -> [(&'static str, Vec<u8>); 5] {
    let name = &etc.hostname;
    [
        ("resolv.conf", etc.resolv_conf.clone()),
        ("hostname", format!("{name}\n").into_bytes()),
        (
            "hosts",
            format!("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 {name}\n").into_bytes(),
        ),
        (
            "passwd",
            b"root:x:0:0:root:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                .to_vec(),
        ),
        ("group", b"root:x:0:\nnogroup:x:65534:\n".to_vec()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_system_dirs_and_allowed_etc_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let etc = GeneratedEtc {
            resolv_conf: b"nameserver 10.0.0.1\n".to_vec(),
            hostname: "b1".into(),
        };
        let mounts =
            prepare(&dir.path().join("rootfs"), &dir.path().join("files"), &etc).expect("prepared");
        let destinations: Vec<&str> = mounts.iter().map(|m| m.destination.as_str()).collect();
        for hidden in [
            "/home",
            "/root",
            "/srv",
            "/var",
            "/opt",
            "/mnt",
            "/etc/shadow",
        ] {
            assert!(
                !destinations
                    .iter()
                    .any(|d| d == &hidden || d.starts_with(&format!("{hidden}/"))),
                "{hidden} is not shown: {destinations:?}"
            );
        }
        assert!(destinations.contains(&"/usr"), "{destinations:?}");
        assert!(
            destinations.contains(&"/etc/resolv.conf"),
            "{destinations:?}"
        );
        assert!(mounts.iter().all(|m| m.options.contains(&"ro".to_owned())));
        let passwd = std::fs::read_to_string(dir.path().join("files/passwd")).expect("passwd");
        assert_eq!(passwd.lines().count(), 2, "{passwd}");
    }
}
