//! App policies: the Machines API shape (DESIGN.md 1.2, 1.3).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::blocked::AlwaysBlocked;
use crate::cidr::Cidr;
use crate::diagnostic::{Diagnostic, Diagnostics, JsonPath, ValidationError};
use crate::domain::DomainPattern;
use crate::ports::PortRule;
use crate::reader::{
    self, ObjectReader, boolean, deserialize_validated, each, identifier, list, parsed_strings,
    string,
};

/// Longest metadata key and value, in characters (as JSON Schema's
/// `maxLength` counts, so the API document states the rule exactly).
const MAX_METADATA_KEY: usize = 256;
const MAX_METADATA_VALUE: usize = 1024;

/// `{ name, id?, selector, rules }`: allow rules for the machines of an app
/// that the selector matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppPolicy {
    /// Stable id; given to update an existing policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Unique within the app.
    pub name: String,
    /// Which machines of the app the policy applies to.
    pub selector: Selector,
    /// Allow rules, each for one direction.
    pub rules: Vec<Rule>,
}

/// Which machines a policy applies to; the fields given must all match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Selector {
    /// `"all": true` matches every machine of the app.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Matches any machine listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<MachineRef>,
    /// Matches a machine whose metadata has every pair.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `{"id": …}` in a selector's `machines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineRef {
    /// The machine's id.
    pub id: String,
}

/// The only action the API has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Allow the traffic the rule describes.
    Allow,
}

/// Which way a flow goes, seen from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Direction {
    /// Connections the machine accepts.
    Ingress,
    /// Connections the machine opens.
    Egress,
}

impl Direction {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }
}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Always `allow`.
    pub action: Action,
    /// The direction the rule allows.
    pub direction: Direction,
    /// Protocols and ports; absent means every protocol and port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortRule>>,
    /// Remote ranges (destinations for egress, sources for ingress).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<Cidr>,
    /// Destination names (egress only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainPattern>,
}

impl Rule {
    /// True when the rule names peers (`cidrs` or `domains`) and so only
    /// allows traffic with those.
    pub fn has_peers(&self) -> bool {
        !self.cidrs.is_empty() || !self.domains.is_empty()
    }
}

impl AppPolicy {
    /// Parses and validates a policy, reporting every problem.
    pub fn from_json(value: &Value) -> Result<Self, ValidationError> {
        reader::read_document(value, Self::read)
    }

    /// Entries that name always-blocked ranges: accepted, but they can have
    /// no effect, and the answer says so.
    pub fn warnings(&self, blocked: &AlwaysBlocked) -> Vec<Diagnostic> {
        let mut out = Diagnostics::default();
        let rules = JsonPath::root().field("rules");
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.direction == Direction::Egress {
                blocked.warn_about(&rule.cidrs, &rules.index(index).field("cidrs"), &mut out);
            }
        }
        out.into_vec()
    }

    fn read(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<Self> {
        let object = ObjectReader::new(value, path, &["name", "id", "selector", "rules"], out)?;
        let id = object
            .optional("id")
            .map(|(value, path)| identifier(value, &path, out).map(str::to_owned));
        let name = object
            .required("name", out)
            .and_then(|(value, path)| identifier(value, &path, out));
        let selector = object
            .required("selector", out)
            .and_then(|(value, path)| Selector::read(value, &path, out));
        let rules = object.required("rules", out).and_then(|(value, path)| {
            let items = list(value, &path, None, out)?;
            Some(each(items, &path, out, Rule::read))
        });
        Some(Self {
            id: id.map_or(Some(None), |id| id.map(Some))?,
            name: name?.to_owned(),
            selector: selector?,
            rules: rules?,
        })
    }
}

impl<'de> Deserialize<'de> for AppPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_validated(deserializer, Self::read)
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_validated(deserializer, Self::read)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_validated(deserializer, Self::read)
    }
}

impl Selector {
    /// True when the machine `id` with `metadata` is selected.
    pub fn matches(&self, id: &str, metadata: &BTreeMap<String, String>) -> bool {
        let listed = self.machines.is_empty() || self.machines.iter().any(|m| m.id == id);
        let labelled = self
            .metadata
            .iter()
            .all(|(key, value)| metadata.get(key) == Some(value));
        listed && labelled
    }

    fn read(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<Self> {
        let object = ObjectReader::new(value, path, &["all", "machines", "metadata"], out)?;
        let mut selector = Self::default();
        let mut valid = true;
        if let Some((value, path)) = object.optional("all") {
            match boolean(value, &path, out) {
                Some(true) => selector.all = true,
                Some(false) => {
                    out.push(
                        &path,
                        "must be true; to select fewer machines use machines or metadata",
                    );
                    valid = false;
                }
                None => valid = false,
            }
        }
        if let Some((value, path)) = object.optional("machines") {
            let hint = "an empty list would select no machine";
            match list(value, &path, Some(hint), out) {
                Some(items) => selector.machines = each(items, &path, out, read_machine_ref),
                None => valid = false,
            }
        }
        if let Some((value, path)) = object.optional("metadata") {
            match read_metadata(value, &path, out) {
                Some(map) if map.is_empty() => {
                    out.push(
                        &path,
                        "must not be empty; an empty map would select every machine",
                    );
                    valid = false;
                }
                Some(map) => selector.metadata = map,
                None => valid = false,
            }
        }
        if valid && !selector.all && selector.machines.is_empty() && selector.metadata.is_empty() {
            out.push(path, "must name at least one of all, machines, metadata");
            return None;
        }
        valid.then_some(selector)
    }
}

fn read_machine_ref(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<MachineRef> {
    let object = ObjectReader::new(value, path, &["id"], out)?;
    let (value, path) = object.required("id", out)?;
    let id = identifier(value, &path, out)?;
    Some(MachineRef { id: id.to_owned() })
}

/// Reads a metadata map: string keys and values within size limits.
pub fn read_metadata(
    value: &Value,
    path: &JsonPath,
    out: &mut Diagnostics,
) -> Option<BTreeMap<String, String>> {
    let Value::Object(map) = value else {
        out.push(
            path,
            format!("must be an object of strings, not {}", reader::kind(value)),
        );
        return None;
    };
    if map.len() > reader::MAX_LIST_ENTRIES {
        out.push(
            path,
            format!(
                "has {} entries; at most {} are allowed",
                map.len(),
                reader::MAX_LIST_ENTRIES
            ),
        );
        return None;
    }
    let mut metadata = BTreeMap::new();
    for (key, value) in map {
        let entry_path = path.field(key);
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY {
            out.push(
                &entry_path,
                format!("keys must be 1-{MAX_METADATA_KEY} characters"),
            );
            continue;
        }
        let Some(text) = string(value, &entry_path, out) else {
            continue;
        };
        if text.chars().count() > MAX_METADATA_VALUE {
            out.push(
                &entry_path,
                format!("values must be at most {MAX_METADATA_VALUE} characters"),
            );
            continue;
        }
        metadata.insert(key.clone(), text.to_owned());
    }
    (metadata.len() == map.len()).then_some(metadata)
}

impl Rule {
    fn read(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<Self> {
        let object = ObjectReader::new(
            value,
            path,
            &["action", "direction", "ports", "cidrs", "domains"],
            out,
        )?;
        let action = object.required("action", out).and_then(|(value, path)| {
            match string(value, &path, out)? {
                "allow" => Some(Action::Allow),
                other => {
                    out.push(
                        &path,
                        format!("`{other}` is not supported; the only action is allow"),
                    );
                    None
                }
            }
        });
        let direction = object.required("direction", out).and_then(|(value, path)| {
            match string(value, &path, out)? {
                "ingress" => Some(Direction::Ingress),
                "egress" => Some(Direction::Egress),
                other => {
                    out.push(
                        &path,
                        format!("`{other}` is not a direction; expected ingress or egress"),
                    );
                    None
                }
            }
        });
        let ports = object.optional("ports").map(|(value, path)| {
            let hint = "omit ports to allow every protocol and port";
            let items = list(value, &path, Some(hint), out)?;
            let ports = each(items, &path, out, PortRule::read);
            (ports.len() == items.len()).then_some(ports)
        });
        let peers_hint = "omit it to allow every peer";
        let cidrs = object.optional("cidrs").map(|(value, path)| {
            parsed_strings(value, &path, Some(peers_hint), out, str::parse::<Cidr>)
        });
        let domains = object.optional("domains").map(|(value, path)| {
            if direction == Some(Direction::Ingress) {
                out.push(
                    &path,
                    "only allowed on egress rules; ingress peers are matched by cidrs",
                );
                return None;
            }
            parsed_strings(
                value,
                &path,
                Some(peers_hint),
                out,
                str::parse::<DomainPattern>,
            )
        });
        Some(Self {
            action: action?,
            direction: direction?,
            ports: ports.map_or(Some(None), |ports| ports.map(Some))?,
            cidrs: cidrs.unwrap_or(Some(Vec::new()))?,
            domains: domains.unwrap_or(Some(Vec::new()))?,
        })
    }
}
