//! Reading what the lab's HTTP and HTTPS servers answer.

use std::net::IpAddr;

/// The one-line body every HTTP/HTTPS test server answers with, e.g.
/// `boxfence-lab proto=http server=198.51.100.10 port=80 client=192.0.2.1 client_port=40000 path=/`.
/// `client` is the source address the server saw: the lab host's uplink
/// address when the daemon masquerades box traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// `http` or `https`.
    pub proto: String,
    /// The server address the connection reached.
    pub server: IpAddr,
    /// The server port the connection reached.
    pub port: u16,
    /// The client's source address as the server saw it.
    pub client: IpAddr,
    /// The client's source port as the server saw it.
    pub client_port: u16,
    /// The request path.
    pub path: String,
}

impl ServerReply {
    /// Parses a server's body; `None` when it is not one (e.g. a proxy's
    /// or a firewall's answer).
    #[must_use]
    pub fn parse(body: &str) -> Option<Self> {
        let rest = body.trim().strip_prefix("boxfence-lab ")?;
        let field = |key: &str| {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        Some(Self {
            proto: field("proto")?.to_owned(),
            server: field("server")?.parse().ok()?,
            port: field("port")?.parse().ok()?,
            client: field("client")?.parse().ok()?,
            client_port: field("client_port")?.parse().ok()?,
            path: field("path")?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6_bodies() {
        let r = ServerReply::parse(
            "boxfence-lab proto=http server=198.51.100.10 port=80 client=192.0.2.1 client_port=4000 path=/x\n",
        )
        .expect("parses");
        assert_eq!(r.server, IpAddr::from([198, 51, 100, 10]));
        assert_eq!((r.port, r.client_port), (80, 4000));
        assert_eq!(r.client, IpAddr::from([192, 0, 2, 1]));
        assert_eq!(r.path, "/x");
        let r = ServerReply::parse(
            "boxfence-lab proto=https server=2001:db8::10 port=443 client=2001:db8:ffff::1 client_port=1 path=/",
        )
        .expect("parses");
        assert_eq!(r.proto, "https");
        assert_eq!(r.server, "2001:db8::10".parse::<IpAddr>().expect("ip"));
        assert_eq!(ServerReply::parse("<html>blocked</html>"), None);
    }
}
