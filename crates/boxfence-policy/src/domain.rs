//! Domain names and the patterns that match them (DESIGN.md 1.4).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest name in presentation form, without the trailing dot (RFC 1035).
const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// Why a domain pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The pattern is empty.
    #[error("domain must not be empty")]
    Empty,
    /// `*` alone would match every name.
    #[error("`*` alone is not allowed; use a `*.suffix` pattern or mode allow-all")]
    BareWildcard,
    /// `*` anywhere but as the whole first label.
    #[error("`{0}`: `*` is only allowed as the whole first label (`*.example.com`)")]
    MisplacedWildcard(String),
    /// Two dots in a row, or a leading dot.
    #[error("`{0}` has an empty label")]
    EmptyLabel(String),
    /// A label longer than 63 bytes.
    #[error("`{0}` has a label longer than 63 bytes")]
    LabelTooLong(String),
    /// A name longer than 253 bytes.
    #[error("`{0}` is longer than 253 bytes")]
    NameTooLong(String),
    /// A character that cannot appear in a host name.
    #[error("`{0}` has a character other than letters, digits, '-' and '_'")]
    InvalidCharacter(String),
    /// A non-ASCII name that has no punycode form.
    #[error("`{0}` is not a valid internationalised domain name")]
    Idna(String),
}

/// A domain name in canonical form: lowercase ASCII (punycode for IDNs),
/// no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(Box<str>);

impl DomainName {
    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DomainName {
    type Err = DomainError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = canonical(text).ok_or_else(|| DomainError::Idna(text.to_owned()))?;
        validate_name(&name, text)?;
        Ok(Self(name.into()))
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An allowed-domain pattern: an exact name, or `*.suffix` that matches any
/// name with one or more labels before `suffix` and never `suffix` itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainPattern {
    /// Matches only this name.
    Exact(DomainName),
    /// Matches names strictly under this suffix.
    Wildcard(DomainName),
}

impl DomainPattern {
    /// True when the canonical `name` is matched by this pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => exact.as_str() == name,
            Self::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| {
                    !head.is_empty() && head.split('.').all(|label| !label.is_empty())
                }),
        }
    }
}

impl FromStr for DomainPattern {
    type Err = DomainError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.strip_prefix("*.") {
            _ if text == "*" => Err(DomainError::BareWildcard),
            Some(suffix) if !suffix.contains('*') => suffix
                .parse()
                .map(Self::Wildcard)
                .map_err(|error| with_input(error, text)),
            _ if text.contains('*') => Err(DomainError::MisplacedWildcard(text.to_owned())),
            _ => text.parse().map(Self::Exact),
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => name.fmt(f),
            Self::Wildcard(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl Serialize for DomainPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DomainPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The canonical form of a name as a resolver or a flow gives it: one
/// trailing dot dropped, ASCII lowercased, IDNs in punycode. Borrows when
/// the name already is canonical, which is the common case on the hot path.
/// `None` for a non-ASCII name without a punycode form.
pub fn canonical(name: &str) -> Option<Cow<'_, str>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if !name.is_ascii() {
        return idna::domain_to_ascii(name).ok().map(Cow::Owned);
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

fn validate_name(name: &str, given: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::NameTooLong(given.to_owned()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel(given.to_owned()));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(DomainError::LabelTooLong(given.to_owned()));
        }
        if label.contains('*') {
            return Err(DomainError::MisplacedWildcard(given.to_owned()));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DomainError::InvalidCharacter(given.to_owned()));
        }
    }
    Ok(())
}

/// Names the whole pattern, not just its suffix, in an error.
fn with_input(error: DomainError, pattern: &str) -> DomainError {
    let pattern = pattern.to_owned();
    match error {
        DomainError::Empty => DomainError::EmptyLabel(pattern),
        DomainError::BareWildcard | DomainError::MisplacedWildcard(_) => {
            DomainError::MisplacedWildcard(pattern)
        }
        DomainError::EmptyLabel(_) => DomainError::EmptyLabel(pattern),
        DomainError::LabelTooLong(_) => DomainError::LabelTooLong(pattern),
        DomainError::NameTooLong(_) => DomainError::NameTooLong(pattern),
        DomainError::InvalidCharacter(_) => DomainError::InvalidCharacter(pattern),
        DomainError::Idna(_) => DomainError::Idna(pattern),
    }
}
