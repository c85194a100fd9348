//! Kernel objects and how a batch creates, refills or deletes them. One
//! batch is one nft transaction: the kernel applies all of it or none.

use std::fmt::Write as _;

/// What a set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetKind {
    /// IPv4 addresses and ranges.
    Ipv4,
    /// IPv6 addresses and ranges.
    Ipv6,
    /// Protocol · port ranges.
    ProtoPort,
    /// IPv4 addresses that expire (resolver-learned).
    Ipv4Learned,
    /// IPv6 addresses that expire (resolver-learned).
    Ipv6Learned,
    /// Box interface · IPv4 address pairs that expire (resolver-learned
    /// for one app rule, per box).
    IfnameIpv4Learned,
    /// Box interface · IPv6 address pairs that expire.
    IfnameIpv6Learned,
}

impl SetKind {
    fn declaration(self) -> &'static str {
        match self {
            Self::Ipv4 => "type ipv4_addr; flags interval;",
            Self::Ipv6 => "type ipv6_addr; flags interval;",
            Self::ProtoPort => "type inet_proto . inet_service; flags interval;",
            Self::Ipv4Learned => "type ipv4_addr; flags timeout;",
            Self::Ipv6Learned => "type ipv6_addr; flags timeout;",
            Self::IfnameIpv4Learned => "type ifname . ipv4_addr; flags timeout;",
            Self::IfnameIpv6Learned => "type ifname . ipv6_addr; flags timeout;",
        }
    }

    /// Learned sets keep their elements when their owner is updated: the
    /// resolver fills them, a policy update does not.
    fn keeps_elements(self) -> bool {
        matches!(
            self,
            Self::Ipv4Learned
                | Self::Ipv6Learned
                | Self::IfnameIpv4Learned
                | Self::IfnameIpv6Learned
        )
    }
}

/// A named set or chain of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Object {
    /// A set and its elements.
    Set {
        name: String,
        kind: SetKind,
        elements: Vec<String>,
    },
    /// A regular chain and its rules.
    Chain { name: String, rules: Vec<String> },
    /// A named counter (kept across updates of its owner).
    Counter { name: String },
}

impl Object {
    pub(crate) fn set(name: String, kind: SetKind, elements: Vec<String>) -> Self {
        Self::Set {
            name,
            kind,
            elements,
        }
    }

    pub(crate) fn chain(name: String, rules: Vec<String>) -> Self {
        Self::Chain { name, rules }
    }
}

/// The text of one nft transaction for the table `table`.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    table: String,
    text: String,
}

impl Batch {
    pub(crate) fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            text: String::new(),
        }
    }

    /// Appends a raw command.
    pub(crate) fn line(&mut self, line: impl AsRef<str>) {
        self.text.push_str(line.as_ref());
        self.text.push('\n');
    }

    /// Creates the object if missing and gives it exactly this content
    /// (a learned set keeps its elements).
    pub(crate) fn upsert(&mut self, object: &Object) {
        let table = &self.table;
        match object {
            Object::Set {
                name,
                kind,
                elements,
            } => {
                let mut text =
                    format!("add set inet {table} {name} {{ {} }}\n", kind.declaration());
                if !kind.keeps_elements() {
                    let _ = writeln!(text, "flush set inet {table} {name}");
                    if !elements.is_empty() {
                        let _ = writeln!(
                            text,
                            "add element inet {table} {name} {{ {} }}",
                            elements.join(", ")
                        );
                    }
                }
                self.text.push_str(&text);
            }
            Object::Chain { name, rules } => {
                let mut text =
                    format!("add chain inet {table} {name}\nflush chain inet {table} {name}\n");
                for rule in rules {
                    let _ = writeln!(text, "add rule inet {table} {name} {rule}");
                }
                self.text.push_str(&text);
            }
            Object::Counter { name } => {
                let line = format!("add counter inet {table} {name}");
                self.line(line);
            }
        }
    }

    /// Empties a chain, so that the chains it jumps to lose a reference.
    pub(crate) fn flush_chain(&mut self, object: &Object) {
        if let Object::Chain { name, .. } = object {
            let line = format!("flush chain inet {} {name}", self.table);
            self.line(line);
        }
    }

    /// Deletes the object; chains must have been flushed earlier in the
    /// batch and nothing may refer to it any more.
    pub(crate) fn delete(&mut self, object: &Object) {
        let line = match object {
            Object::Set { name, .. } => format!("delete set inet {} {name}", self.table),
            Object::Chain { name, .. } => format!("delete chain inet {} {name}", self.table),
            Object::Counter { name } => format!("delete counter inet {} {name}", self.table),
        };
        self.line(line);
    }

    pub(crate) fn into_text(self) -> String {
        self.text
    }
}
