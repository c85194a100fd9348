//! A box's size: `config.guest {cpus, memory_mb}` in the Machines API
//! shape, `guest {cpus, memoryMb}` in the Box API, read with path-named
//! errors and bounded, so a request cannot ask the host for more than a
//! box may have.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnostic::{Diagnostics, JsonPath};
use crate::reader::{ObjectReader, kind};

/// CPUs a box may be given.
pub const CPUS: RangeInclusive<u32> = 1..=64;
/// Memory a box may be given, in MiB.
pub const MEMORY_MB: RangeInclusive<u32> = 32..=262_144;

/// A box's size unless the request or the daemon's `[runtime]` says.
pub const DEFAULT: Guest = Guest {
    cpus: 1,
    memory_mb: 512,
};

/// A box's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guest {
    /// CPUs' worth of time.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
}

/// A size as asked: each part may be left to the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestRequest {
    /// CPUs, if given.
    pub cpus: Option<u32>,
    /// Memory in MiB, if given.
    pub memory_mb: Option<u32>,
}

impl GuestRequest {
    /// The size asked, `default` where nothing was.
    pub fn or(self, default: Guest) -> Guest {
        Guest {
            cpus: self.cpus.unwrap_or(default.cpus),
            memory_mb: self.memory_mb.unwrap_or(default.memory_mb),
        }
    }
}

/// Reads a guest object at `path`; `memory_key` is `memory_mb` or
/// `memoryMb` (the shape's spelling). Bad members are recorded in `out`.
pub fn read_guest(
    value: &Value,
    path: &JsonPath,
    memory_key: &str,
    out: &mut Diagnostics,
) -> Option<GuestRequest> {
    let object = ObjectReader::new(value, path, &["cpus", memory_key], out)?;
    let mut bounded = |key: &str, range: RangeInclusive<u32>| {
        let (value, path) = object.optional(key)?;
        let number = crate::reader::whole_number(value).and_then(|n| u32::try_from(n).ok());
        match number {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                let shown = match value {
                    Value::Number(n) => n.to_string(),
                    other => kind(other).to_owned(),
                };
                out.push(
                    &path,
                    format!(
                        "must be an integer from {} to {}, not {shown}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    };
    let cpus = bounded("cpus", CPUS);
    let memory_mb = bounded(memory_key, MEMORY_MB);
    Some(GuestRequest { cpus, memory_mb })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(value: Value) -> Result<GuestRequest, String> {
        let mut out = Diagnostics::default();
        let path = JsonPath::root().field("config").field("guest");
        let read = read_guest(&value, &path, "memory_mb", &mut out);
        out.finish(read).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn sizes_in_range_are_read_and_defaults_fill_the_rest() {
        let asked = read(json!({"cpus": 2})).expect("valid");
        let default = Guest {
            cpus: 1,
            memory_mb: 512,
        };
        assert_eq!(
            asked.or(default),
            Guest {
                cpus: 2,
                memory_mb: 512
            }
        );
    }

    #[test]
    fn out_of_range_names_the_field_path() {
        let error = read(json!({"cpus": 0, "memory_mb": 1 << 30})).expect_err("too small");
        assert!(error.contains("config.guest.cpus"), "{error}");
        assert!(error.contains("config.guest.memory_mb"), "{error}");
        let error = read(json!({"cpus": "two"})).expect_err("a string");
        assert!(error.contains("not a string"), "{error}");
        let error = read(json!({"gpus": 1})).expect_err("unknown");
        assert!(error.contains("config.guest.gpus"), "{error}");
    }
}
