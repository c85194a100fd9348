//! Connections that hold the API with request heads that never end, for
//! the flood tests and the floods bench.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};

/// Opens a connection from `source` to the API and sends the start of a
/// request head that never ends; the stream is non-blocking.
pub(crate) fn hold(source: &str, api: SocketAddr) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let local: SocketAddr = format!("{source}:0").parse().ok()?;
    socket.bind(&local.into()).ok()?;
    socket.connect(&api.into()).ok()?;
    let mut stream: TcpStream = socket.into();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

/// Whether the server has closed `stream` (looked at without waiting).
pub(crate) fn closed(mut stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}
