//! Protocols and port rules of app policies (DESIGN.md 1.3).

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::diagnostic::{Diagnostics, JsonPath};
use crate::reader::{ObjectReader, kind, string};

/// A transport protocol a rule or a flow names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP for IPv4 and ICMPv6 for IPv6; has no ports.
    Icmp,
    /// Any other IP protocol (UDP-Lite, SCTP, GRE, ...), by its number.
    /// No port rule names one, so only a rule without `ports` (every
    /// protocol) or a layer that allows every flow to the peer allows it;
    /// a flow of it is judged, logged and cut like any other. Serialized
    /// as the number.
    #[serde(untagged)]
    Other(u8),
}

impl Protocol {
    /// The name used in the API (`None` for a protocol rules cannot name).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Self::Tcp => Some("tcp"),
            Self::Udp => Some("udp"),
            Self::Icmp => Some("icmp"),
            Self::Other(_) => None,
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.name(), self) {
            (Some(name), _) => f.write_str(name),
            (None, Self::Other(number)) => write!(f, "ip protocol {number}"),
            (None, _) => Ok(()),
        }
    }
}

/// An inclusive range of ports, `first <= last`, both in 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// Lowest port.
    pub first: u16,
    /// Highest port.
    pub last: u16,
}

impl PortRange {
    /// True when `port` lies in the range.
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

/// One entry of a rule's `ports`: `{"protocol","port","end_port"?}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRule {
    /// TCP on a port range.
    Tcp(PortRange),
    /// UDP on a port range.
    Udp(PortRange),
    /// ICMP / ICMPv6, every type.
    Icmp,
}

impl PortRule {
    /// The protocol of this entry.
    pub fn protocol(self) -> Protocol {
        match self {
            Self::Tcp(_) => Protocol::Tcp,
            Self::Udp(_) => Protocol::Udp,
            Self::Icmp => Protocol::Icmp,
        }
    }

    /// The port range, for TCP and UDP.
    pub fn range(self) -> Option<PortRange> {
        match self {
            Self::Tcp(range) | Self::Udp(range) => Some(range),
            Self::Icmp => None,
        }
    }

    /// Reads one `ports` entry at `path`.
    pub(crate) fn read(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<Self> {
        let object = ObjectReader::new(value, path, &["protocol", "port", "end_port"], out)?;
        let protocol = object
            .required("protocol", out)
            .and_then(|(value, path)| read_protocol(value, &path, out));
        let port = object.optional("port");
        let end_port = object.optional("end_port");
        let port_number =
            |(value, path): (&Value, JsonPath), out: &mut Diagnostics| read_port(value, &path, out);
        match protocol? {
            Protocol::Icmp => {
                for (_, path) in port.iter().chain(end_port.iter()) {
                    out.push(path, "not allowed for protocol icmp, which has no ports");
                }
                port.or(end_port).is_none().then_some(Self::Icmp)
            }
            protocol => {
                let Some(first) = port else {
                    out.push(
                        &path.field("port"),
                        format!("required for protocol {protocol}"),
                    );
                    return None;
                };
                let first = port_number(first, out);
                let last = match end_port {
                    Some(end) => {
                        let end_path = end.1.clone();
                        let last = port_number(end, out)?;
                        if first.is_some_and(|first| last < first) {
                            out.push(&end_path, "must not be less than port");
                            return None;
                        }
                        last
                    }
                    None => first?,
                };
                let range = PortRange {
                    first: first?,
                    last,
                };
                Some(if protocol == Protocol::Tcp {
                    Self::Tcp(range)
                } else {
                    Self::Udp(range)
                })
            }
        }
    }
}

pub(crate) fn read_protocol(
    value: &Value,
    path: &JsonPath,
    out: &mut Diagnostics,
) -> Option<Protocol> {
    match string(value, path, out)? {
        "tcp" => Some(Protocol::Tcp),
        "udp" => Some(Protocol::Udp),
        "icmp" => Some(Protocol::Icmp),
        other => {
            out.push(
                path,
                format!("`{other}` is not a protocol; expected tcp, udp or icmp"),
            );
            None
        }
    }
}

fn read_port(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<u16> {
    match crate::reader::whole_number(value) {
        Some(port @ 1..=65535) => u16::try_from(port).ok(),
        _ if value.is_number() => {
            out.push(path, "must be 1-65535");
            None
        }
        _ => {
            out.push(
                path,
                format!("must be a number 1-65535, not {}", kind(value)),
            );
            None
        }
    }
}

impl Serialize for PortRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire {
            protocol: Protocol,
            #[serde(skip_serializing_if = "Option::is_none")]
            port: Option<u16>,
            #[serde(skip_serializing_if = "Option::is_none")]
            end_port: Option<u16>,
        }
        let range = self.range();
        Wire {
            protocol: self.protocol(),
            port: range.map(|range| range.first),
            end_port: range.filter(|r| r.last != r.first).map(|r| r.last),
        }
        .serialize(serializer)
    }
}
