//! Kernel objects and how a batch creates, refills or deletes them. One
//! batch is one nftables transaction: the kernel applies all of it or none.

use crate::nft::{BaseChain, Command, Element, Rule, SetKind, command_line};

/// A named set, chain or counter of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Object {
    /// A set and its elements.
    Set {
        name: String,
        kind: SetKind,
        elements: Vec<Element>,
    },
    /// A chain and its rules: a regular chain, or with `base` a base chain.
    Chain {
        name: String,
        base: Option<BaseChain>,
        rules: Vec<Rule>,
    },
    /// A named counter (kept across updates of its owner).
    Counter { name: String },
}

impl Object {
    pub(crate) fn set(name: String, kind: SetKind, elements: Vec<Element>) -> Self {
        Self::Set {
            name,
            kind,
            elements,
        }
    }

    pub(crate) fn chain(name: String, rules: Vec<Rule>) -> Self {
        Self::Chain {
            name,
            base: None,
            rules,
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Set { name, .. } | Self::Chain { name, .. } | Self::Counter { name } => name,
        }
    }

    pub(crate) fn ingress_chain(name: String, device: String, rules: Vec<Rule>) -> Self {
        Self::base_chain(name, BaseChain::ingress(device), rules)
    }

    pub(crate) fn base_chain(name: String, base: BaseChain, rules: Vec<Rule>) -> Self {
        Self::Chain {
            name,
            base: Some(base),
            rules,
        }
    }
}

/// One transaction for the table: commands, applied all or none.
#[derive(Debug, Clone)]
pub struct Batch {
    table: String,
    commands: Vec<Command>,
}

impl Batch {
    pub(crate) fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            commands: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, command: Command) {
        self.commands.push(command);
    }

    /// Creates the object if missing and gives it exactly this content
    /// (a learned set keeps its elements).
    pub(crate) fn upsert(&mut self, object: &Object) {
        match object {
            Object::Set {
                name,
                kind,
                elements,
            } => {
                self.push(Command::AddSet {
                    name: name.clone(),
                    kind: *kind,
                });
                if !kind.keeps_elements() {
                    self.push(Command::FlushSet(name.clone()));
                    if !elements.is_empty() {
                        self.push(Command::AddElements {
                            set: name.clone(),
                            elements: elements.clone(),
                        });
                    }
                }
            }
            Object::Chain { name, base, rules } => {
                self.push(match base {
                    None => Command::AddChain(name.clone()),
                    Some(base) => Command::AddBaseChain {
                        name: name.clone(),
                        base: base.clone(),
                    },
                });
                self.push(Command::FlushChain(name.clone()));
                for rule in rules {
                    self.push(Command::AddRule {
                        chain: name.clone(),
                        rule: rule.clone(),
                    });
                }
            }
            Object::Counter { name } => self.push(Command::AddCounter(name.clone())),
        }
    }

    /// Empties a chain, so that the chains it jumps to lose a reference.
    pub(crate) fn flush_chain(&mut self, object: &Object) {
        if let Object::Chain { name, .. } = object {
            self.push(Command::FlushChain(name.clone()));
        }
    }

    /// Deletes the object; chains must have been flushed earlier in the
    /// batch and nothing may refer to it any more.
    pub(crate) fn delete(&mut self, object: &Object) {
        let command = match object {
            Object::Set { name, .. } => Command::DeleteSet(name.clone()),
            Object::Chain { name, .. } => Command::DeleteChain(name.clone()),
            Object::Counter { name } => Command::DeleteCounter(name.clone()),
        };
        self.push(command);
    }

    /// The table this batch is for.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// True when the batch does nothing.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The commands.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The whole batch as `nft -f` text (for messages and tests).
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for command in &self.commands {
            text.push_str(&command_line(&self.table, command));
            text.push('\n');
        }
        text
    }
}
