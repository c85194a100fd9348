//! End-to-end tests of the lab itself. They need root (network
//! namespaces); without it they skip, except under `CI=true`.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use boxfence_lab::{
    HOLD_PORT, HTTP_ALT_PORT, HTTP_PORT, HTTPS_PORT, LAB_HOST_V4, LAB_HOST_V6, Lab, LabError,
    SERVER_ADDRS, SERVER_V4, SERVER_V6, ServerReply, UDP_ECHO_PORT, require_root,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn lab() -> Lab {
    Lab::new().expect("lab comes up")
}

fn url(scheme: &str, ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}/hello"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}/hello"),
    }
}

/// Fetches `url` with curl from the lab host and parses the server's reply.
fn curl_from_host(lab: &Lab, url: &str, extra: &[&str]) -> ServerReply {
    // --noproxy: a proxy from the caller's environment must not be tried.
    let mut argv = vec!["curl", "-sS", "-g", "-m", "5", "--noproxy", "*"];
    argv.extend_from_slice(extra);
    argv.push(url);
    let out = lab.host_exec(&argv).expect("curl runs");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ServerReply::parse(&body).unwrap_or_else(|| panic!("unexpected body from {url}: {body:?}"))
}

fn expected_client(server: IpAddr) -> IpAddr {
    match server {
        IpAddr::V4(_) => IpAddr::V4(LAB_HOST_V4),
        IpAddr::V6(_) => IpAddr::V6(LAB_HOST_V6),
    }
}

fn pins_of(lab: &Lab) -> Vec<PathBuf> {
    vec![
        lab.host_netns_path().to_owned(),
        lab.internet_netns_path().to_owned(),
    ]
}

#[test]
fn lab_comes_up_and_tears_down_with_the_daemons_namespaces() {
    if !require_root("lab_comes_up_and_tears_down_with_the_daemons_namespaces") {
        return;
    }
    let lab = lab();
    let pins = pins_of(&lab);
    assert!(pins.iter().all(|p| p.exists()), "{pins:?}");
    assert!(lab.workdir().is_dir());
    // Stand-ins for what the daemon under test leaves: a box namespace
    // under the lab's prefix, and a process running in the lab host.
    let box_ns = format!("{}test", lab.namespace_prefix());
    let out = std::process::Command::new("ip")
        .args(["netns", "add", &box_ns])
        .output()
        .expect("ip runs");
    assert!(out.status.success(), "{out:?}");
    let mut daemon = lab.spawn_in_host(["sleep", "600"]).expect("sleep starts");
    let workdir = lab.workdir().to_owned();

    lab.close().expect("clean teardown");

    let status = daemon.wait().expect("reaped");
    assert!(!status.success(), "the process in the lab host was killed");
    for p in pins
        .iter()
        .chain([&PathBuf::from("/run/netns").join(&box_ns)])
    {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    assert!(!workdir.exists());
}

#[test]
fn lab_tears_down_when_the_test_body_panics() {
    if !require_root("lab_tears_down_when_the_test_body_panics") {
        return;
    }
    let mut pins = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = lab();
        pins = pins_of(&lab);
        panic!("test body fails while the lab is up");
    }));
    assert!(result.is_err());
    assert_eq!(pins.len(), 2);
    for p in &pins {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn every_server_answers_from_the_lab_host_through_the_uplink() {
    if !require_root("every_server_answers_from_the_lab_host_through_the_uplink") {
        return;
    }
    let lab = lab();
    for ip in SERVER_ADDRS {
        for port in [HTTP_PORT, HTTP_ALT_PORT] {
            let reply = curl_from_host(&lab, &url("http", ip, port), &[]);
            assert_eq!(
                (reply.proto.as_str(), reply.server, reply.port),
                ("http", ip, port)
            );
            assert_eq!(
                reply.client,
                expected_client(ip),
                "source as the server saw it"
            );
            assert_eq!(reply.path, "/hello");
        }
        let reply = curl_from_host(&lab, &url("https", ip, HTTPS_PORT), &["-k"]);
        assert_eq!((reply.proto.as_str(), reply.server), ("https", ip));
    }
    // The certificate names every server address, so it also verifies.
    let cacert = lab.tls_cert().display().to_string();
    let reply = curl_from_host(
        &lab,
        &url("https", IpAddr::V6(SERVER_V6), HTTPS_PORT),
        &["--cacert", &cacert],
    );
    assert_eq!(reply.server, IpAddr::V6(SERVER_V6));

    let echoes = lab
        .in_host(|| {
            SERVER_ADDRS
                .iter()
                .map(|&ip| udp_echo(SocketAddr::new(ip, UDP_ECHO_PORT)))
                .collect::<Vec<_>>()
        })
        .expect("enter lab host");
    for (ip, echo) in SERVER_ADDRS.iter().zip(echoes) {
        assert_eq!(echo.expect("udp echo"), (b"ping".to_vec(), *ip), "{ip}");
    }
}

/// Sends one datagram and returns the answer and the address it came from.
fn udp_echo(server: SocketAddr) -> std::io::Result<(Vec<u8>, IpAddr)> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let sock = UdpSocket::bind((any, 0))?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.send_to(b"ping", server)?;
    let mut buf = [0u8; 16];
    let (n, from) = sock.recv_from(&mut buf)?;
    Ok((buf[..n].to_vec(), from.ip()))
}

#[test]
fn a_socket_made_in_the_lab_host_stays_there_and_the_hold_server_echoes() {
    if !require_root("a_socket_made_in_the_lab_host_stays_there_and_the_hold_server_echoes") {
        return;
    }
    let lab = lab();
    let stream = lab
        .in_host(|| {
            TcpStream::connect_timeout(&SocketAddr::new(SERVER_V4.into(), HOLD_PORT), IO_TIMEOUT)
        })
        .expect("enter lab host")
        .expect("connect to the hold server");
    // Used from this thread, in the root namespace: the socket still lives
    // in the lab host, so the held connection keeps working.
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for line in ["first\n", "second\n"] {
        (&stream).write_all(line.as_bytes()).expect("write");
        let mut echoed = String::new();
        reader.read_line(&mut echoed).expect("read");
        assert_eq!(echoed, line);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn two_labs_at_once_do_not_collide() {
    if !require_root("two_labs_at_once_do_not_collide") {
        return;
    }
    let a = lab();
    let b = lab();
    assert_ne!(a.id(), b.id());
    assert_ne!(a.host_netns(), b.host_netns());
    assert_ne!(a.namespace_prefix(), b.namespace_prefix());
    assert!(!a.namespace_prefix().starts_with(b.namespace_prefix()));
    assert!(!b.namespace_prefix().starts_with(a.namespace_prefix()));
    for lab in [&a, &b] {
        let reply = curl_from_host(lab, &url("http", SERVER_V4.into(), HTTP_PORT), &[]);
        assert_eq!(reply.client, IpAddr::V4(LAB_HOST_V4));
    }
    let b_pins = pins_of(&b);
    drop(b);
    assert!(b_pins.iter().all(|p| !p.exists()));
    // Tearing one down leaves the other working.
    curl_from_host(&a, &url("http", SERVER_V6.into(), HTTP_PORT), &[]);
}

#[test]
fn the_lab_is_sealed() {
    if !require_root("the_lab_is_sealed") {
        return;
    }
    let lab = lab();
    let probed = lab.assert_sealed().expect("sealed");
    eprintln!("root-namespace addresses tried from the lab host: {probed:?}");
    // The same kind of attempt does reach the lab's own servers, so the
    // check can tell open from closed.
    let reached = lab
        .in_host(|| {
            TcpStream::connect_timeout(&SocketAddr::new(SERVER_V4.into(), HTTP_PORT), IO_TIMEOUT)
        })
        .expect("enter lab host");
    assert!(reached.is_ok());
    // The lab host is a uplink, loopback and nothing else.
    let out = lab
        .host_exec(["ip", "-o", "link", "show"])
        .expect("ip runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[test]
fn an_extra_interface_in_the_lab_host_breaks_the_seal_check() {
    if !require_root("an_extra_interface_in_the_lab_host_breaks_the_seal_check") {
        return;
    }
    let lab = lab();
    let out = lab
        .host_exec([
            "ip", "link", "add", "extra0", "type", "veth", "peer", "name", "extra1",
        ])
        .expect("ip runs");
    assert!(out.status.success(), "{out:?}");
    match lab.assert_sealed() {
        Err(LabError::NotSealed(why)) => assert!(why.contains("extra"), "{why}"),
        other => panic!("expected NotSealed, got {other:?}"),
    }
}

#[test]
fn the_internet_reaches_a_routed_box_address_in_the_lab_host() {
    if !require_root("the_internet_reaches_a_routed_box_address_in_the_lab_host") {
        return;
    }
    let lab = lab();
    // Stand-in for a box: an address of the pool on the lab host's loopback.
    let out = lab
        .host_exec(["ip", "address", "add", "10.99.0.5/32", "dev", "lo"])
        .expect("ip runs");
    assert!(out.status.success(), "{out:?}");
    lab.route_to_host("10.99.0.0/24").expect("route");
    let listener = lab
        .in_host(|| TcpListener::bind("10.99.0.5:7000"))
        .expect("enter lab host")
        .expect("bind");
    let client = lab
        .in_internet(|| {
            TcpStream::connect_timeout(&"10.99.0.5:7000".parse().expect("addr"), IO_TIMEOUT)
        })
        .expect("enter internet");
    assert!(client.is_ok(), "{client:?}");
    let (_, peer) = listener.accept().expect("accept");
    assert_eq!(peer.ip(), IpAddr::from([192, 0, 2, 254]));
}

#[test]
fn a_new_lab_removes_namespaces_left_by_a_dead_process() {
    if !require_root("a_new_lab_removes_namespaces_left_by_a_dead_process") {
        return;
    }
    // Owned by a pid above the kernel's largest pid_max, so no live
    // process; unique per test process, so parallel runs do not collide.
    let stale = format!("bfl4194305-{}-host", std::process::id());
    // Another process's new lab may sweep it while `ip` is still making
    // it: try again then.
    let made = (0..5).any(|_| {
        std::process::Command::new("ip")
            .args(["netns", "add", &stale])
            .output()
            .is_ok_and(|out| out.status.success())
    });
    assert!(made, "cannot create {stale}");
    let _lab = lab();
    assert!(!PathBuf::from("/run/netns").join(&stale).exists());
}

#[test]
fn udp_echo_survives_a_datagram_it_cannot_answer() {
    if !require_root("udp_echo_survives_a_datagram_it_cannot_answer") {
        return;
    }
    let lab = lab();
    // A source the internet has no route back to, like a spoofed one.
    let out = lab
        .host_exec(["ip", "address", "add", "10.99.0.7/32", "dev", "lo"])
        .expect("ip runs");
    assert!(out.status.success(), "{out:?}");
    let server = SocketAddr::new(SERVER_V4.into(), UDP_ECHO_PORT);
    let echo = lab
        .in_host(|| {
            let unroutable = UdpSocket::bind("10.99.0.7:0")?;
            unroutable.send_to(b"lost", server)?;
            std::thread::sleep(Duration::from_millis(100));
            udp_echo(server)
        })
        .expect("enter lab host")
        .expect("echo still answers");
    assert_eq!(echo, (b"ping".to_vec(), IpAddr::V4(SERVER_V4)));
}

#[test]
fn boxes_joined_to_the_lab_host_keep_the_lab_sealed_and_others_do_not() {
    if !require_root("boxes_joined_to_the_lab_host_keep_the_lab_sealed_and_others_do_not") {
        return;
    }
    let lab = lab();
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip runs");
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    // What the daemon does for a box: a namespace under the lab's prefix
    // and a veth from the lab host into it.
    let box_ns = format!("{}b1", lab.namespace_prefix());
    ip(&["netns", "add", &box_ns]);
    ip(&[
        "-n",
        lab.host_netns(),
        "link",
        "add",
        "bf-b1",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &box_ns,
    ]);
    lab.assert_sealed().expect("a box keeps the lab sealed");
    // A box with any other link breaks the seal.
    ip(&[
        "-n", &box_ns, "link", "add", "side0", "type", "veth", "peer", "name", "side1",
    ]);
    match lab.assert_sealed() {
        Err(LabError::NotSealed(why)) => assert!(why.contains("side"), "{why}"),
        other => panic!("expected NotSealed, got {other:?}"),
    }
}
