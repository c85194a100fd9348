//! The nfnetlink batch: `NFNL_MSG_BATCH_BEGIN`, nf_tables messages,
//! `NFNL_MSG_BATCH_END`, sent in one datagram; the kernel applies it as one
//! transaction, or none of it.

use crate::netlink::{NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN, Start, Writer};

/// `NFNL_SUBSYS_NFTABLES`: the batch's `res_id`, and the high byte of
/// every nf_tables message type.
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (`NLMSG_MIN_TYPE`).
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub(super) const NFNL_MSG_BATCH_END: u16 = 0x11;

/// `AF_UNSPEC`, the batch messages' family.
const AF_UNSPEC: u8 = 0;
/// `NFPROTO_INET`: tables of family `inet`.
const NFPROTO_INET: u8 = 1;

/// `NLM_F_APPEND`: a new rule goes to the end of its chain.
pub(super) const NLM_F_APPEND: u16 = 0x800;

/// The largest message the kernel may echo back in an error.
const MAX_MESSAGE_LEN: usize = 68 * 1024;

/// One message of a batch, to map the kernel's answer back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    /// The message kind, e.g. `NEWSETELEM`, `NEWRULE`.
    pub(super) operation: &'static str,
    /// The set or chain the message is about.
    pub(super) set: String,
    /// How many set elements it carries.
    pub(super) elements: usize,
    /// For ruleset commands: the command as nft text, for errors.
    pub(super) command: Option<String>,
}

/// An encoded batch.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) bytes: Vec<u8>,
    /// The sequence number of `BATCH_BEGIN`; part `i` has `begin_seq + 1 + i`.
    pub(super) begin_seq: u32,
    pub(super) parts: Vec<Part>,
    /// Which parts asked for an acknowledgement (`NLM_F_ACK`).
    pub(super) expect_ack: Vec<bool>,
}

impl Batch {
    /// The size of the largest reply datagram one of its messages can
    /// cause (an error echoes the message).
    pub(super) fn max_reply_len(&self) -> usize {
        // nlmsghdr + nlmsgerr.error + the echoed message.
        NLMSG_HDRLEN + 4 + MAX_MESSAGE_LEN.min(self.bytes.len())
    }
}

/// Writes one batch for tables of family `inet`.
#[derive(Debug)]
pub(super) struct BatchWriter {
    writer: Writer,
    begin_seq: u32,
    next_seq: u32,
    parts: Vec<Part>,
    expect_ack: Vec<bool>,
}

impl BatchWriter {
    /// Opens a batch whose `BATCH_BEGIN` has sequence number `seq`.
    pub(super) fn new(seq: u32, capacity: usize) -> Self {
        let mut writer = Writer::with_capacity(capacity + 2 * 20);
        let begin = writer.begin_message(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        writer.end_message(begin);
        Self {
            writer,
            begin_seq: seq,
            next_seq: seq,
            parts: Vec::new(),
            expect_ack: Vec::new(),
        }
    }

    /// Opens an nf_tables message of kind `NFT_MSG_*` `kind`; write its
    /// attributes with [`BatchWriter::writer`], then close it.
    pub(super) fn begin(&mut self, kind: u16, flags: u16, part: Part) -> Start {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.parts.push(part);
        self.expect_ack.push(flags & NLM_F_ACK != 0);
        self.writer.begin_message(
            NFNL_SUBSYS_NFTABLES << 8 | kind,
            flags,
            self.next_seq,
            NFPROTO_INET,
            0,
        )
    }

    /// The writer of the open message.
    pub(super) fn writer(&mut self) -> &mut Writer {
        &mut self.writer
    }

    /// Closes the message opened by [`BatchWriter::begin`].
    pub(super) fn end(&mut self, start: Start) {
        self.writer.end_message(start);
    }

    /// Appends `BATCH_END`.
    pub(super) fn finish(mut self) -> Batch {
        let end = self.writer.begin_message(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.next_seq.wrapping_add(1),
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.writer.end_message(end);
        Batch {
            bytes: self.writer.into_bytes(),
            begin_seq: self.begin_seq,
            parts: self.parts,
            expect_ack: self.expect_ack,
        }
    }
}
