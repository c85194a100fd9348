//! The HTTPS server's self-signed certificate, made fresh for each lab.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::addresses::SERVER_ADDRS;
use crate::{LabError, exec};

/// Paths of a generated certificate and its private key.
#[derive(Debug)]
pub(crate) struct KeyPair {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// Generates a P-256 self-signed certificate in `dir` (EC: far quicker to
/// make than RSA). Its names are every server address, so a client may
/// verify it with `--cacert` instead of `-k`.
pub(crate) fn generate(dir: &Path) -> Result<KeyPair, LabError> {
    let cert = dir.join("tls-cert.pem");
    let key = dir.join("tls-key.pem");
    let san: Vec<String> = SERVER_ADDRS.iter().map(|a| format!("IP:{a}")).collect();
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=boxfence-lab"])
        .arg("-addext")
        .arg(format!("subjectAltName={}", san.join(",")))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert);
    exec::run(&mut cmd, None)?;
    Ok(KeyPair { cert, key })
}
