//! The resolver's listening sockets: binding them on gateway addresses
//! that may not exist yet, telling a socket's passing failure from one
//! that leaves it unusable, and pacing the retries after a failure.

use std::net::SocketAddr;
use std::time::Duration;

use nix::errno::Errno;

/// A UDP socket bound to `address`, non-blocking.
pub(crate) fn bind_udp(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        None,
    )?;
    prepare(&socket, address)?;
    Ok(socket.into())
}

/// A TCP socket listening on `address`, non-blocking.
pub(crate) fn bind_tcp(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    prepare(&socket, address)?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Freebind: the gateway address appears only with the first box link.
fn prepare(socket: &socket2::Socket, address: SocketAddr) -> std::io::Result<()> {
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_ipv6(true)?;
    } else {
        socket.set_freebind(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())
}

/// Whether an error of `accept` or `recv_from` means the socket itself no
/// longer works (it was shut down or destroyed under us, as `ss -K` does):
/// only a fresh socket can serve again. Every other error passes with the
/// moment: out of file descriptors (EMFILE, ENFILE), of memory (ENOBUFS,
/// ENOMEM), a connection aborted before it was accepted (ECONNABORTED),
/// a firewall's refusal (EPERM), and any error this list does not know.
pub(crate) fn leaves_socket_unusable(error: &std::io::Error) -> bool {
    error
        .raw_os_error()
        .map(Errno::from_raw)
        .is_some_and(|errno| {
            matches!(
                errno,
                Errno::EINVAL | Errno::EBADF | Errno::ENOTSOCK | Errno::EOPNOTSUPP | Errno::EFAULT
            )
        })
}

/// Waits that double after each failure, from `first` up to `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The wait after one more failure.
    pub(crate) fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (wait * 2).min(self.max);
        wait
    }

    /// After a success: the next failure waits `first` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_resources_passes_a_dead_socket_does_not() {
        for passing in [
            Errno::EMFILE,
            Errno::ENFILE,
            Errno::ENOBUFS,
            Errno::ENOMEM,
            Errno::ECONNABORTED,
            Errno::EPERM,
        ] {
            let error = std::io::Error::from_raw_os_error(passing as i32);
            assert!(!leaves_socket_unusable(&error), "{passing}");
        }
        let error = std::io::Error::from_raw_os_error(Errno::EINVAL as i32);
        assert!(leaves_socket_unusable(&error));
        assert!(!leaves_socket_unusable(&std::io::Error::other("no errno")));
    }

    #[test]
    fn waits_double_up_to_the_ceiling_and_start_over_after_a_success() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(10), ms(100));
        let waits: Vec<_> = (0..6).map(|_| backoff.next()).collect();
        assert_eq!(waits, [ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]);
        backoff.reset();
        assert_eq!(backoff.next(), ms(10));
    }
}
