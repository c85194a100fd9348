//! Findings about an input, each tied to the JSON path it concerns.
//!
//! Validation collects every problem of a request before answering, so a
//! user fixes them all in one round trip instead of one per attempt.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One finding (an error or a warning) about one place in a JSON document.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// Where, e.g. `rules[0].ports[1].port`; empty for the document itself.
    pub path: String,
    /// What is wrong there and which rule it breaks.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// An input broke one or more rules; every problem found is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", join(.problems))]
pub struct ValidationError {
    /// All problems, in document order.
    pub problems: Vec<Diagnostic>,
}

fn join(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A JSON path under construction (`rules[0].ports[1]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonPath(String);

impl JsonPath {
    /// The document itself.
    pub fn root() -> Self {
        Self::default()
    }

    /// The member `name` of the object at this path.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The element `index` of the array at this path.
    pub fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects diagnostics while a document is read.
#[derive(Debug, Default)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    /// Records a finding at `path`.
    pub fn push(&mut self, path: &JsonPath, message: impl Into<String>) {
        self.0.push(Diagnostic {
            path: path.0.clone(),
            message: message.into(),
        });
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The findings recorded so far.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }

    /// `Ok(value)` when nothing was recorded and the value was built,
    /// the collected problems otherwise.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ValidationError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ if self.0.is_empty() => Err(ValidationError {
                problems: vec![Diagnostic {
                    path: String::new(),
                    message: "invalid document".into(),
                }],
            }),
            _ => Err(ValidationError { problems: self.0 }),
        }
    }
}
