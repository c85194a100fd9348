//! Netlink framing shared by the nf_tables client, the packet-log reader
//! and the rtnetlink client: message headers and (nested) attributes, written into one growing buffer
//! in host byte order, as the kernel reads them, and read back. The
//! socket they travel over is [`socket`]'s.

pub(crate) mod socket;

/// `NLM_F_REQUEST`.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`: the kernel answers the message, success or not.
pub(crate) const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub(crate) const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_CREATE`.
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// `NLMSG_ERROR`: an acknowledgement (error 0) or an error.
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
pub(crate) const NLMSG_DONE: u16 = 3;

/// `NLA_F_NESTED`: the attribute holds attributes.
pub(crate) const NLA_F_NESTED: u16 = 1 << 15;
/// Size of `struct nlmsghdr`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nlattr`.
pub(crate) const NLA_HDRLEN: usize = 4;
/// Size of `struct nfgenmsg`.
pub(crate) const NFGENMSG_LEN: usize = 4;

/// Rounds `len` up to netlink's 4-byte alignment.
pub(crate) const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// The encoded size of an attribute with `payload` bytes, padding included.
pub(crate) const fn attr_size(payload: usize) -> usize {
    align(NLA_HDRLEN + payload)
}

/// Writes netlink messages back to back.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

/// Where an open message or nested attribute starts, to patch its length.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub(crate) struct Start(usize);

impl Writer {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Opens a netfilter message: `nlmsghdr` then `nfgenmsg` (`res_id`
    /// is big-endian on the wire).
    pub(crate) fn begin_message(
        &mut self,
        kind: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
    ) -> Start {
        let start = self.begin_header(kind, flags, seq);
        self.buf.push(family);
        self.buf.push(0); // NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    /// Opens a message with just its `nlmsghdr`: the family header
    /// (`ifinfomsg`, `rtmsg`, ...) follows with [`Writer::put_raw`].
    pub(crate) fn begin_header(&mut self, kind: u16, flags: u16, seq: u32) -> Start {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by end_message
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        Start(start)
    }

    /// Closes a message opened by [`Writer::begin_message`] or
    /// [`Writer::begin_header`].
    pub(crate) fn end_message(&mut self, start: Start) {
        let len = u32::try_from(self.buf.len() - start.0).unwrap_or(u32::MAX);
        self.buf[start.0..start.0 + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Appends one attribute, padded to 4 bytes.
    pub(crate) fn put(&mut self, kind: u16, payload: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + payload.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// Appends a NUL-terminated string attribute.
    pub(crate) fn put_strz(&mut self, kind: u16, value: &str) {
        let len = u16::try_from(NLA_HDRLEN + value.len() + 1).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// Appends a big-endian `u32` attribute.
    pub(crate) fn put_be32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    /// Appends bytes encoded elsewhere (whole attributes, or a family
    /// header whose size is a multiple of 4).
    pub(crate) fn put_raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Appends a big-endian `u64` attribute.
    pub(crate) fn put_be64(&mut self, kind: u16, value: u64) {
        self.put(kind, &value.to_be_bytes());
    }

    /// Opens a nested attribute (`NLA_F_NESTED` is set here).
    pub(crate) fn begin_nested(&mut self, kind: u16) -> Start {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        Start(start)
    }

    /// Closes a nested attribute. Callers keep nests under 64 KiB (the
    /// length field is 16 bits): `message` chunks element lists to fit.
    pub(crate) fn end_nested(&mut self, start: Start) {
        let len = self.buf.len() - start.0;
        debug_assert!(
            len <= usize::from(u16::MAX),
            "nested attribute of {len} bytes"
        );
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        self.buf[start.0..start.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = align(self.buf.len());
        self.buf.resize(padded, 0);
    }
}

/// One netlink message read from a reply datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received<'a> {
    pub(crate) kind: u16,
    pub(crate) seq: u32,
    pub(crate) payload: &'a [u8],
}

/// Splits a datagram into its netlink messages.
pub(crate) fn messages(
    mut datagram: &[u8],
) -> impl Iterator<Item = Result<Received<'_>, &'static str>> {
    std::iter::from_fn(move || {
        if datagram.is_empty() {
            return None;
        }
        if datagram.len() < NLMSG_HDRLEN {
            datagram = &[];
            return Some(Err("short netlink header"));
        }
        let len = u32::from_ne_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]) as usize;
        if len < NLMSG_HDRLEN || len > datagram.len() {
            datagram = &[];
            return Some(Err("netlink message length out of bounds"));
        }
        let message = Received {
            kind: u16::from_ne_bytes([datagram[4], datagram[5]]),
            seq: u32::from_ne_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
            payload: &datagram[NLMSG_HDRLEN..len],
        };
        datagram = &datagram[align(len).min(datagram.len())..];
        Some(Ok(message))
    })
}

/// Splits attributes into (type without flags, value).
pub(crate) fn attributes(mut rest: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(rest.get(..2)?.try_into().ok()?));
        let kind = u16::from_ne_bytes(rest.get(2..4)?.try_into().ok()?) & !NLA_F_NESTED & 0x7fff;
        let value = rest.get(NLA_HDRLEN..len)?;
        rest = rest.get(align(len)..).unwrap_or_default();
        Some((kind, value))
    })
}
