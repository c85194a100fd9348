//! Reading the kernel's answers to a batch.
//!
//! Every message of our batches carries `NLM_F_ACK`, so nfnetlink answers
//! each with an `NLMSG_ERROR` (error 0 is the acknowledgement), all after
//! the transaction was committed or aborted. One error in any message
//! aborts the whole batch; the other messages may still be acknowledged
//! with 0. An error about the batch as a whole (no `CAP_NET_ADMIN`, a
//! failed commit) comes with `BATCH_BEGIN`'s sequence number.

use nix::errno::Errno;

use super::NetlinkError;
use super::batch::Batch;
use crate::netlink::{NLMSG_ERROR, messages};

/// What the replies read so far say about one batch.
#[derive(Debug)]
pub(super) struct Acks {
    begin_seq: u32,
    acked: Vec<bool>,
    expect_ack: Vec<bool>,
    /// Acknowledgements asked for and not yet read.
    remaining: usize,
    /// The refused messages: index and the kernel's error.
    errors: Vec<(usize, Errno)>,
}

/// The batch's fate once every reply is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Still waiting for acknowledgements.
    Pending,
    /// Every message was acknowledged without error: committed.
    Committed,
    /// These messages (index, error; in order) were refused: nothing
    /// was applied.
    Refused(Vec<(usize, Errno)>),
    /// The batch as a whole was refused.
    BatchRefused(Errno),
}

impl Acks {
    pub(super) fn new(batch: &Batch) -> Self {
        Self {
            begin_seq: batch.begin_seq,
            acked: vec![false; batch.parts.len()],
            expect_ack: batch.expect_ack.clone(),
            remaining: batch.expect_ack.iter().filter(|&&ack| ack).count(),
            errors: Vec::new(),
        }
    }

    /// Takes in one datagram; replies to other (earlier) batches are
    /// ignored by their sequence numbers.
    pub(super) fn absorb(&mut self, datagram: &[u8]) -> Result<Outcome, NetlinkError> {
        for message in messages(datagram) {
            let message = message.map_err(NetlinkError::Malformed)?;
            if message.kind != NLMSG_ERROR {
                continue;
            }
            let Some(code) = message.payload.get(..4) else {
                return Err(NetlinkError::Malformed("short NLMSG_ERROR"));
            };
            let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
            let errno = (code != 0).then(|| Errno::from_raw(code.saturating_neg()));
            let offset = message.seq.wrapping_sub(self.begin_seq) as usize;
            if offset == 0 {
                if let Some(errno) = errno {
                    return Ok(Outcome::BatchRefused(errno));
                }
                continue;
            }
            let index = offset - 1;
            if index >= self.acked.len() || self.acked[index] {
                continue;
            }
            self.acked[index] = true;
            if self.expect_ack[index] {
                self.remaining -= 1;
            }
            if let Some(errno) = errno {
                self.errors.push((index, errno));
            }
        }
        Ok(self.outcome())
    }

    fn outcome(&mut self) -> Outcome {
        match (self.remaining, self.errors.is_empty()) {
            (0, true) => Outcome::Committed,
            (0, false) => {
                let mut errors = std::mem::take(&mut self.errors);
                errors.sort_unstable_by_key(|&(index, _)| index);
                Outcome::Refused(errors)
            }
            _ => Outcome::Pending,
        }
    }
}
