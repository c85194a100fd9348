//! What the first bytes a box sends on a flow claim: the SNI of a TLS
//! ClientHello (records and handshake fragments reassembled), or the
//! `Host` of an HTTP/1 request. Pure functions over the bytes so far.

/// The most bytes read before judging: a ClientHello with post-quantum
/// key shares is ~2 KB; a request's head rarely more than a few.
pub(crate) const MAX_BYTES: usize = 16 * 1024;

/// TLS record type of handshakes; handshake type of a ClientHello.
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
/// The `server_name` extension and its `host_name` entry.
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;

/// What the bytes so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not enough bytes yet to tell.
    NeedMore,
    /// A ClientHello with this SNI (lowercase is not enforced here).
    Sni(String),
    /// A ClientHello without SNI.
    NoSni,
    /// An HTTP request with this `Host` (its port removed).
    Host(String),
    /// Neither (or more than [`MAX_BYTES`] without an answer).
    Unrecognised,
}

/// Reads the first bytes of a flow.
pub(crate) fn parse(bytes: &[u8]) -> Parsed {
    let parsed = match bytes.first() {
        None => Parsed::NeedMore,
        Some(&HANDSHAKE) => client_hello(bytes),
        Some(_) => http(bytes),
    };
    match parsed {
        Parsed::NeedMore if bytes.len() >= MAX_BYTES => Parsed::Unrecognised,
        other => other,
    }
}

/// A big-endian reader that fails on short input.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    /// A vector with a length prefix of `width` bytes.
    fn vector(&mut self, width: usize) -> Option<&'a [u8]> {
        let len = match width {
            1 => usize::from(self.u8()?),
            _ => usize::from(self.u16()?),
        };
        self.take(len)
    }
}

/// The handshake bytes of consecutive handshake records, reassembled; the
/// message itself once all of it is in.
fn client_hello(bytes: &[u8]) -> Parsed {
    let mut records = Reader(bytes);
    let mut handshake = Vec::new();
    loop {
        let Some(kind) = records.u8() else {
            return Parsed::NeedMore;
        };
        if kind != HANDSHAKE {
            return Parsed::Unrecognised;
        }
        let (Some(major), Some(_minor)) = (records.u8(), records.u8()) else {
            return Parsed::NeedMore;
        };
        if major != 3 {
            return Parsed::Unrecognised;
        }
        let Some(len) = records.u16() else {
            return Parsed::NeedMore;
        };
        // A partial record still adds its bytes: the message may be in.
        let available = records.0.len().min(usize::from(len));
        let fragment = records.take(available).unwrap_or_default();
        handshake.extend_from_slice(fragment);
        let mut message = Reader(&handshake);
        match (message.u8(), message.u24()) {
            (Some(CLIENT_HELLO), Some(len)) if message.0.len() >= len => {
                return hello_body(&message.0[..len]);
            }
            (Some(CLIENT_HELLO), _) | (None, _) => {}
            (Some(_), _) => return Parsed::Unrecognised,
        }
        if available < usize::from(len) {
            return Parsed::NeedMore;
        }
    }
}

/// The SNI of a whole ClientHello body.
fn hello_body(body: &[u8]) -> Parsed {
    let sni = || -> Option<Option<String>> {
        let mut hello = Reader(body);
        hello.take(2 + 32)?; // legacy version, random
        hello.vector(1)?; // session id
        hello.vector(2)?; // cipher suites
        hello.vector(1)?; // compression methods
        if hello.0.is_empty() {
            return Some(None); // no extensions at all
        }
        let mut extensions = Reader(hello.vector(2)?);
        while !extensions.0.is_empty() {
            let kind = extensions.u16()?;
            let data = extensions.vector(2)?;
            if kind != SERVER_NAME {
                continue;
            }
            let mut list = Reader(Reader(data).vector(2)?);
            while !list.0.is_empty() {
                let name_type = list.u8()?;
                let name = list.vector(2)?;
                if name_type == HOST_NAME {
                    return Some(Some(String::from_utf8_lossy(name).into_owned()));
                }
            }
        }
        Some(None)
    };
    match sni() {
        Some(Some(name)) => Parsed::Sni(name),
        Some(None) => Parsed::NoSni,
        None => Parsed::Unrecognised,
    }
}

/// An HTTP/1 request head: a method token, a space, a target, a version;
/// then the `Host` header (the first, as servers read it).
fn http(bytes: &[u8]) -> Parsed {
    let method_len = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match bytes.get(method_len) {
        None if method_len < 16 => return Parsed::NeedMore,
        Some(b' ') if method_len > 0 => {}
        _ => return Parsed::Unrecognised,
    }
    let Some(end) = find(bytes, b"\r\n\r\n") else {
        return Parsed::NeedMore;
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    if !request_line
        .rsplit(' ')
        .next()
        .is_some_and(|v| v.starts_with("HTTP/1."))
    {
        return Parsed::Unrecognised;
    }
    let host = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    });
    match host {
        Some(host) => Parsed::Host(without_port(host).to_owned()),
        None => Parsed::Unrecognised,
    }
}

/// `name:80` → `name`; `[2001:db8::1]:80` → `2001:db8::1`.
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
pub(crate) mod tests;
