//! A table read back over netlink: one dump each of its chains, rules,
//! sets and objects, one per set of its elements (except those of sets
//! with timeouts, which the resolver changes all the time), assembled
//! into a [`Listing`] like the one the model expects.

use std::collections::BTreeMap;

use nix::errno::Errno;

use super::batch::NFNL_SUBSYS_NFTABLES;
use super::decode;
use crate::netlink::socket::Socket;
use crate::netlink::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, Writer};
use crate::nfnl::NfnlError;
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
pub(super) const NEWFLOWTABLE: u16 = 22;
const GETFLOWTABLE: u16 = 23;
/// `NFPROTO_INET`.
const NFPROTO_INET: u8 = 1;

/// Table `inet <table>` as the kernel holds it, or `None` if there is no
/// such table. Each dump is consistent in itself; a commit between two of
/// them (the resolver's, say) can make the whole differ from any one
/// moment, which a caller that finds a difference checks by listing again.
pub(crate) fn list_table(socket: &mut Socket, table: &str) -> Result<Option<Listing>, NfnlError> {
    let mut assembly = Assembly::new(table);
    let found = requests(socket, &mut assembly, GETTABLE, NLM_F_ACK, table, &[""]);
    match found?.pop().flatten() {
        Some(Errno::ENOENT) => return Ok(None),
        Some(errno) => return Err(refused("nf_tables table", errno)),
        None => {}
    }
    for (what, kind) in [
        ("nf_tables chain dump", GETCHAIN),
        ("nf_tables rule dump", GETRULE),
        ("nf_tables set dump", GETSET),
        ("nf_tables object dump", GETOBJ),
        ("nf_tables flowtable dump", GETFLOWTABLE),
    ] {
        if let Some(errno) = requests(socket, &mut assembly, kind, NLM_F_DUMP, table, &[""])?
            .pop()
            .flatten()
        {
            return Err(refused(what, errno));
        }
    }
    // One dump per set: the kernel runs one dump at a time per socket
    // (it refuses a second with `EBUSY` until the first has been read
    // to its end), so they cannot share a datagram.
    for set in assembly.sets_to_fill() {
        if let Some(errno) = requests(socket, &mut assembly, GETSETELEM, NLM_F_DUMP, table, &[set])?
            .pop()
            .flatten()
        {
            return Err(refused("nf_tables element dump", errno));
        }
    }
    Ok(Some(assembly.finish()))
}

fn refused(request: &'static str, errno: Errno) -> NfnlError {
    NfnlError::refused(request, errno)
}

/// Sends one request of kind `kind` about table `inet <table>` per name
/// in `names` (a set's name, or empty), all in one datagram, and feeds
/// the answers to `assembly`; returns each request's error, if any. A
/// request that was not answered in time fails the whole call.
fn requests(
    socket: &mut Socket,
    assembly: &mut Assembly,
    kind: u16,
    flags: u16,
    table: &str,
    names: &[impl AsRef<str>],
) -> Result<Vec<Option<Errno>>, NfnlError> {
    let count = u32::try_from(names.len()).unwrap_or(u32::MAX);
    let first = socket.reserve(count);
    let mut w = Writer::with_capacity(64 * names.len());
    for (seq, name) in (first..).zip(names) {
        let start = w.begin_message(
            NFNL_SUBSYS_NFTABLES << 8 | kind,
            NLM_F_REQUEST | flags,
            seq,
            NFPROTO_INET,
            0,
        );
        // The table's attribute is 1 in every request; a set of a
        // `GETSETELEM` (`NFTA_SET_ELEM_LIST_SET`) is 2.
        w.put_strz(1, table);
        let name = name.as_ref();
        if !name.is_empty() {
            w.put_strz(2, name);
        }
        w.end_message(start);
    }
    let outcomes = socket
        .exchange(w.bytes(), first..first.wrapping_add(count), |reply| {
            if reply.kind >> 8 == NFNL_SUBSYS_NFTABLES {
                assembly.absorb(reply.kind & 0xff, reply.payload);
            }
            Ok(())
        })
        .map_err(NfnlError::of("nf_tables dump"))?;
    Ok(outcomes.into_iter().map(Result::err).collect())
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
            // A batch may add devices to a flowtable it made earlier.
            NEWFLOWTABLE => {
                if let Some((_, name, found)) = decode::flowtable(payload).filter(|(t, ..)| ours(t))
                {
                    match self.listing.flowtables.get_mut(&name) {
                        Some(flowtable) => flowtable.devices.extend(found.devices),
                        None => {
                            self.listing.flowtables.insert(name, found);
                        }
                    }
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
