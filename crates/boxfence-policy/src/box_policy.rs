//! Box policies: the per-box modes of the box API (DESIGN.md 1.4).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::blocked::AlwaysBlocked;
use crate::cidr::Cidr;
use crate::diagnostic::{Diagnostic, Diagnostics, JsonPath, ValidationError};
use crate::domain::DomainPattern;
use crate::reader::{self, ObjectReader, deserialize_validated, parsed_strings, string};

/// `{ "mode": "allow-all" | "deny-all" }` or `{ "mode": "custom", … }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BoxPolicy {
    /// No restriction from this layer (the default).
    #[default]
    AllowAll,
    /// The box is offline: no egress, no unsolicited ingress, no DNS.
    DenyAll,
    /// Allowed domains and CIDRs, and denied CIDRs.
    Custom(CustomPolicy),
}

/// The lists of a `custom` box policy; at least one is non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomPolicy {
    /// Names whose resolved addresses the box may reach.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<DomainPattern>,
    /// Destination ranges the box may reach.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_cidrs: Vec<Cidr>,
    /// Destination ranges the box may never reach; beat every allow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_cidrs: Vec<Cidr>,
}

impl CustomPolicy {
    /// True when an allow list is given, which makes the layer default deny.
    pub fn has_allow_lists(&self) -> bool {
        !self.allowed_domains.is_empty() || !self.allowed_cidrs.is_empty()
    }
}

const FIELDS: [&str; 4] = ["mode", "allowedDomains", "allowedCidrs", "deniedCidrs"];

impl BoxPolicy {
    /// Parses and validates a policy, reporting every problem.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        reader::read_document(value, Self::read)
    }

    /// The `mode` as the API names it.
    pub fn mode(&self) -> &'static str {
        match self {
            Self::AllowAll => "allow-all",
            Self::DenyAll => "deny-all",
            Self::Custom(_) => "custom",
        }
    }

    /// Entries inside always-blocked ranges: accepted, but they can have no
    /// effect, and the answer says so.
    pub fn warnings(&self, blocked: &AlwaysBlocked) -> Vec<Diagnostic> {
        let mut out = Diagnostics::default();
        if let Self::Custom(custom) = self {
            let root = JsonPath::root();
            blocked.warn_about(&custom.allowed_cidrs, &root.field("allowedCidrs"), &mut out);
            blocked.warn_about(&custom.denied_cidrs, &root.field("deniedCidrs"), &mut out);
        }
        out.into_vec()
    }

    /// Reads a box policy at `path` (also inside a larger request).
    pub fn read(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<Self> {
        let object = ObjectReader::new(value, path, &FIELDS, out)?;
        let (mode_value, mode_path) = object.required("mode", out)?;
        let mode = string(mode_value, &mode_path, out)?;
        let lists = &FIELDS[1..];
        match mode {
            "allow-all" | "deny-all" => {
                for field in lists.iter().filter(|f| object.optional(f).is_some()) {
                    out.push(
                        &path.field(field),
                        format!("only allowed with mode custom, not {mode}"),
                    );
                }
                if mode == "allow-all" {
                    Some(Self::AllowAll)
                } else {
                    Some(Self::DenyAll)
                }
            }
            "custom" => {
                let cidrs = |field: &str, out: &mut Diagnostics| {
                    object
                        .optional(field)
                        .map_or(Some(Vec::new()), |(value, path)| {
                            parsed_strings(value, &path, None, out, str::parse::<Cidr>)
                        })
                };
                let allowed_domains =
                    object
                        .optional("allowedDomains")
                        .map_or(Some(Vec::new()), |(value, path)| {
                            parsed_strings(value, &path, None, out, str::parse::<DomainPattern>)
                        });
                let allowed_cidrs = cidrs("allowedCidrs", out);
                let denied_cidrs = cidrs("deniedCidrs", out);
                let custom = CustomPolicy {
                    allowed_domains: allowed_domains?,
                    allowed_cidrs: allowed_cidrs?,
                    denied_cidrs: denied_cidrs?,
                };
                if lists.iter().all(|f| {
                    object
                        .optional(f)
                        .is_none_or(|(v, _)| v.as_array().is_some_and(Vec::is_empty))
                }) {
                    out.push(
                        &mode_path,
                        "custom needs at least one of allowedDomains, allowedCidrs, deniedCidrs; \
                         use allow-all or deny-all to say no more",
                    );
                    return None;
                }
                Some(Self::Custom(custom))
            }
            other => {
                out.push(
                    &mode_path,
                    format!("`{other}` is not a mode; expected allow-all, deny-all or custom"),
                );
                None
            }
        }
    }
}

impl Serialize for BoxPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            mode: &'static str,
            #[serde(flatten)]
            custom: Option<&'a CustomPolicy>,
        }
        let custom = match self {
            Self::Custom(custom) => Some(custom),
            Self::AllowAll | Self::DenyAll => None,
        };
        Wire {
            mode: self.mode(),
            custom,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BoxPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_validated(deserializer, Self::read)
    }
}
