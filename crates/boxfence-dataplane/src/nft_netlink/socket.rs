//! The `NETLINK_NETFILTER` socket and one transaction per call.

use std::collections::{HashMap, HashSet};

use nix::errno::Errno;

use super::NetlinkError;
use super::batch::Batch;
use super::element::SetElement;
use super::message::{Operation, SetGroup, check_name, encode_batch, group};
use super::reply::{Acks, Outcome};
use super::{commands, counters};
use crate::netlink::socket::{Family, Socket, SocketError};
use crate::nft::Command;

/// How [`NftSocket::add_elements`] makes an existing element's timeout
/// start over.
///
/// A `NEWSETELEM` without `NLM_F_EXCL` for an element that exists is no
/// error; up to Linux 6.11 it also changes nothing, so the element keeps
/// its old expiry. Linux 6.12 (upstream commit 4201f3938914, "netfilter:
/// nf_tables: set element timeout update support") makes the same
/// message set the element's timeout to the one given and its expiry to
/// now + timeout, in the transaction. Which one the running kernel does
/// is probed (`crate::features`), never read off its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    /// One `NEWSETELEM` per set: needs the kernel to update timeouts in
    /// place.
    InPlace,
    /// `NEWSETELEM`, `DELSETELEM`, `NEWSETELEM` of the same elements in
    /// the same batch, for older kernels: the first message makes sure
    /// each element exists (so the delete cannot fail), the delete
    /// retires it and the last one inserts it anew with its timeout. The
    /// batch is one transaction, so packets never see an element
    /// missing. Three times the bytes, about the same latency.
    DeleteAndAdd,
}

/// How [`NftSocket::remove_elements`] removes elements that may be gone
/// already (expired, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalMode {
    /// `NFT_MSG_DESTROYSETELEM` (Linux 6.3): the kernel skips elements
    /// that are not there.
    Destroy,
    /// One `DELSETELEM` per element, for older kernels: one missing
    /// element aborts the transaction, but the kernel answers every
    /// message, so the answer names each missing one and the batch is
    /// sent again without them (each retry is smaller; usually there is
    /// none). Larger batches, the same outcome.
    DeleteEach,
}

/// A `NETLINK_NETFILTER` socket bound to the network namespace it was
/// opened in (the calling thread's, at [`NftSocket::open`]), for good:
/// open it once and reuse it, from any thread.
///
/// Each call is one nf_tables transaction for table `inet <table>` and
/// returns once the kernel has acknowledged or refused every message of
/// it: on `Ok`, packets already see the change.
#[derive(Debug)]
pub struct NftSocket {
    socket: Socket,
    refresh: RefreshMode,
    removal: RemovalMode,
}

impl NftSocket {
    /// Opens a socket in the calling thread's current network namespace.
    /// Writing needs `CAP_NET_ADMIN` there (checked per batch). Element
    /// writes start on the paths every kernel takes
    /// ([`RefreshMode::DeleteAndAdd`], [`RemovalMode::DeleteEach`]) until
    /// told the kernel has better ones.
    pub fn open() -> Result<Self, NetlinkError> {
        Ok(Self {
            socket: Socket::open(Family::Netfilter).map_err(lost(""))?,
            refresh: RefreshMode::DeleteAndAdd,
            removal: RemovalMode::DeleteEach,
        })
    }

    /// How [`NftSocket::add_elements`] refreshes existing elements.
    pub fn refresh_mode(&self) -> RefreshMode {
        self.refresh
    }

    /// Sets how existing elements' timeouts are refreshed.
    pub fn set_refresh_mode(&mut self, mode: RefreshMode) {
        self.refresh = mode;
    }

    /// How [`NftSocket::remove_elements`] removes elements.
    pub fn removal_mode(&self) -> RemovalMode {
        self.removal
    }

    /// Sets how elements that may be gone are removed.
    pub fn set_removal_mode(&mut self, mode: RemovalMode) {
        self.removal = mode;
    }

    /// Adds `elements` to sets of table `inet <table>` in one
    /// transaction, each with its own timeout. An element that is already
    /// there is no error, and its timeout starts over with the one given
    /// (see [`RefreshMode`]: the new timeout replaces the old one, even if
    /// shorter). A key given twice for one set counts once, with the last
    /// timeout. All or nothing: on error no element was added.
    pub fn add_elements(
        &mut self,
        table: &str,
        elements: &[SetElement],
    ) -> Result<(), NetlinkError> {
        let groups = group(table, elements)?;
        let steps: Vec<(Operation, &SetGroup<'_>)> = match self.refresh {
            RefreshMode::InPlace => groups.iter().map(|g| (Operation::New, g)).collect(),
            RefreshMode::DeleteAndAdd => groups
                .iter()
                .flat_map(|g| {
                    [
                        (Operation::New, g),
                        (Operation::Delete, g),
                        (Operation::New, g),
                    ]
                })
                .collect(),
        };
        self.transact(table, &steps)
    }

    /// Deletes `elements` (timeouts are ignored) in one transaction; an
    /// element that is not there (expired, say) fails the whole batch with
    /// `ENOENT`.
    pub fn delete_elements(
        &mut self,
        table: &str,
        elements: &[SetElement],
    ) -> Result<(), NetlinkError> {
        self.remove(table, elements, Operation::Delete)
    }

    /// Like [`NftSocket::delete_elements`], but elements that are not
    /// there are no error (see [`RemovalMode`]). All or nothing: on error
    /// no element was removed.
    pub fn remove_elements(
        &mut self,
        table: &str,
        elements: &[SetElement],
    ) -> Result<(), NetlinkError> {
        match self.removal {
            RemovalMode::Destroy => self.remove(table, elements, Operation::Destroy),
            RemovalMode::DeleteEach => self.delete_present(table, elements),
        }
    }

    fn remove(
        &mut self,
        table: &str,
        elements: &[SetElement],
        operation: Operation,
    ) -> Result<(), NetlinkError> {
        let groups = group(table, elements)?;
        let steps: Vec<(Operation, &SetGroup<'_>)> =
            groups.iter().map(|g| (operation, g)).collect();
        self.transact(table, &steps)
    }

    /// [`RemovalMode::DeleteEach`]: a message per element, and again
    /// without those the kernel found missing.
    fn delete_present(&mut self, table: &str, elements: &[SetElement]) -> Result<(), NetlinkError> {
        let mut singles: Vec<SetGroup<'_>> = group(table, elements)?
            .into_iter()
            .flat_map(|g| {
                g.items.into_iter().map(move |item| SetGroup {
                    set: g.set,
                    items: vec![item],
                })
            })
            .collect();
        while !singles.is_empty() {
            let steps: Vec<(Operation, &SetGroup<'_>)> =
                singles.iter().map(|g| (Operation::Delete, g)).collect();
            let batch = encode_batch(table, self.socket.next_seq(), &steps);
            let refused = match self.send_and_collect(table, &batch)? {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            };
            if refused.iter().any(|&(_, errno)| errno != Errno::ENOENT) {
                return Err(self.refusal(table, &batch, &refused));
            }
            let missing: HashSet<usize> = refused.iter().map(|&(index, _)| index).collect();
            let mut index = 0;
            singles.retain(|_| {
                index += 1;
                !missing.contains(&(index - 1))
            });
        }
        Ok(())
    }

    /// Applies ruleset `commands` to table `inet <table>` as one
    /// transaction: on `Ok`, packets see all of it; on error, none.
    pub fn apply(&mut self, table: &str, commands: &[Command]) -> Result<(), NetlinkError> {
        check_name(table)?;
        if commands.is_empty() {
            return Ok(());
        }
        let batch = commands::encode(table, self.socket.next_seq(), commands)?;
        self.send_batch(table, &batch)
    }

    /// The packet counts of the named counters of table `inet <table>`,
    /// by name: all of them (`names` = `None`, one dump) or those named
    /// (one request each; a missing one is an error). No transaction.
    pub fn counters(
        &mut self,
        table: &str,
        names: Option<&[String]>,
    ) -> Result<HashMap<String, u64>, NetlinkError> {
        check_name(table)?;
        let query = names.map_or(counters::Query::All, counters::Query::Named);
        let seq = self
            .socket
            .reserve(u32::try_from(names.map_or(1, <[String]>::len)).unwrap_or(u32::MAX));
        let request = counters::request(table, seq, query);
        let mut collected = counters::Collected::new(seq, query);
        if names.is_some_and(<[String]>::is_empty) {
            return Ok(HashMap::new());
        }
        self.socket.send(&request).map_err(lost(table))?;
        self.socket.receive(lost(table), |datagram| {
            Ok(collected
                .absorb(datagram)?
                .then(|| std::mem::take(&mut collected.packets)))
        })
    }

    /// Sends `steps` as one batch and waits for every answer.
    fn transact(
        &mut self,
        table: &str,
        steps: &[(Operation, &SetGroup<'_>)],
    ) -> Result<(), NetlinkError> {
        if steps.is_empty() {
            return Ok(());
        }
        let batch = encode_batch(table, self.socket.next_seq(), steps);
        self.send_batch(table, &batch)
    }

    fn send_batch(&mut self, table: &str, batch: &Batch) -> Result<(), NetlinkError> {
        self.send_and_collect(table, batch)?
            .map_err(|refused| self.refusal(table, batch, &refused))
    }

    /// Sends `batch` and waits for every answer: `Ok(Err(_))` lists the
    /// refused messages (index, error), in order; nothing was applied.
    fn send_and_collect(
        &mut self,
        table: &str,
        batch: &Batch,
    ) -> Result<Result<(), Vec<(usize, Errno)>>, NetlinkError> {
        // BEGIN, the parts, END.
        let used = u32::try_from(batch.parts.len() + 2).unwrap_or(u32::MAX);
        self.socket.reserve(used);
        self.socket.send(&batch.bytes).map_err(lost(table))?;
        self.socket.expect_replies(batch.max_reply_len());
        let mut acks = Acks::new(batch);
        self.socket
            .receive(lost(table), |datagram| match acks.absorb(datagram)? {
                Outcome::Pending => Ok(None),
                Outcome::Committed => Ok(Some(Ok(()))),
                Outcome::Refused(refused) => Ok(Some(Err(refused))),
                Outcome::BatchRefused(errno) => Err(NetlinkError::Batch {
                    table: table.to_owned(),
                    errno,
                }),
            })
    }

    /// The error for a refused batch: its first refused message.
    fn refusal(&self, table: &str, batch: &Batch, refused: &[(usize, Errno)]) -> NetlinkError {
        let Some(&(index, errno)) = refused.first() else {
            return NetlinkError::Malformed("a refusal without a refused message");
        };
        let part = &batch.parts[index];
        match &part.command {
            Some(command) => NetlinkError::Command {
                command: command.clone(),
                errno,
            },
            None => NetlinkError::Kernel {
                operation: part.operation,
                table: table.to_owned(),
                set: part.set.clone(),
                elements: part.elements,
                errno,
            },
        }
    }
}

/// The error of a socket failure during a call for table `inet <table>`.
/// Refusals and namespaces come from calls this socket does not make
/// (`Socket::request`, `Socket::open_in`); they keep their errno or say
/// `setns`.
fn lost(table: &str) -> impl Fn(SocketError) -> NetlinkError + '_ {
    move |error| match error {
        SocketError::Call { op, errno } => NetlinkError::Socket { op, errno },
        SocketError::Refused(errno) => NetlinkError::Socket {
            op: "request",
            errno,
        },
        SocketError::Namespace(_) => NetlinkError::Socket {
            op: "setns",
            errno: nix::errno::Errno::EINVAL,
        },
        SocketError::Timeout(waited) => NetlinkError::Timeout {
            table: table.to_owned(),
            waited,
        },
        SocketError::TooLarge(bytes) => NetlinkError::TooLarge { bytes },
        SocketError::Truncated { .. } => {
            NetlinkError::Malformed("reply larger than the receive buffer")
        }
        SocketError::Malformed(what) => NetlinkError::Malformed(what),
    }
}
