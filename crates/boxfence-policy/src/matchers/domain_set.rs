//! Domain pattern lookup whose cost grows with the labels of the name asked
//! about, not with the number of patterns: one hash probe for the exact
//! name and one per proper suffix for the wildcards.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use crate::domain::{DomainPattern, canonical};

/// A compiled set of domain patterns.
#[derive(Debug, Clone, Default)]
pub struct DomainSet {
    exact: HashMap<Box<str>, u32, RandomState>,
    wildcard: HashMap<Box<str>, u32, RandomState>,
    patterns: Vec<DomainPattern>,
}

impl DomainSet {
    /// Compiles the patterns.
    pub fn new(patterns: impl IntoIterator<Item = DomainPattern>) -> Self {
        let mut set = Self::default();
        for pattern in patterns {
            let (table, name) = match &pattern {
                DomainPattern::Exact(name) => (&mut set.exact, name),
                DomainPattern::Wildcard(suffix) => (&mut set.wildcard, suffix),
            };
            if table.contains_key(name.as_str()) {
                continue;
            }
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
        // A wildcard needs at least one label in front of its suffix: a dot
        // at the start of the name has none (`.a.b` is not under `*.a.b`).
        let index = self.exact.get(name).or_else(|| {
            name.match_indices('.')
                .filter(|&(dot, _)| dot > 0)
                .find_map(|(dot, _)| self.wildcard.get(&name[dot + 1..]))
        })?;
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
