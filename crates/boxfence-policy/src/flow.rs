//! Flows: what evaluation is asked about.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::app_policy::Direction;
use crate::diagnostic::{Diagnostics, JsonPath};
use crate::ports::{Protocol, read_protocol};
use crate::reader::{self, ObjectReader, string};

/// A connection attempt, real or hypothetical, seen from the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// Egress (the machine connects) or ingress (a peer connects to it).
    pub direction: Direction,
    /// The transport.
    pub protocol: Protocol,
    /// The machine's port for ingress, the peer's for egress; none for ICMP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The remote address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The name the remote address was resolved from (egress only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The source address an egress packet carries, to check anti-spoofing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<IpAddr>,
}

impl Flow {
    /// Reads and validates a flow at `path`.
    pub fn read(value: &Value, path: &JsonPath, out: &mut Diagnostics) -> Option<Self> {
        let fields = ["direction", "protocol", "port", "ip", "domain", "source"];
        let object = ObjectReader::new(value, path, &fields, out)?;
        let direction = object.required("direction", out).and_then(|(value, path)| {
            match string(value, &path, out)? {
                "egress" => Some(Direction::Egress),
                "ingress" => Some(Direction::Ingress),
                other => {
                    out.push(
                        &path,
                        format!("`{other}` is not a direction; expected ingress or egress"),
                    );
                    None
                }
            }
        });
        // A flow may also be of a protocol no rule can name, by number.
        let protocol = object.required("protocol", out).and_then(|(value, path)| {
            match reader::whole_number(value) {
                Some(number) => read_protocol_number(number, &path, out),
                None => read_protocol(value, &path, out),
            }
        });
        let port = object.optional("port").map(|(value, path)| {
            let port = reader::whole_number(value)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0);
            if port.is_none() {
                out.push(&path, "must be 1-65535");
            }
            port
        });
        let address = |field: &str, out: &mut Diagnostics| {
            object.optional(field).map(|(value, path)| {
                let text = string(value, &path, out)?;
                let ip = text.parse::<IpAddr>().ok();
                if ip.is_none() {
                    out.push(&path, format!("`{text}` is not an IP address"));
                }
                ip
            })
        };
        let ip = address("ip", out);
        let source = address("source", out);
        let domain = object.optional("domain").map(|(value, path)| {
            let text = string(value, &path, out)?;
            match text.parse::<crate::domain::DomainName>() {
                Ok(name) => Some(name.as_str().to_owned()),
                Err(error) => {
                    out.push(&path, error.to_string());
                    None
                }
            }
        });
        match (protocol, &port) {
            (Some(Protocol::Icmp), Some(_)) => {
                out.push(
                    &path.field("port"),
                    "not allowed for protocol icmp, which has no ports",
                );
            }
            (Some(Protocol::Other(number)), Some(_)) => {
                out.push(
                    &path.field("port"),
                    format!("not allowed for IP protocol {number}: no rule names its ports"),
                );
            }
            (Some(Protocol::Tcp | Protocol::Udp), None) => {
                out.push(&path.field("port"), "required for protocols tcp and udp");
            }
            _ => {}
        }
        if ip.is_none() && domain.is_none() {
            out.push(path, "needs ip, domain or both");
        }
        if direction == Some(Direction::Ingress) {
            for field in ["domain", "source"]
                .iter()
                .filter(|f| object.optional(f).is_some())
            {
                out.push(&path.field(field), "only allowed for egress flows");
            }
        }
        Some(Self {
            direction: direction?,
            protocol: protocol?,
            port: port.flatten(),
            ip: ip.flatten(),
            domain: domain.flatten(),
            source: source.flatten(),
        })
    }
}

impl<'de> Deserialize<'de> for Flow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        reader::deserialize_validated(deserializer, Self::read)
    }
}

/// A protocol given by its IP protocol number (0-255): TCP, UDP and ICMP
/// (1 and 58) by their names' meaning, any other as itself.
fn read_protocol_number(number: u64, path: &JsonPath, out: &mut Diagnostics) -> Option<Protocol> {
    match u8::try_from(number) {
        Ok(6) => Some(Protocol::Tcp),
        Ok(17) => Some(Protocol::Udp),
        Ok(1 | 58) => Some(Protocol::Icmp),
        Ok(other) => Some(Protocol::Other(other)),
        Err(_) => {
            out.push(
                path,
                "must be tcp, udp, icmp or an IP protocol number 0-255",
            );
            None
        }
    }
}
