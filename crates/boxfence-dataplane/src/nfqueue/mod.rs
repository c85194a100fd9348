//! Judging packets in user space (NFQUEUE over netlink): the name checker
//! binds one queue, reads the packets the ruleset sends there, and answers
//! each with a verdict. Packets the kernel queues while no reader is bound
//! are dropped (the ruleset's queue has no `bypass`).

mod segment;

use crate::netlink::socket::{Family, Socket, SocketError};
use crate::netlink::{self, NFGENMSG_LEN, NLM_F_REQUEST, Writer};

pub use segment::{Segment, parse_segment};

/// Netfilter's netlink subsystem of packet queues.
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_PAYLOAD: u16 = 10;
/// `NF_DROP`, `NF_ACCEPT`, `NF_REPEAT`.
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
const NF_REPEAT: u32 = 4;
/// Bytes of each packet copied to us: all of it (one segment).
const COPY_RANGE: u32 = 0xffff;

/// Why a queue cannot be read or answered.
#[derive(Debug, thiserror::Error)]
pub enum NfqueueError {
    /// The socket could not be opened, read or written.
    #[error("nfqueue: {0}")]
    Socket(#[from] SocketError),
    /// The kernel refused a configuration step (e.g. another reader has
    /// the queue).
    #[error("nfqueue {step} of queue {queue}: {source}")]
    Configure {
        /// The step, e.g. `bind`.
        step: &'static str,
        /// The queue.
        queue: u16,
        /// What went wrong.
        source: SocketError,
    },
}

/// One packet waiting for its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPacket {
    /// The kernel's id of it, for the verdict.
    pub id: u32,
    /// Its packet mark.
    pub mark: u32,
    /// The packet from its IP header on.
    pub packet: Vec<u8>,
}

/// What becomes of a queued packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketVerdict {
    /// On to the next hook.
    Accept,
    /// Dropped.
    Drop,
    /// Through the same hook's chain again, with this packet mark.
    Repeat {
        /// The packet's new mark.
        mark: u32,
    },
}

/// A socket bound to one queue, in the namespace of the thread that
/// opened it. Closing it unbinds the queue; the kernel then drops what
/// waits in it.
#[derive(Debug)]
pub struct Nfqueue {
    socket: Socket,
    queue: u16,
}

impl Nfqueue {
    /// Binds `queue` (copying whole packets) in the calling thread's
    /// network namespace.
    pub fn bind(queue: u16) -> Result<Self, NfqueueError> {
        let mut nfqueue = Self {
            socket: Socket::listener(Family::Netfilter, 0)?,
            queue,
        };
        let pf_unspec = [NFQNL_CFG_CMD_BIND, 0, 0, 0];
        nfqueue.configure("bind", NFQA_CFG_CMD, &pf_unspec)?;
        let mut params = COPY_RANGE.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_PACKET);
        nfqueue.configure("copy mode", NFQA_CFG_PARAMS, &params)?;
        Ok(nfqueue)
    }

    fn configure(
        &mut self,
        step: &'static str,
        attribute: u16,
        payload: &[u8],
    ) -> Result<(), NfqueueError> {
        let queue = self.queue;
        let kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;
        self.socket
            .configure(kind, queue, attribute, payload)
            .map_err(|source| NfqueueError::Configure {
                step,
                queue,
                source,
            })
    }

    /// Waits (at most a second) for the next datagram and returns the
    /// packets in it; nothing when none came.
    pub fn read(&mut self) -> Result<Vec<QueuedPacket>, NfqueueError> {
        let packet_kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
        Ok(self
            .socket
            .listen()?
            .filter(|message| message.kind == packet_kind)
            .filter_map(|message| queued(message.payload.get(NFGENMSG_LEN..)?))
            .collect())
    }

    /// Answers packet `id`.
    pub fn verdict(&mut self, id: u32, verdict: PacketVerdict) -> Result<(), NfqueueError> {
        let (code, mark) = match verdict {
            PacketVerdict::Accept => (NF_ACCEPT, None),
            PacketVerdict::Drop => (NF_DROP, None),
            PacketVerdict::Repeat { mark } => (NF_REPEAT, Some(mark)),
        };
        let mut writer = Writer::with_capacity(48);
        let kind = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT;
        let seq = self.socket.reserve(1);
        let start = writer.begin_message(kind, NLM_F_REQUEST, seq, 0, self.queue);
        let mut header = code.to_be_bytes().to_vec();
        header.extend_from_slice(&id.to_be_bytes());
        writer.put(NFQA_VERDICT_HDR, &header);
        if let Some(mark) = mark {
            writer.put_be32(NFQA_MARK, mark);
        }
        writer.end_message(start);
        Ok(self.socket.send(writer.bytes())?)
    }
}

/// Reads one NFQNL_MSG_PACKET (after its nfgenmsg); `None` without an id.
fn queued(attributes: &[u8]) -> Option<QueuedPacket> {
    let mut id = None;
    let mut mark = 0;
    let mut packet = Vec::new();
    for (kind, value) in netlink::attributes(attributes) {
        let be32 = |bytes: &[u8]| {
            bytes
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match kind {
            NFQA_PACKET_HDR => id = be32(value),
            NFQA_MARK => mark = be32(value).unwrap_or(0),
            NFQA_PAYLOAD => packet = value.to_vec(),
            _ => {}
        }
    }
    Some(QueuedPacket {
        id: id?,
        mark,
        packet,
    })
}
