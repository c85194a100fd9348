//! A table's content as a value: what the model expects (built from the
//! commands that make it, without a kernel) and what a dump of the
//! kernel's table found (`nft_netlink`) are both a [`Listing`], compared
//! structurally: the order of elements does not count, the order of rules
//! in a chain does, counter values and the elements of sets with timeouts
//! (the resolver's, changing all the time) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::Command;
use super::expr::{
    ELEM_INTERVAL_END, Expr, HookSpec, NETDEV_INGRESS, OBJECT_COUNTER, RawElement, SetSpec,
};
use super::lower::{self, LowerError};

/// The content of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// `NFTA_TABLE_FLAGS` (1: dormant, its hooks unregistered).
    pub table_flags: u32,
    /// Chains by name.
    pub chains: BTreeMap<String, ListedChain>,
    /// Named sets and maps by name (a rule's anonymous sets are part of
    /// the rule).
    pub sets: BTreeMap<String, ListedSet>,
    /// Named objects by name, with their `NFT_OBJECT_*` type.
    pub objects: BTreeMap<String, u32>,
    /// Flowtables by name.
    pub flowtables: BTreeMap<String, ListedFlowtable>,
}

/// A flowtable: its hook and the devices it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFlowtable {
    /// `NF_NETDEV_INGRESS`, the only hook a flowtable has.
    pub hooknum: u32,
    /// The hooks' priority.
    pub priority: i32,
    /// The devices, by name.
    pub devices: BTreeSet<String>,
}

impl ListedFlowtable {
    /// A flowtable on the ingress of `devices` at `priority`.
    pub fn new(priority: i32, devices: impl IntoIterator<Item = String>) -> Self {
        Self {
            hooknum: NETDEV_INGRESS,
            priority,
            devices: devices.into_iter().collect(),
        }
    }
}

/// A chain: its hook, if a base chain, and its rules in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedChain {
    /// The hook of a base chain.
    pub hook: Option<HookSpec>,
    /// Each rule's expressions.
    pub rules: Vec<Vec<Expr>>,
}

/// A set or map: its declaration and, unless its elements expire, its
/// elements, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSet {
    /// The declaration.
    pub spec: SetSpec,
    /// The elements; `None` for a set with timeouts (not compared).
    pub elements: Option<Vec<RawElement>>,
}

impl ListedSet {
    /// A set of this declaration with no elements yet.
    pub fn empty(spec: SetSpec) -> Self {
        let learned = spec.flags & super::expr::SET_TIMEOUT != 0;
        Self {
            spec,
            elements: (!learned).then(Vec::new),
        }
    }
}

impl Listing {
    /// What an empty table holds after `commands`, in order.
    pub fn after(commands: &[Command]) -> Result<Self, LowerError> {
        let mut listing = Self::default();
        for command in commands {
            listing.apply(command)?;
        }
        for set in listing.sets.values_mut() {
            if let Some(elements) = &mut set.elements {
                elements.sort();
                elements.dedup();
            }
        }
        Ok(listing)
    }

    fn apply(&mut self, command: &Command) -> Result<(), LowerError> {
        match command {
            Command::AddTable => {}
            Command::DeleteTable => *self = Self::default(),
            Command::AddChain(name) => {
                self.chains.entry(name.clone()).or_default();
            }
            Command::AddBaseChain { name, base } => {
                self.chains
                    .entry(name.clone())
                    .or_insert_with(|| ListedChain {
                        hook: Some(lower::hook(base)),
                        rules: Vec::new(),
                    });
            }
            Command::FlushChain(name) => {
                if let Some(chain) = self.chains.get_mut(name) {
                    chain.rules.clear();
                }
            }
            Command::DeleteChain(name) => {
                self.chains.remove(name);
            }
            Command::AddRule { chain, rule } => {
                let exprs = lower::rule(rule)?;
                self.chains
                    .entry(chain.clone())
                    .or_default()
                    .rules
                    .push(exprs);
            }
            Command::AddSet { name, kind } => {
                self.sets
                    .entry(name.clone())
                    .or_insert_with(|| ListedSet::empty(lower::set_spec(*kind)));
            }
            Command::FlushSet(name) => {
                if let Some(Some(elements)) = self.sets.get_mut(name).map(|s| &mut s.elements) {
                    elements.clear();
                }
            }
            Command::DeleteSet(name) => {
                self.sets.remove(name);
            }
            Command::AddElements { set, elements } => {
                let raw = lower::elements(elements)?;
                if let Some(Some(elements)) = self.sets.get_mut(set).map(|s| &mut s.elements) {
                    elements.extend(raw);
                }
            }
            Command::DeleteElements { set, elements } => {
                let keys = lower::elements(elements)?;
                if let Some(Some(elements)) = self.sets.get_mut(set).map(|s| &mut s.elements) {
                    elements.retain(|e| !keys.iter().any(|k| k.same_key(e)));
                }
            }
            Command::AddCounter(name) => {
                self.objects.insert(name.clone(), OBJECT_COUNTER);
            }
            Command::DeleteCounter(name) => {
                self.objects.remove(name);
            }
            Command::AddFlowtable { name, flowtable } => {
                self.flowtables
                    .entry(name.clone())
                    .or_insert_with(|| ListedFlowtable::new(flowtable.priority, []))
                    .devices
                    .extend(flowtable.devices.iter().cloned());
            }
            Command::DeleteFlowtableDevices { name, devices } => {
                if let Some(flowtable) = self.flowtables.get_mut(name) {
                    devices.iter().for_each(|d| {
                        flowtable.devices.remove(d);
                    });
                }
            }
        }
        Ok(())
    }

    /// How `found` differs from this listing (the expected one), chain by
    /// chain, then set by set, object by object, flowtable by flowtable;
    /// empty when equal.
    pub fn differences(&self, found: &Self) -> Vec<Difference> {
        let mut out = Vec::new();
        if self.table_flags != found.table_flags {
            out.push(Difference::TableFlags {
                expected: self.table_flags,
                found: found.table_flags,
            });
        }
        for (name, expected, found) in pairs(&self.chains, &found.chains) {
            match (expected, found) {
                (Some(_), None) => out.push(Difference::MissingChain(name.clone())),
                (None, Some(_)) => out.push(Difference::UnexpectedChain(name.clone())),
                (Some(expected), Some(found)) => chain_differences(name, expected, found, &mut out),
                (None, None) => {}
            }
        }
        for (name, expected, found) in pairs(&self.sets, &found.sets) {
            match (expected, found) {
                (Some(_), None) => out.push(Difference::MissingSet(name.clone())),
                (None, Some(_)) => out.push(Difference::UnexpectedSet(name.clone())),
                (Some(expected), Some(found)) => set_differences(name, expected, found, &mut out),
                (None, None) => {}
            }
        }
        for (name, expected, found) in pairs(&self.objects, &found.objects) {
            match (expected, found) {
                (Some(_), None) => out.push(Difference::MissingObject(name.clone())),
                (expected, Some(kind)) if expected != Some(kind) => {
                    out.push(Difference::UnexpectedObject {
                        name: name.clone(),
                        kind: *kind,
                    });
                }
                _ => {}
            }
        }
        for (name, expected, found) in pairs(&self.flowtables, &found.flowtables) {
            match (expected, found) {
                (Some(_), None) => out.push(Difference::MissingFlowtable(name.clone())),
                (None, Some(_)) => out.push(Difference::UnexpectedFlowtable(name.clone())),
                (Some(expected), Some(found)) if expected != found => {
                    out.push(Difference::Flowtable {
                        name: name.clone(),
                        expected: expected.clone(),
                        found: found.clone(),
                    });
                }
                _ => {}
            }
        }
        out
    }
}

/// Each name of either map with its value in each.
fn pairs<'a, V>(
    expected: &'a BTreeMap<String, V>,
    found: &'a BTreeMap<String, V>,
) -> impl Iterator<Item = (&'a String, Option<&'a V>, Option<&'a V>)> {
    let extra = found.keys().filter(|name| !expected.contains_key(*name));
    expected
        .keys()
        .chain(extra)
        .map(|name| (name, expected.get(name), found.get(name)))
}

fn chain_differences(
    name: &str,
    expected: &ListedChain,
    found: &ListedChain,
    out: &mut Vec<Difference>,
) {
    if expected.hook != found.hook {
        out.push(Difference::Hook {
            chain: name.to_owned(),
            expected: expected.hook.clone(),
            found: found.hook.clone(),
        });
    }
    // Rules in order: the first that differs (later ones are shifted by
    // an insertion or deletion, so one is enough).
    let count = expected.rules.len().max(found.rules.len());
    if let Some(index) = (0..count).find(|&i| expected.rules.get(i) != found.rules.get(i)) {
        out.push(Difference::Rule {
            chain: name.to_owned(),
            number: index + 1,
            expected: expected.rules.get(index).cloned(),
            found: found.rules.get(index).cloned(),
        });
    }
}

fn set_differences(name: &str, expected: &ListedSet, found: &ListedSet, out: &mut Vec<Difference>) {
    if expected.spec != found.spec {
        out.push(Difference::Declaration {
            set: name.to_owned(),
            expected: expected.spec.clone(),
            found: found.spec.clone(),
        });
        return;
    }
    let (Some(expected), Some(found)) = (&expected.elements, &found.elements) else {
        return;
    };
    let missing: Vec<&RawElement> = expected.iter().filter(|e| !found.contains(e)).collect();
    if let Some(first) = missing.first() {
        out.push(Difference::MissingElements {
            set: name.to_owned(),
            count: missing.len(),
            first: (*first).clone(),
        });
    }
    let extra: Vec<&RawElement> = found.iter().filter(|e| !expected.contains(e)).collect();
    if let Some(first) = extra.first() {
        out.push(Difference::UnexpectedElements {
            set: name.to_owned(),
            count: extra.len(),
            first: (*first).clone(),
        });
    }
}

/// One way a table differs from the expected one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The table's flags (dormant, say).
    TableFlags {
        /// Expected.
        expected: u32,
        /// Found.
        found: u32,
    },
    /// A chain is missing.
    MissingChain(String),
    /// A chain is there that should not be.
    UnexpectedChain(String),
    /// A chain's hook, priority, type or policy.
    Hook {
        /// The chain.
        chain: String,
        /// Expected (none: a regular chain).
        expected: Option<HookSpec>,
        /// Found.
        found: Option<HookSpec>,
    },
    /// The first rule of a chain that differs.
    Rule {
        /// The chain.
        chain: String,
        /// The rule's position, from 1.
        number: usize,
        /// Expected (none: the chain should end before it).
        expected: Option<Vec<Expr>>,
        /// Found (none: the chain ends before it).
        found: Option<Vec<Expr>>,
    },
    /// A set or map is missing.
    MissingSet(String),
    /// A set or map is there that should not be.
    UnexpectedSet(String),
    /// A set's declaration (type, flags).
    Declaration {
        /// The set.
        set: String,
        /// Expected.
        expected: SetSpec,
        /// Found.
        found: SetSpec,
    },
    /// Elements are missing from a set.
    MissingElements {
        /// The set.
        set: String,
        /// How many.
        count: usize,
        /// The first of them.
        first: RawElement,
    },
    /// A set holds elements it should not.
    UnexpectedElements {
        /// The set.
        set: String,
        /// How many.
        count: usize,
        /// The first of them.
        first: RawElement,
    },
    /// A named object (a counter) is missing.
    MissingObject(String),
    /// An object is there that should not be (or of another type).
    UnexpectedObject {
        /// Its name.
        name: String,
        /// Its `NFT_OBJECT_*` type.
        kind: u32,
    },
    /// A flowtable is missing.
    MissingFlowtable(String),
    /// A flowtable is there that should not be.
    UnexpectedFlowtable(String),
    /// A flowtable's hook or devices.
    Flowtable {
        /// Its name.
        name: String,
        /// Expected.
        expected: ListedFlowtable,
        /// Found.
        found: ListedFlowtable,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TableFlags { expected, found } => {
                write!(f, "table flags are {found:#x}, expected {expected:#x}")
            }
            Self::MissingChain(name) => write!(f, "chain {name} missing"),
            Self::UnexpectedChain(name) => write!(f, "chain {name} should not exist"),
            Self::Hook {
                chain,
                expected,
                found,
            } => write!(
                f,
                "chain {chain} hook differs: expected {expected:?}, found {found:?}"
            ),
            Self::Rule {
                chain,
                number,
                expected: Some(expected),
                found: Some(found),
            } => write!(
                f,
                "chain {chain} rule {number} differs: expected {expected:?}, found {found:?}"
            ),
            Self::Rule {
                chain,
                number,
                expected: Some(expected),
                found: None,
            } => write!(f, "chain {chain} rule {number} missing: {expected:?}"),
            Self::Rule {
                chain,
                number,
                found,
                ..
            } => write!(f, "chain {chain} has an extra rule {number}: {found:?}"),
            Self::MissingSet(name) => write!(f, "set {name} missing"),
            Self::UnexpectedSet(name) => write!(f, "set {name} should not exist"),
            Self::Declaration {
                set,
                expected,
                found,
            } => write!(
                f,
                "set {set} is declared differently: expected {expected:?}, found {found:?}"
            ),
            Self::MissingElements { set, count, first } => write!(
                f,
                "set {set} lacks {count} element(s), the first {}",
                describe(first)
            ),
            Self::UnexpectedElements { set, count, first } => write!(
                f,
                "set {set} holds {count} element(s) it should not, the first {}",
                describe(first)
            ),
            Self::MissingObject(name) => write!(f, "counter {name} missing"),
            Self::UnexpectedObject { name, kind } => {
                write!(f, "object {name} (type {kind}) should not exist")
            }
            Self::MissingFlowtable(name) => write!(f, "flowtable {name} missing"),
            Self::UnexpectedFlowtable(name) => write!(f, "flowtable {name} should not exist"),
            Self::Flowtable {
                name,
                expected,
                found,
            } => write!(
                f,
                "flowtable {name} differs: expected priority {} on {:?}, found priority {} on {:?}",
                expected.priority, expected.devices, found.priority, found.devices
            ),
        }
    }
}

/// An element readably: addresses as addresses, names as names.
fn describe(element: &RawElement) -> String {
    let key = |bytes: &[u8]| -> String {
        let name = bytes.split(|&b| b == 0).next().unwrap_or_default();
        let padded = bytes[name.len()..].iter().all(|&b| b == 0);
        match <[u8; 4]>::try_from(bytes) {
            Ok(v4) => return Ipv4Addr::from(v4).to_string(),
            Err(_) if bytes.len() == 1 => return bytes[0].to_string(),
            Err(_) => {}
        }
        if !name.is_empty() && padded && name.iter().all(u8::is_ascii_graphic) {
            return format!("\"{}\"", String::from_utf8_lossy(name));
        }
        match <[u8; 16]>::try_from(bytes) {
            Ok(v6) => Ipv6Addr::from(v6).to_string(),
            Err(_) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        }
    };
    let mut text = key(&element.key);
    if let Some(end) = &element.key_end {
        text = format!("{text}-{}", key(end));
    }
    if element.flags & ELEM_INTERVAL_END != 0 {
        text.push_str(" (interval end)");
    }
    if let Some(data) = &element.data {
        text = format!("{text} : {data:?}");
    }
    text
}
