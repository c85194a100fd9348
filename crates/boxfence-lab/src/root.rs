//! Deciding whether a root-only test may run.

/// Whether the caller may run a test that needs root. When not root,
/// prints why `test_name` is skipped and returns false, so the test can
/// return early; but panics when `CI=true`, so CI can never pass by
/// skipping.
///
/// # Panics
///
/// When not root and the environment variable `CI` is `true`.
#[must_use]
pub fn require_root(test_name: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test_name} needs root (network namespaces), and CI=true forbids skipping it"
    );
    eprintln!("skipping {test_name}: needs root to create network namespaces");
    false
}
