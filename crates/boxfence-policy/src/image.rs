//! A box's image: `config.image` in the Machines API shape, `image` in
//! the Box API, and the name `boxfence image` commands take. A reference
//! such as `busybox`, `busybox:1.36` or `registry.example/team/app:v2`;
//! without a tag it means `:latest`, as container tools have it.

/// Longest reference accepted.
pub const MAX_LEN: usize = 255;

/// What a valid reference looks like, for error messages.
pub const RULE: &str = "an image reference (a-z 0-9 first, then a-z A-Z 0-9 . _ - / : @; at most 255 characters), e.g. busybox:1.36";

/// `reference` in its stored form (`:latest` added where it names no tag
/// or digest), or `None` when it is not a valid reference.
pub fn normalize(reference: &str) -> Option<String> {
    let valid = reference.len() <= MAX_LEN
        && reference
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
        && !reference.ends_with([':', '/', '@'])
        && !reference.contains("//");
    if !valid {
        return None;
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if last.contains(':') || reference.contains('@') {
        Some(reference.to_owned())
    } else if reference.len() + ":latest".len() <= MAX_LEN {
        Some(format!("{reference}:latest"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_default_to_latest_and_bad_references_are_refused() {
        assert_eq!(normalize("busybox").as_deref(), Some("busybox:latest"));
        assert_eq!(normalize("busybox:1.36").as_deref(), Some("busybox:1.36"));
        assert_eq!(
            normalize("localhost:5000/team/app").as_deref(),
            Some("localhost:5000/team/app:latest")
        );
        for bad in [
            "",
            "Busybox",
            "-x",
            "a b",
            "x:",
            "a//b",
            "../x",
            &"a".repeat(256),
        ] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }
}
