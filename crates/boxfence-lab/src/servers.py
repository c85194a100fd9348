"""boxfence-lab test servers (stdlib only), run inside the lab's internet
namespace by boxfence-lab. Every server binds each address on its own, so
replies leave from the address the client asked for.

Usage: servers.py --cert C --key K --http P... --https P --udp P --hold P ADDR...

HTTP and HTTPS answer any GET/HEAD/POST with 200 and one line:
    boxfence-lab proto=http server=198.51.100.10 port=80 client=192.0.2.1 client_port=40000 path=/
UDP echoes each datagram. The hold server keeps a TCP connection open and
echoes each line. The process exits when its stdin closes, so it dies with
the test process even if that one is killed without running destructors.
"""

import argparse
import http.server
import socket
import socketserver
import ssl
import sys
import threading


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def reply_line(proto, sock, path):
    server = sock.getsockname()
    client = sock.getpeername()
    return (
        f"boxfence-lab proto={proto} server={server[0]} port={server[1]} "
        f"client={client[0]} client_port={client[1]} path={path}\n"
    )


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle client must not hold a server thread forever.
    timeout = 30

    def answer(self, with_body):
        body = reply_line(self.server.proto, self.connection, self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.answer(True)

    def log_message(self, format, *args):
        pass


class HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, port, proto, tls=None):
        self.address_family = family(addr)
        self.proto = proto
        self.tls = tls
        super().__init__((addr, port), Handler)

    def server_bind(self):
        # http.server's own server_bind resolves the address's name
        # (socket.getfqdn): a DNS query, which the lab must never send.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, on the connection's own thread, so a
        # client that never finishes it cannot block accept().
        if self.tls is not None:
            request.settimeout(30)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)


class HoldHandler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
            self.wfile.flush()


class HoldServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, port):
        self.address_family = family(addr)
        super().__init__((addr, port), HoldHandler)


def udp_echo(addr, port):
    sock = socket.socket(family(addr), socket.SOCK_DGRAM)
    sock.bind((addr, port))

    def loop():
        while True:
            try:
                data, peer = sock.recvfrom(65535)
                sock.sendto(data, peer)
            except OSError:
                # E.g. no route back to a spoofed or unrouted source: drop
                # this datagram, keep serving.
                continue

    return loop


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--http", type=int, action="append", default=[])
    parser.add_argument("--https", type=int, action="append", default=[])
    parser.add_argument("--udp", type=int, action="append", default=[])
    parser.add_argument("--hold", type=int, action="append", default=[])
    parser.add_argument("addrs", nargs="+")
    args = parser.parse_args()

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)

    loops = []
    for addr in args.addrs:
        for port in args.http:
            loops.append(HTTPServer(addr, port, "http").serve_forever)
        for port in args.https:
            loops.append(HTTPServer(addr, port, "https", tls).serve_forever)
        for port in args.hold:
            loops.append(HoldServer(addr, port).serve_forever)
        for port in args.udp:
            loops.append(udp_echo(addr, port))
    # Everything is bound before any loop starts: a bind error ends the
    # process with a traceback instead of leaving half the servers up.
    for loop in loops:
        threading.Thread(target=loop, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
