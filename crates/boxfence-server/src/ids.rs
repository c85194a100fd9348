//! Random identifiers and secrets.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of machine and policy ids. The data plane names a machine's
/// host interface `bf-<id>`, and Linux interface names are at most 15
/// bytes, so 12 is the most an id may have.
pub const ID_LEN: usize = 12;

/// `len` random characters of `[a-z0-9]` from the OS's CSPRNG.
pub(crate) fn random_text(len: usize) -> String {
    let mut text = String::with_capacity(len);
    let mut bytes = [0u8; 32];
    while text.len() < len {
        // getrandom(2) only fails before the kernel's pool is seeded or
        // on a broken host; there is no safe fallback for secrets.
        getrandom::fill(&mut bytes).expect("the OS random generator works");
        // Rejection sampling: 252 = 7 * 36, so bytes below it map evenly.
        text.extend(
            bytes
                .iter()
                .filter(|&&byte| byte < 252)
                .map(|&byte| char::from(ALPHABET[usize::from(byte % 36)]))
                .take(len - text.len()),
        );
    }
    text
}

/// A new machine or policy id.
pub(crate) fn new_id() -> String {
    random_text(ID_LEN)
}

/// True when `text` looks like an id this daemon generates.
pub(crate) fn is_id(text: &str) -> bool {
    text.len() == ID_LEN && text.bytes().all(|b| ALPHABET.contains(&b))
}

/// SHA-256 of `text`, lowercase hex. Tokens carry 160+ random bits, so a
/// fast hash is enough: there is nothing to brute-force.
pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
