//! The resolver under a box's flood and under faults: a flood of TCP
//! connections or of UDP queries from one box neither stops another box
//! resolving nor delays a third box's policy change; sockets destroyed
//! under the resolver are survived or replaced, and the engine's health
//! says it is down while it is.

use std::thread::JoinHandle;

use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[
    (
        "a_tcp_flood_of_one_box_spares_the_others",
        a_tcp_flood_of_one_box_spares_the_others,
    ),
    (
        "destroyed_sockets_are_survived_or_bound_again",
        destroyed_sockets_are_survived_or_bound_again,
    ),
];

/// This module's tests that build their own rig.
pub(crate) const OWN_TESTS: &[(&str, OwnRigTest)] = &[(
    "a_udp_flood_of_one_box_spares_the_others",
    a_udp_flood_of_one_box_spares_the_others,
)];

/// What the flooding box must reach for the flood to count as one.
struct FloodTarget {
    /// TCP connections it opens in 6 s (the per-box cap is 16).
    connections: u64,
    /// The rig's per-box query rate, which the UDP flood must pass.
    query_rate: u32,
}

impl FloodTarget {
    /// Natively a box's Python opens well over 1,000 connections in 6 s
    /// and sends queries faster than the engine's rate. Emulated
    /// ([`boxfence_lab::emulated`]) it
    /// opened 452-669 and never passed that rate, so there the flood must
    /// open 300 (still 18 times the cap) and pass a rate of 200 a second.
    fn here() -> Self {
        if boxfence_lab::emulated() {
            Self {
                connections: 300,
                query_rate: 200,
            }
        } else {
            Self {
                connections: 1000,
                query_rate: boxfence_engine::QUERY_RATE_PER_BOX,
            }
        }
    }
}

/// How long a box's query (as dig times it) or a policy change may take
/// while another box floods before the test calls it stalled. The usual:
/// queries 0-5 ms under the TCP flood and 20-60 ms under the UDP flood
/// (which takes a core of two), a policy change 12-25 ms.
const NOT_STALLED: Duration = Duration::from_secs(2);

/// Opens TCP connections to port 53 for `sys.argv[1]` seconds, one every
/// 2 ms, each sending only the 2-byte length of a query it never sends.
/// Then waits `sys.argv[2]` seconds and prints how many it opened and how
/// many the resolver has still not closed.
const TCP_FLOOD: &str = r"
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def still_open(s):
    try:
        return s.recv(1) != b''
    except BlockingIOError:
        return True
    except OSError:
        return False
held, opened = [], 0
end = time.time() + float(sys.argv[1])
while time.time() < end:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(('198.51.100.53', 53))
        s.send(b'\x00\x40')
        s.setblocking(False)
        held.append(s)
    except OSError:
        s.close()
    opened += 1
    if len(held) >= 256:
        held = [s for s in held if still_open(s) or s.close()]
    time.sleep(0.002)
time.sleep(float(sys.argv[2]))
print(opened, sum(1 for s in held if still_open(s)))
";

/// Sends DNS queries to port 53 as fast as it can for `sys.argv[1]`
/// seconds, never reading an answer; prints how many it sent.
const UDP_FLOOD: &str = r"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
sent, end = 0, time.time() + float(sys.argv[1])
while time.time() < end:
    for _ in range(100):
        query = (sent % 65536).to_bytes(2, 'big') + b'\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05flood\x07example\x00\x00\x01\x00\x01'
        try:
            s.sendto(query, ('198.51.100.53', 53))
            sent += 1
        except BlockingIOError:
            time.sleep(0.001)
print(sent)
";

/// Runs `argv` in box `spec` on a thread of its own.
fn exec_in_background(rig: &Rig, spec: &MachineSpec, argv: &[&str]) -> JoinHandle<ExecOutput> {
    let engine = SharedLinuxEngine(Arc::clone(&rig.engine));
    let id = spec.id.clone();
    let request = ExecRequest {
        command: argv.iter().map(|s| (*s).to_owned()).collect(),
        stdin: None,
        timeout: Some(Duration::from_secs(60)),
    };
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(engine.exec(&id, &request))
            .expect("exec runs")
    })
}

/// A resolver metric now.
fn resolver_metric(rig: &Rig, name: &str) -> f64 {
    metric(&rig.engine.metrics_text(), &format!("{name} ")).unwrap_or(0.0)
}

/// Waits up to 60 s for `done` (natively each wait here ends within 2 s;
/// on emulated Linux 5.10 the UDP flood took more than 10 s to pass the
/// box's rate).
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The time dig in the box says its query took, and whether the answer
/// holds `SERVER_V4`.
fn dig_query(rig: &Rig, spec: &MachineSpec, transport: &str) -> (Duration, bool) {
    let out = dig(rig, spec, &[transport, "api.github.com"]);
    let took = out
        .lines()
        .find_map(|line| line.strip_prefix(";; Query time: ")?.strip_suffix(" msec"))
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis);
    let Some(took) = took else {
        panic!("{transport}: no answer: {out}");
    };
    (took, out.contains(&format!("\t{SERVER_V4}\n")))
}

/// While one box floods: another box resolves over UDP and TCP, and a
/// third box's tightening is enforced, each within [`NOT_STALLED`].
fn others_are_served_meanwhile(rig: &Rig, quiet: &MachineSpec, third: &MachineSpec) {
    for transport in ["+notcp", "+tcp"] {
        let (took, answered) = dig_query(rig, quiet, transport);
        eprintln!("{transport} query during the flood: {took:?}");
        assert!(answered, "{transport}: the address is in the answer");
        assert!(took < NOT_STALLED, "{transport}: {took:?}");
    }
    let started = Instant::now();
    rig.update(third, json!({"mode": "deny-all"}), &[]);
    let took = started.elapsed();
    eprintln!("policy change during the flood: {took:?}");
    assert_eq!(rig.curl(third, &format!("http://{SERVER_V4}/")), REFUSED);
    assert!(took < NOT_STALLED, "the policy change took {took:?}");
}

fn a_tcp_flood_of_one_box_spares_the_others(rig: &Rig) {
    let flooder = rig.create("tflood", json!({"mode": "deny-all"}), &[]);
    let quiet = rig.create(
        "tquiet",
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    let third = rig.create("tthird", json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&third, &format!("http://{SERVER_V4}/")), "200");
    let limits = TcpLimits::default();
    // Held connections are closed after the read timeout; the flood's
    // last ones get that and as long again.
    let after = 2 * limits.io_timeout.as_secs();
    let flood = exec_in_background(
        rig,
        &flooder,
        &["python3", "-c", TCP_FLOOD, "6", &after.to_string()],
    );
    wait_for("the flood to pass the box's cap", || {
        resolver_metric(rig, "boxfence_resolver_tcp_refused_total") >= 100.0
    });
    others_are_served_meanwhile(rig, &quiet, &third);
    let open = resolver_metric(rig, "boxfence_resolver_tcp_connections");
    assert!(
        open <= limits.per_box as f64,
        "{open} connections open, the cap is {}",
        limits.per_box
    );

    let out = flood.join().expect("flood thread");
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    let counts: Vec<u64> = out
        .stdout
        .split_whitespace()
        .map(|n| n.parse().expect("a count"))
        .collect();
    eprintln!("the flood opened {} connections", counts[0]);
    assert!(
        counts[0] > FloodTarget::here().connections,
        "the flood opened {} connections",
        counts[0]
    );
    assert_eq!(
        counts[1], 0,
        "connections that never send a query are all closed"
    );
}

fn a_udp_flood_of_one_box_spares_the_others() {
    let query_rate = FloodTarget::here().query_rate;
    let rig = &Rig::with_query_rate(query_rate);
    let flooder = rig.create("uflood", json!({"mode": "deny-all"}), &[]);
    let quiet = rig.create(
        "uquiet",
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    let third = rig.create("uthird", json!({"mode": "allow-all"}), &[]);
    assert_eq!(rig.curl(&third, &format!("http://{SERVER_V4}/")), "200");
    let refused = resolver_metric(rig, "boxfence_resolver_refused_total");
    let flood = exec_in_background(rig, &flooder, &["python3", "-c", UDP_FLOOD, "6"]);
    // Past the box's burst: the flood is refused by the rate limit.
    let burst = 2.0 * f64::from(query_rate);
    wait_for("the flood to pass the box's rate", || {
        resolver_metric(rig, "boxfence_resolver_refused_total") > refused + burst
    });
    others_are_served_meanwhile(rig, &quiet, &third);
    let out = flood.join().expect("flood thread");
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    eprintln!("the flood sent {} queries", out.stdout.trim());
}

fn destroyed_sockets_are_survived_or_bound_again(rig: &Rig) {
    let quiet = rig.create(
        "squiet",
        json!({"mode": "custom", "allowedDomains": ["api.github.com"]}),
        &[],
    );
    let resolves = |transport: &str| {
        dig(rig, &quiet, &[transport, "+short", "api.github.com"]).contains(&SERVER_V4.to_string())
    };
    let engine = SharedLinuxEngine(Arc::clone(&rig.engine));
    assert!(resolves("+notcp") && resolves("+tcp"));
    assert_eq!(engine.health(), Ok(()));

    // A destroyed UDP socket stays bound: its one receive error passes.
    let killed = rig.host(&["ss", "-K", "-u", "-a", "sport = :53"]);
    assert!(killed.status.success(), "{killed:?}");
    assert!(resolves("+notcp"), "UDP is still served");
    wait_for("the receive error", || {
        resolver_metric(rig, "boxfence_resolver_socket_errors_total") >= 1.0
    });
    assert_eq!(engine.health(), Ok(()));

    // A destroyed listener is dead: serving ends, health says so until the
    // sockets are bound again.
    let killed = rig.host(&["ss", "-K", "-t", "-l", "sport = :53"]);
    assert!(killed.status.success(), "{killed:?}");
    // Down lasts the second before the resolver binds again: natively
    // always seen; under emulation the test's thread once went unscheduled
    // for longer (5.10, a loaded host), so there a counted restart (down,
    // then bound again) stands in for a missed look.
    let restarts = || resolver_metric(rig, "boxfence_resolver_restarts_total");
    wait_for("health to say the resolver is down", || {
        engine.health().is_err() || (boxfence_lab::emulated() && restarts() >= 1.0)
    });
    if let Err(problems) = engine.health() {
        assert!(
            problems[0].starts_with("resolver: not serving"),
            "{problems:?}"
        );
    }
    wait_for("the resolver to serve again", || engine.health().is_ok());
    assert!(resolves("+notcp") && resolves("+tcp"), "served again");
    // One restart, or two: `ss -K` destroys the IPv4 and the IPv6 listener
    // one after the other, and on a slow (emulated) host the second went
    // after the resolver had bound both again (seen on Linux 5.10).
    let restarts = restarts();
    assert!((1.0..=2.0).contains(&restarts), "{restarts} restarts");
}
