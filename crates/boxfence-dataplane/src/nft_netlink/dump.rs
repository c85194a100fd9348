//! A table read back over netlink: one dump each of its chains, rules,
//! sets and objects, one per set of its elements (except those of sets
//! with timeouts, which the resolver changes all the time), assembled
//! into a [`Listing`] like the one the model expects.

use std::collections::BTreeMap;

use nix::errno::Errno;

use super::batch::NFNL_SUBSYS_NFTABLES;
use super::decode;
use crate::netlink::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, Writer};
use crate::nfnl::{NfnlError, NfnlSocket};
use crate::nft::expr::{AnonymousSet, Expr, SET_ANONYMOUS, SetRef};
use crate::nft::{ListedSet, Listing};

/// `NFT_MSG_*` kinds: the answers, and the requests.
pub(super) const NEWTABLE: u16 = 0;
const GETTABLE: u16 = 1;
pub(super) const NEWCHAIN: u16 = 3;
const GETCHAIN: u16 = 4;
pub(super) const NEWRULE: u16 = 6;
const GETRULE: u16 = 7;
pub(super) const NEWSET: u16 = 9;
const GETSET: u16 = 10;
pub(super) const NEWSETELEM: u16 = 12;
const GETSETELEM: u16 = 13;
pub(super) const NEWOBJ: u16 = 18;
const GETOBJ: u16 = 19;
/// `NFPROTO_INET`.
const NFPROTO_INET: u8 = 1;

/// Table `inet <table>` as the kernel holds it, or `None` if there is no
/// such table. Each dump is consistent in itself; a commit between two of
/// them (the resolver's, say) can make the whole differ from any one
/// moment, which a caller that finds a difference checks by listing again.
pub(crate) fn list_table(
    socket: &mut NfnlSocket,
    table: &str,
) -> Result<Option<Listing>, NfnlError> {
    let mut assembly = Assembly::new(table);
    // Every request names the table in its attribute 1.
    let mut ask = |assembly: &mut Assembly, what, kind, flags, set: Option<&str>| {
        request(
            socket,
            &mut |k, p| assembly.absorb(k, p),
            what,
            kind,
            flags,
            |w| {
                w.put_strz(1, table);
                if let Some(set) = set {
                    w.put_strz(2, set); // NFTA_SET_ELEM_LIST_SET
                }
            },
        )
    };
    match ask(&mut assembly, "nf_tables table", GETTABLE, NLM_F_ACK, None) {
        Err(NfnlError::Refused {
            errno: Errno::ENOENT,
            ..
        }) => return Ok(None),
        other => other?,
    }
    for (what, kind) in [
        ("nf_tables chain dump", GETCHAIN),
        ("nf_tables rule dump", GETRULE),
        ("nf_tables set dump", GETSET),
        ("nf_tables object dump", GETOBJ),
    ] {
        ask(&mut assembly, what, kind, NLM_F_DUMP, None)?;
    }
    for set in assembly.sets_to_fill() {
        let what = "nf_tables element dump";
        ask(&mut assembly, what, GETSETELEM, NLM_F_DUMP, Some(&set))?;
    }
    Ok(Some(assembly.finish()))
}

/// Sends one request and feeds its answers (`NFT_MSG_*` kind, payload)
/// to `absorb`.
fn request(
    socket: &mut NfnlSocket,
    absorb: &mut impl FnMut(u16, &[u8]),
    what: &'static str,
    kind: u16,
    flags: u16,
    attributes: impl FnOnce(&mut Writer),
) -> Result<(), NfnlError> {
    let seq = socket.reserve(1);
    let mut w = Writer::with_capacity(64);
    let start = w.begin_message(
        NFNL_SUBSYS_NFTABLES << 8 | kind,
        NLM_F_REQUEST | flags,
        seq,
        NFPROTO_INET,
        0,
    );
    attributes(&mut w);
    w.end_message(start);
    let outcome = socket.exchange(what, w.bytes(), seq..seq + 1, |reply| {
        if reply.kind >> 8 == NFNL_SUBSYS_NFTABLES {
            absorb(reply.kind & 0xff, reply.payload);
        }
        Ok(())
    })?;
    match outcome.into_iter().next() {
        Some(Err(errno)) => Err(NfnlError::Refused {
            request: what,
            errno,
        }),
        _ => Ok(()),
    }
}

/// The messages of one table, gathered into a listing: the kernel's dump,
/// or (in tests) the messages of a batch that makes the table.
#[derive(Debug)]
pub(super) struct Assembly {
    table: String,
    listing: Listing,
    /// A rule's own sets, by the name the kernel (or the batch) gave them.
    anonymous: BTreeMap<String, AnonymousSet>,
}

impl Assembly {
    pub(super) fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            listing: Listing::default(),
            anonymous: BTreeMap::new(),
        }
    }

    /// Takes in one `NFT_MSG_NEW*` message (others, and those of other
    /// tables, are ignored).
    pub(super) fn absorb(&mut self, kind: u16, payload: &[u8]) {
        let ours = |table: &String| *table == self.table;
        match kind {
            NEWTABLE => {
                if let Some((_, flags)) = decode::table(payload).filter(|(t, _)| ours(t)) {
                    self.listing.table_flags = flags;
                }
            }
            NEWCHAIN => {
                if let Some((_, name, hook)) = decode::chain(payload).filter(|(t, ..)| ours(t)) {
                    self.listing.chains.entry(name).or_default().hook = hook;
                }
            }
            NEWRULE => {
                if let Some((_, chain, exprs)) = decode::rule(payload).filter(|(t, ..)| ours(t)) {
                    self.listing
                        .chains
                        .entry(chain)
                        .or_default()
                        .rules
                        .push(exprs);
                }
            }
            NEWSET => {
                if let Some((_, name, spec)) = decode::set(payload).filter(|(t, ..)| ours(t)) {
                    if spec.flags & SET_ANONYMOUS != 0 {
                        let elements = Vec::new();
                        self.anonymous.insert(name, AnonymousSet { spec, elements });
                    } else {
                        self.listing.sets.insert(name, ListedSet::empty(spec));
                    }
                }
            }
            NEWSETELEM => {
                if let Some((_, set, elements)) =
                    decode::set_elements(payload).filter(|(t, ..)| ours(t))
                {
                    if let Some(anonymous) = self.anonymous.get_mut(&set) {
                        anonymous.elements.extend(elements);
                    } else if let Some(Some(listed)) =
                        self.listing.sets.get_mut(&set).map(|s| &mut s.elements)
                    {
                        listed.extend(elements);
                    }
                }
            }
            NEWOBJ => {
                if let Some((_, name, kind)) = decode::object(payload).filter(|(t, ..)| ours(t)) {
                    self.listing.objects.insert(name, kind);
                }
            }
            _ => {}
        }
    }

    /// The sets whose elements the listing compares: rules' own sets and
    /// named sets without timeouts.
    fn sets_to_fill(&self) -> Vec<String> {
        let named = self
            .listing
            .sets
            .iter()
            .filter(|(_, set)| set.elements.is_some())
            .map(|(name, _)| name.clone());
        self.anonymous.keys().cloned().chain(named).collect()
    }

    /// The listing: rules' lookups of their own sets carry those sets.
    pub(super) fn finish(mut self) -> Listing {
        for set in self.anonymous.values_mut() {
            set.elements.sort();
        }
        for chain in self.listing.chains.values_mut() {
            for expr in chain.rules.iter_mut().flatten() {
                if let Expr::Lookup { set, .. } = expr
                    && let SetRef::Named(name) = set
                    && let Some(anonymous) = self.anonymous.get(name)
                {
                    *set = SetRef::Anonymous(anonymous.clone());
                }
            }
        }
        for set in self.listing.sets.values_mut() {
            if let Some(elements) = &mut set.elements {
                elements.sort();
                elements.dedup();
            }
        }
        self.listing
    }
}

/// What the kernel would list after `commands` on an empty table, read
/// from their encoding: the messages after the batch's last `DELTABLE`
/// (the deletes among them flush what was just made, so change nothing).
#[cfg(test)]
pub(crate) fn listing_of_batch(
    table: &str,
    commands: &[crate::nft::Command],
) -> Result<Listing, super::NetlinkError> {
    /// `NFT_MSG_DELTABLE`.
    const DELTABLE: u16 = 2;
    let batch = super::commands::encode(table, 1, commands)?;
    let messages: Vec<_> = crate::netlink::messages(&batch.bytes)
        .collect::<Result<_, _>>()
        .map_err(super::NetlinkError::Malformed)?;
    let start = messages
        .iter()
        .rposition(|m| m.kind == NFNL_SUBSYS_NFTABLES << 8 | DELTABLE)
        .map_or(0, |i| i + 1);
    let mut assembly = Assembly::new(table);
    for message in &messages[start..] {
        if message.kind >> 8 == NFNL_SUBSYS_NFTABLES {
            assembly.absorb(message.kind & 0xff, message.payload);
        }
    }
    Ok(assembly.finish())
}
