//! The `NETLINK_NETFILTER` socket and one transaction per call.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, getsockopt, recv, send, setsockopt, sockopt};

use super::NetlinkError;
use super::batch::Batch;
use super::element::SetElement;
use super::message::{Operation, SetGroup, check_name, encode_batch, group};
use super::reply::{Acks, Outcome};
use super::{commands, counters};
use crate::nft::Command;

/// How long one call waits for the kernel's answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

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
    fd: OwnedFd,
    /// The next batch's `BATCH_BEGIN` sequence number.
    seq: u32,
    refresh: RefreshMode,
    removal: RemovalMode,
    /// The kernel's `sk_sndbuf`: a batch must fit in it less 32 bytes.
    sndbuf: usize,
    reply: Vec<u8>,
}

impl NftSocket {
    /// Opens a socket in the calling thread's current network namespace.
    /// Writing needs `CAP_NET_ADMIN` there (checked per batch). Element
    /// writes start on the paths every kernel takes
    /// ([`RefreshMode::DeleteAndAdd`], [`RemovalMode::DeleteEach`]) until
    /// told the kernel has better ones.
    pub fn open() -> Result<Self, NetlinkError> {
        let (fd, sndbuf) = crate::nfnl::open_socket(REPLY_TIMEOUT)
            .map_err(|(op, errno)| NetlinkError::Socket { op, errno })?;
        Ok(Self {
            fd,
            seq: 1,
            refresh: RefreshMode::DeleteAndAdd,
            removal: RemovalMode::DeleteEach,
            sndbuf,
            reply: vec![0; 64 * 1024],
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
            let batch = encode_batch(table, self.seq, &steps);
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
        let batch = commands::encode(table, self.seq, commands)?;
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
        let seq = self.seq;
        let request = counters::request(table, seq, query);
        let mut collected = counters::Collected::new(seq, query);
        self.seq = self
            .seq
            .wrapping_add(u32::try_from(names.map_or(1, <[String]>::len)).unwrap_or(u32::MAX));
        if names.is_some_and(<[String]>::is_empty) {
            return Ok(HashMap::new());
        }
        self.fit_send_buffer(request.len())?;
        send(self.fd.as_raw_fd(), &request, MsgFlags::empty()).map_err(socket_error("send"))?;
        self.receive(table, |datagram| {
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
        let batch = encode_batch(table, self.seq, steps);
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
        self.seq = self.seq.wrapping_add(used);
        self.fit_send_buffer(batch.bytes.len())?;
        let sent = send(self.fd.as_raw_fd(), &batch.bytes, MsgFlags::empty())
            .map_err(socket_error("send"))?;
        if sent != batch.bytes.len() {
            return Err(NetlinkError::Malformed("short send"));
        }
        let needed = batch.max_reply_len();
        if self.reply.len() < needed {
            self.reply.resize(needed, 0);
        }
        let mut acks = Acks::new(batch);
        self.receive(table, |datagram| match acks.absorb(datagram)? {
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

    /// Reads reply datagrams into `each` until it returns a value (or an
    /// error), within [`REPLY_TIMEOUT`].
    fn receive<T>(
        &mut self,
        table: &str,
        mut each: impl FnMut(&[u8]) -> Result<Option<T>, NetlinkError>,
    ) -> Result<T, NetlinkError> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let timeout = || NetlinkError::Timeout {
            table: table.to_owned(),
            waited: REPLY_TIMEOUT,
        };
        loop {
            if Instant::now() > deadline {
                return Err(timeout());
            }
            // MSG_TRUNC: the datagram's real length, to notice truncation.
            let len = match recv(self.fd.as_raw_fd(), &mut self.reply, MsgFlags::MSG_TRUNC) {
                Ok(len) => len,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(timeout()),
                Err(errno) => return Err(NetlinkError::Socket { op: "recv", errno }),
            };
            if len > self.reply.len() {
                return Err(NetlinkError::Malformed(
                    "reply larger than the receive buffer",
                ));
            }
            if let Some(value) = each(&self.reply[..len])? {
                return Ok(value);
            }
        }
    }

    /// Netlink refuses a datagram over the send buffer less 32 bytes; grow
    /// it (past `wmem_max` with `CAP_NET_ADMIN`, as nft does) when needed.
    fn fit_send_buffer(&mut self, len: usize) -> Result<(), NetlinkError> {
        if len + 32 <= self.sndbuf {
            return Ok(());
        }
        // The kernel doubles the value asked for.
        let want = len + 4096;
        if setsockopt(&self.fd, sockopt::SndBufForce, &want).is_err() {
            let _ = setsockopt(&self.fd, sockopt::SndBuf, &want);
        }
        self.sndbuf =
            getsockopt(&self.fd, sockopt::SndBuf).map_err(socket_error("getsockopt SO_SNDBUF"))?;
        if len + 32 > self.sndbuf {
            return Err(NetlinkError::TooLarge { bytes: len });
        }
        Ok(())
    }
}

fn socket_error(op: &'static str) -> impl Fn(Errno) -> NetlinkError {
    move |errno| NetlinkError::Socket { op, errno }
}
