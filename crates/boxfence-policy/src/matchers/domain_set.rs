//! Domain pattern lookup whose cost grows with the labels of the name asked
//! about, not with the number of patterns: one hash probe for the exact
//! name and one per proper suffix for the wildcards. Probes for label
//! counts that no pattern has are skipped without hashing (a set of
//! `*.example.com` patterns never probes `com`).

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::domain::{DomainPattern, canonical};

/// A compiled set of domain patterns.
#[derive(Debug, Clone, Default)]
pub struct DomainSet {
    exact: HashMap<Box<str>, u32, RandomState>,
    wildcard: HashMap<Box<str>, u32, RandomState>,
    /// Label counts of the exact names (see [`label_bit`]).
    exact_labels: u64,
    /// Label counts of the wildcard suffixes (see [`label_bit`]).
    wildcard_labels: u64,
    patterns: Vec<DomainPattern>,
}

/// The bit that stands for names of `labels` labels; 63 or more share one.
fn label_bit(labels: usize) -> u64 {
    1 << labels.min(63)
}

/// The number of labels of `name`; `None` when one is empty (a leading,
/// trailing or doubled dot): such a name is no host name.
fn labels(name: &str) -> Option<usize> {
    let mut count = 1;
    let mut after_dot = true;
    for byte in name.bytes() {
        if byte == b'.' {
            if after_dot {
                return None;
            }
            count += 1;
            after_dot = true;
        } else {
            after_dot = false;
        }
    }
    (!after_dot).then_some(count)
}

impl DomainSet {
    /// Compiles the patterns.
    pub fn new(patterns: impl IntoIterator<Item = DomainPattern>) -> Self {
        let mut set = Self::default();
        for pattern in patterns {
            let (table, mask, name) = match &pattern {
                DomainPattern::Exact(name) => (&mut set.exact, &mut set.exact_labels, name),
                DomainPattern::Wildcard(suffix) => {
                    (&mut set.wildcard, &mut set.wildcard_labels, suffix)
                }
            };
            if table.contains_key(name.as_str()) {
                continue;
            }
            // Stored names are valid host names: every label is non-empty.
            *mask |= label_bit(labels(name.as_str()).unwrap_or(0));
            // Patterns number fewer than u32::MAX: lists are bounded far lower.
            let index = u32::try_from(set.patterns.len()).unwrap_or(u32::MAX);
            table.insert(name.as_str().into(), index);
            set.patterns.push(pattern);
        }
        set
    }

    /// The pattern that matches `name` (any case, trailing dot or not):
    /// the exact name first, then the closest wildcard.
    pub fn lookup(&self, name: &str) -> Option<&DomainPattern> {
        if self.patterns.is_empty() {
            return None;
        }
        let name = canonical(name)?;
        let name = name.as_ref();
        // A name with an empty label matches nothing (`x..github.com` is
        // not under `*.github.com`).
        let labels = labels(name)?;
        let exact = || {
            (self.exact_labels & label_bit(labels) != 0)
                .then(|| self.exact.get(name))
                .flatten()
        };
        // The suffix after the `n`th dot (from 0) has `labels - n - 1`
        // labels. A wildcard needs at least one label in front of its
        // suffix: a dot at the start of the name has none (`.a.b` is not
        // under `*.a.b`).
        let wildcard = || {
            name.match_indices('.')
                .enumerate()
                .filter(|&(n, (dot, _))| {
                    dot > 0 && self.wildcard_labels & label_bit(labels - n - 1) != 0
                })
                .find_map(|(_, (dot, _))| self.wildcard.get(&name[dot + 1..]))
        };
        let index = exact().or_else(wildcard)?;
        self.patterns.get(*index as usize)
    }

    /// True when no pattern is in the set.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The distinct patterns, in the order given.
    pub fn patterns(&self) -> &[DomainPattern] {
        &self.patterns
    }
}
