//! Typed reads from a `serde_json::Value` that record a diagnostic instead
//! of stopping, so one pass over a document finds every problem in it.

use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostics, JsonPath};

/// Most entries any list or map of a request may hold, so that a request
/// cannot make the daemon allocate without bound.
pub const MAX_LIST_ENTRIES: usize = 10_000;

/// An object whose members are read by name; unknown members are reported
/// when the reader is created. Request readers outside this crate (the
/// server's bodies) use it too, so every document reports alike.
#[derive(Debug)]
pub struct ObjectReader<'a> {
    map: &'a Map<String, Value>,
    path: JsonPath,
}

impl<'a> ObjectReader<'a> {
    /// Reads `value` as an object with only the members in `known`.
    pub fn new(
        value: &'a Value,
        path: &JsonPath,
        known: &[&str],
        out: &mut Diagnostics,
    ) -> Option<Self> {
        let Value::Object(map) = value else {
            out.push(path, format!("must be an object, not {}", kind(value)));
            return None;
        };
        for key in map.keys().filter(|key| !known.contains(&key.as_str())) {
            out.push(
                &path.field(key),
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
        Some(Self {
            map,
            path: path.clone(),
        })
    }

    /// The member `key`, treating `null` as absent.
    pub fn optional(&self, key: &str) -> Option<(&'a Value, JsonPath)> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some((value, self.path.field(key))),
        }
    }

    /// The member `key`, recording "required" when it is absent.
    pub fn required(&self, key: &str, out: &mut Diagnostics) -> Option<(&'a Value, JsonPath)> {
        let found = self.optional(key);
        if found.is_none() {
            out.push(&self.path.field(key), "required");
        }
        found
    }
}

impl ObjectReader<'_> {
    /// The member `key` as a string that `valid` accepts; otherwise a
    /// diagnostic saying it must be `rule`.
    pub fn string(
        &self,
        key: &str,
        valid: fn(&str) -> bool,
        rule: &str,
        out: &mut Diagnostics,
    ) -> Option<String> {
        let (value, path) = self.optional(key)?;
        match value.as_str() {
            Some(text) if valid(text) => Some(text.to_owned()),
            Some(_) => {
                out.push(&path, format!("must be {rule}"));
                None
            }
            None => {
                out.push(&path, format!("must be a string, not {}", kind(value)));
                None
            }
        }
    }
}

/// A short name of a JSON value's type for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn string<'a>(
    value: &'a Value,
    path: &JsonPath,
    out: &mut Diagnostics,
) -> Option<&'a str> {
    match value {
        Value::String(text) => Some(text),
        other => {
            out.push(path, format!("must be a string, not {}", kind(other)));
            None
        }
    }
}

/// A JSON number that is a whole number not below 0, as JSON Schema's
/// `integer` counts them (`443.0` too).
pub(crate) fn whole_number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(n))
            .map(|n| n as u64)
    })
}

pub(crate) fn boolean(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        other => {
            out.push(path, format!("must be true or false, not {}", kind(other)));
            None
        }
    }
}

/// A list of at most [`MAX_LIST_ENTRIES`] entries; `[]` is refused when
/// `empty_hint` says why an empty list would be a mistake.
pub(crate) fn list<'a>(
    value: &'a Value,
    path: &JsonPath,
    empty_hint: Option<&str>,
    out: &mut Diagnostics,
) -> Option<&'a [Value]> {
    let Value::Array(items) = value else {
        out.push(path, format!("must be an array, not {}", kind(value)));
        return None;
    };
    if items.len() > MAX_LIST_ENTRIES {
        out.push(
            path,
            format!(
                "has {} entries; at most {MAX_LIST_ENTRIES} are allowed",
                items.len()
            ),
        );
        return None;
    }
    if let (true, Some(hint)) = (items.is_empty(), empty_hint) {
        out.push(path, format!("must not be empty; {hint}"));
        return None;
    }
    Some(items)
}

/// Reads every entry of a list with `entry`, keeping those that parse.
pub(crate) fn each<T>(
    items: &[Value],
    path: &JsonPath,
    out: &mut Diagnostics,
    mut entry: impl FnMut(&Value, &JsonPath, &mut Diagnostics) -> Option<T>,
) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| entry(item, &path.index(index), out))
        .collect()
}

/// A list of strings, each parsed by `parse` whose error text becomes the
/// diagnostic of that entry.
pub(crate) fn parsed_strings<T, E: std::fmt::Display>(
    value: &Value,
    path: &JsonPath,
    empty_hint: Option<&str>,
    out: &mut Diagnostics,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Option<Vec<T>> {
    let items = list(value, path, empty_hint, out)?;
    Some(each(items, path, out, |item, path, out| {
        let text = string(item, path, out)?;
        parse(text)
            .map_err(|error| out.push(path, error.to_string()))
            .ok()
    }))
}

/// A name or id: 1 to 128 characters of letters, digits, `.`, `_` and `-`.
pub(crate) fn identifier<'a>(
    value: &'a Value,
    path: &JsonPath,
    out: &mut Diagnostics,
) -> Option<&'a str> {
    let text = string(value, path, out)?;
    let valid = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Some(text)
    } else {
        out.push(
            path,
            "must be 1-128 characters of letters, digits, '.', '_' and '-'",
        );
        None
    }
}

/// Signature of the functions that read one type from a document.
pub(crate) type ReadFn<T> = fn(&Value, &JsonPath, &mut Diagnostics) -> Option<T>;

/// Reads a whole document with `read`, returning every problem found.
pub(crate) fn read_document<T>(
    value: &Value,
    read: ReadFn<T>,
) -> Result<T, crate::ValidationError> {
    let mut out = Diagnostics::default();
    let parsed = read(value, &JsonPath::root(), &mut out);
    out.finish(parsed)
}

/// Implements `Deserialize` through the validating reader, so that no
/// unvalidated value of the type can exist.
pub(crate) fn deserialize_validated<'de, D, T>(
    deserializer: D,
    read: ReadFn<T>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize as _;
    let value = Value::deserialize(deserializer)?;
    read_document(&value, read).map_err(serde::de::Error::custom)
}
