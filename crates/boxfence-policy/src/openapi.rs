//! OpenAPI (JSON Schema) descriptions of the policy core's wire types,
//! beside the readers that enforce them, so the API document states each
//! rule these readers check that JSON Schema can state. The readers treat
//! `null` as an absent member, so every optional member is nullable.
//!
//! Rules that JSON Schema cannot state exactly (what a valid CIDR block or
//! domain name is) are described in words and by format; the server's
//! answer names the path and the rule.

use serde_json::{Value, json};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::reader::MAX_LIST_ENTRIES;
use crate::{AppPolicy, BoxPolicy, Flow, MachineRef, PortRule, Rule, Selector};

/// A schema written as JSON Schema. utoipa's model of a schema knows
/// fewer keywords than JSON Schema and would drop the others silently, so
/// a schema must read back exactly as written (the crate's tests build
/// every one).
pub fn schema(value: Value) -> RefOr<Schema> {
    let schema: RefOr<Schema> = serde_json::from_value(value.clone())
        .unwrap_or_else(|error| panic!("not a schema: {error}: {value}"));
    let written = serde_json::to_value(&schema).unwrap_or_default();
    assert_eq!(written, value, "utoipa cannot state this schema exactly");
    schema
}

/// A reference to `T`'s component; `T` is then listed in the `schemas`
/// of the type that refers to it, so the document has it.
fn component<T: ToSchema>() -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", T::name()) })
}

/// A list as the readers take it: at most [`MAX_LIST_ENTRIES`] entries,
/// `min` or more.
fn list(items: Value, min: usize) -> Value {
    json!({ "type": "array", "items": items, "minItems": min, "maxItems": MAX_LIST_ENTRIES })
}

/// An optional member: `null` reads as absent.
pub fn nullable(mut member: Value) -> Value {
    if let Some(kind) = member.get("type").cloned() {
        member["type"] = json!([kind, "null"]);
        member
    } else {
        json!({ "oneOf": [member, { "type": "null" }] })
    }
}

const IDENTIFIER: &str = r"^[A-Za-z0-9._-]{1,128}$";

/// Formats beyond JSON Schema's own (`cidr`, `domain-pattern`,
/// `domain-name`) carry their rule in the description; a checker that
/// knows no such format takes any string (`scripts/schemathesis_hooks.py`
/// generates them).
fn cidr() -> Value {
    json!({
        "type": "string",
        "format": "cidr",
        "description": "An IPv4 or IPv6 address, or a CIDR block with no host bits set \
            (`104.16.0.0/12`, `2001:db8::/32`).",
        "minLength": 1,
        "examples": ["104.16.0.0/12"],
    })
}

fn domain_pattern() -> Value {
    json!({
        "type": "string",
        "format": "domain-pattern",
        "description": "A domain name, or `*.suffix` for the names strictly under it.",
        "minLength": 1,
        "maxLength": 255,
        "examples": ["api.github.com", "*.githubusercontent.com"],
    })
}

/// Metadata: string keys of 1-256 characters to strings of at most 1024.
pub fn metadata_schema(min: usize) -> Value {
    json!({
        "type": "object",
        "additionalProperties": { "type": "string", "maxLength": 1024 },
        "propertyNames": { "type": "string", "minLength": 1, "maxLength": 256 },
        "minProperties": min,
        "maxProperties": MAX_LIST_ENTRIES,
    })
}

/// `ToSchema` for a type with its component name and the types its
/// schema refers to.
macro_rules! named {
    ($type:ty, $name:literal $(, $referred:ty)*) => {
        impl ToSchema for $type {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }

            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                $(
                    schemas.push((<$referred>::name().into(), <$referred>::schema()));
                    <$referred>::schemas(schemas);
                )*
                let _ = schemas;
            }
        }
    };
}

impl PartialSchema for BoxPolicy {
    fn schema() -> RefOr<Schema> {
        let lists = [
            ("allowedDomains", domain_pattern()),
            ("allowedCidrs", cidr()),
            ("deniedCidrs", cidr()),
        ];
        let one_non_empty: Vec<Value> = lists
            .into_iter()
            .map(|(name, items)| {
                json!({ "type": "object", "required": [name],
                        "properties": { name: list(items, 1) } })
            })
            .collect();
        schema(json!({
            "description": "A box policy: `allow-all` (the default), `deny-all` (the box is \
                offline), or `custom` with at least one non-empty list.",
            "oneOf": [
                {
                    "type": "object",
                    "title": "AllowAllOrDenyAll",
                    "properties": { "mode": { "type": "string", "enum": ["allow-all", "deny-all"] } },
                    "required": ["mode"],
                    "additionalProperties": false,
                },
                {
                    "title": "Custom",
                    "description": "Allowed domains and CIDRs (default deny when one is \
                        given), and denied CIDRs, which beat every allow; at least one list \
                        is not empty.",
                    "allOf": [
                        {
                            "type": "object",
                            "properties": {
                                "mode": { "type": "string", "enum": ["custom"] },
                                "allowedDomains": nullable(list(domain_pattern(), 0)),
                                "allowedCidrs": nullable(list(cidr(), 0)),
                                "deniedCidrs": nullable(list(cidr(), 0)),
                            },
                            "required": ["mode"],
                            "additionalProperties": false,
                        },
                        { "anyOf": one_non_empty },
                    ],
                },
            ],
        }))
    }
}
named!(BoxPolicy, "NetworkPolicy");

impl PartialSchema for AppPolicy {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "description": "Allow rules for the machines of an app that the selector matches.",
            "properties": {
                "id": nullable(json!({ "type": "string", "pattern": IDENTIFIER,
                    "description": "Give it to update that policy; without it, the policy \
                        with the same name in the app is updated (idempotent apply)." })),
                "name": { "type": "string", "pattern": IDENTIFIER,
                    "description": "Unique within the app." },
                "selector": component::<Selector>(),
                "rules": list(component::<Rule>(), 0),
            },
            "required": ["name", "selector", "rules"],
            "additionalProperties": false,
        }))
    }
}
named!(AppPolicy, "AppPolicy", Selector, Rule);

impl PartialSchema for Selector {
    fn schema() -> RefOr<Schema> {
        let given = |member: &str, kind: Value| json!({ "type": "object", "required": [member], "properties": { member: kind } });
        schema(json!({
            "description": "Which machines of the app a policy applies to: the members \
                given must all match, and at least one is given.",
            "allOf": [
                {
                    "type": "object",
                    "properties": {
                        "all": { "type": ["boolean", "null"], "enum": [true, null],
                            "description": "`true` selects every machine of the app." },
                        "machines": nullable(list(component::<MachineRef>(), 1)),
                        "metadata": nullable(metadata_schema(1)),
                    },
                    "additionalProperties": false,
                },
                { "anyOf": [
                    given("all", json!({ "type": "boolean" })),
                    given("machines", list(component::<MachineRef>(), 1)),
                    given("metadata", metadata_schema(1)),
                ] },
            ],
        }))
    }
}
named!(Selector, "Selector", MachineRef);

impl PartialSchema for MachineRef {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "properties": { "id": { "type": "string", "pattern": IDENTIFIER } },
            "required": ["id"],
            "additionalProperties": false,
        }))
    }
}
named!(MachineRef, "MachineRef");

impl PartialSchema for Rule {
    fn schema() -> RefOr<Schema> {
        let common = json!({
            "action": { "type": "string", "enum": ["allow"] },
            "ports": nullable(list(component::<PortRule>(), 1)),
            "cidrs": nullable(list(cidr(), 1)),
        });
        let mut egress = common.clone();
        egress["direction"] = json!({ "type": "string", "enum": ["egress"] });
        egress["domains"] = nullable(list(domain_pattern(), 1));
        let mut ingress = common;
        ingress["direction"] = json!({ "type": "string", "enum": ["ingress"] });
        ingress["domains"] = json!({ "type": "null" });
        let rule = |title: &str, properties: Value| {
            json!({
                "type": "object",
                "title": title,
                "properties": properties,
                "required": ["action", "direction"],
                "additionalProperties": false,
            })
        };
        schema(json!({
            "description": "An allow rule. Without `ports`, every protocol and port; \
                without `cidrs` and `domains`, every peer. `domains` only on egress.",
            "oneOf": [rule("EgressRule", egress), rule("IngressRule", ingress)],
        }))
    }
}
named!(Rule, "Rule", PortRule);

impl PartialSchema for PortRule {
    fn schema() -> RefOr<Schema> {
        let port = json!({ "type": "integer", "minimum": 1, "maximum": 65535 });
        schema(json!({
            "description": "A protocol and port (range): tcp and udp need `port`; icmp has \
                none. `end_port`, not below `port`, ends an inclusive range.",
            "oneOf": [
                {
                    "type": "object",
                    "title": "TransportPorts",
                    "properties": {
                        "protocol": { "type": "string", "enum": ["tcp", "udp"] },
                        "port": port,
                        "end_port": nullable(port.clone()),
                    },
                    "required": ["protocol", "port"],
                    "additionalProperties": false,
                },
                {
                    "type": "object",
                    "title": "Icmp",
                    "properties": {
                        "protocol": { "type": "string", "enum": ["icmp"] },
                        "port": { "type": "null" },
                        "end_port": { "type": "null" },
                    },
                    "required": ["protocol"],
                    "additionalProperties": false,
                },
            ],
        }))
    }
}
named!(PortRule, "PortRule");

impl PartialSchema for Flow {
    fn schema() -> RefOr<Schema> {
        let address = json!({ "anyOf": [
            { "type": "string", "format": "ipv4" }, { "type": "string", "format": "ipv6" } ] });
        let base = |direction: &str| {
            json!({
                "direction": { "type": "string", "enum": [direction] },
                "port": nullable(json!({ "type": "integer", "minimum": 1, "maximum": 65535 })),
                "ip": nullable(address.clone()),
            })
        };
        let mut egress = base("egress");
        egress["domain"] = nullable(json!({ "type": "string", "format": "domain-name",
            "minLength": 1, "maxLength": 254 }));
        egress["source"] = nullable(address.clone());
        let mut ingress = base("ingress");
        ingress["domain"] = json!({ "type": "null" });
        ingress["source"] = json!({ "type": "null" });
        let numbers = |minimum: u8, maximum: u8| json!({ "type": "integer", "minimum": minimum, "maximum": maximum });
        let transport = json!({
            "oneOf": [
                {
                    "type": "object",
                    "title": "TcpOrUdp",
                    "properties": {
                        "protocol": { "type": ["string", "integer"], "enum": ["tcp", "udp", 6, 17] },
                        "port": { "type": "integer" },
                    },
                    "required": ["port"],
                },
                {
                    "type": "object",
                    "title": "NoPorts",
                    "properties": {
                        "protocol": { "oneOf": [
                            { "type": "string", "enum": ["icmp"] },
                            numbers(0, 5),
                            numbers(7, 16),
                            numbers(18, 255),
                        ] },
                        "port": { "type": "null" },
                    },
                },
            ],
        });
        let flow = |title: &str, properties: Value| {
            json!({
                "type": "object",
                "title": title,
                "properties": properties,
                "required": ["direction", "protocol"],
                "additionalProperties": false,
            })
        };
        let egress = flow("EgressFlow", egress);
        let egress = json!({ "allOf": [egress, { "anyOf": [
            { "type": "object", "required": ["ip"], "properties": { "ip": { "type": "string" } } },
            { "type": "object", "required": ["domain"],
              "properties": { "domain": { "type": "string" } } },
        ] }] });
        let mut ingress = flow("IngressFlow", ingress);
        ingress["required"] = json!(["direction", "protocol", "ip"]);
        ingress["properties"]["ip"] = address;
        schema(json!({
            "description": "A hypothetical flow to evaluate, seen from the machine: `port` is \
                the remote port for egress, the machine's for ingress. `protocol` is tcp, \
                udp, icmp, or an IP protocol number 0-255 (which only a rule without `ports` \
                allows).",
            "allOf": [
                { "oneOf": [egress, ingress] },
                transport,
            ],
        }))
    }
}
named!(Flow, "Flow");

impl PartialSchema for crate::Protocol {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "description": "tcp, udp, icmp, or the number of any other IP protocol.",
            "oneOf": [
                { "type": "string", "enum": ["tcp", "udp", "icmp"] },
                { "type": "integer", "minimum": 0, "maximum": 255 },
            ],
        }))
    }
}
named!(crate::Protocol, "Protocol");
