//! The daemon's API over its unix socket: one HTTP/1.1 request per
//! connection. The daemon lets the plugin in by its credentials (it runs
//! as root, like every CNI plugin), so no token is sent.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::error::CniError;

/// How long one call may take: an ADD waits for the kernel, which a busy
/// host can slow to seconds.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The daemon at a unix socket.
#[derive(Debug, Clone)]
pub struct Daemon {
    socket: PathBuf,
}

/// An answer: status and JSON body (null when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// The API's error message (`error.message`), or the body.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map_or_else(|| self.body.to_string(), str::to_owned)
    }
}

impl Daemon {
    /// The daemon listening at `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// `method path` with `body`; an error when the daemon cannot be
    /// reached or its answer is not HTTP with JSON.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer, CniError> {
        let shown = self.socket.display();
        let mut stream = UnixStream::connect(&self.socket).map_err(|error| {
            CniError::TryAgainLater(format!(
                "the boxfence daemon at {shown} is not reachable: {error}"
            ))
        })?;
        let io =
            |error: std::io::Error| CniError::Io(format!("{method} {path} via {shown}: {error}"));
        stream.set_read_timeout(Some(CALL_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(CALL_TIMEOUT)).map_err(io)?;
        let payload = body.map(Value::to_string).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: boxfence\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
            payload.len()
        );
        stream.write_all(request.as_bytes()).map_err(io)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(io)?;
        parse_answer(&answer).ok_or_else(|| {
            CniError::Decode(format!("{method} {path}: the daemon's answer is not HTTP"))
        })
    }
}

/// Status and JSON body of an HTTP/1.1 answer read to its end.
fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..split]).ok()?;
    let mut body = bytes[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let chunked = lines.any(|line| {
        line.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).ok()?
    };
    Some(Answer { status, body })
}

/// A chunked body's bytes.
fn dechunk(mut bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = bytes.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&bytes[..end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let data = bytes.get(end + 2..end + 2 + size)?;
        out.extend_from_slice(data);
        bytes = bytes.get(end + 4 + size..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_plain_and_chunked() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 9\r\n\r\n{\"a\": 1}\n";
        let answer = parse_answer(plain).expect("parses");
        assert_eq!(answer.status, 201);
        assert_eq!(answer.body["a"], 1);
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n4\r\n: 2}\r\n0\r\n\r\n";
        assert_eq!(parse_answer(chunked).expect("parses").body["a"], 2);
        assert_eq!(
            parse_answer(b"HTTP/1.1 204 No Content\r\n\r\n")
                .expect("parses")
                .body,
            Value::Null
        );
        assert_eq!(parse_answer(b"garbage"), None);
    }
}
