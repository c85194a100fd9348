//! IP protocols beyond TCP, UDP and ICMP: judged by the policy like any
//! other flow (only a rule naming no ports allows one), logged with their
//! number, and cut when a change revokes them.

use std::process::{Child, Stdio};

use super::held::replied_flow;
use super::rig::*;

/// This module's tests, in the order they run.
pub(crate) const TESTS: &[(&str, Test)] = &[(
    "udp_lite_is_judged_logged_and_cut",
    udp_lite_is_judged_logged_and_cut,
)];

/// UDP-Lite's IP protocol number.
const UDPLITE: u8 = 136;
const ECHO_PORT: u16 = 5354;

/// A UDP-Lite echo server in the lab's internet, stopped on drop.
struct UdpLiteEcho(Child);

impl UdpLiteEcho {
    fn start(lab: &Lab) -> Self {
        let script = format!(
            "import socket\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,{UDPLITE}); s.bind(('{SERVER_V4}',{ECHO_PORT}))\n\
             while True:\n  d,a=s.recvfrom(100); s.sendto(d,a)\n"
        );
        let child = lab
            .internet_command(["python3", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("UDP-Lite echo starts");
        // Bound before any box sends (a datagram to no socket is lost):
        // natively within 0.1 s, under emulation seconds.
        let bound = format!(":{ECHO_PORT:04X} ");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !lab
            .internet_exec(["cat", "/proc/net/udplite"])
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&bound))
        {
            assert!(Instant::now() < deadline, "UDP-Lite echo bound within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self(child)
    }
}

/// Sends a UDP-Lite ping to the echo server up to `count` times, 0.1 s
/// apart, printing `echo <time>` or `none` for each, and stops after
/// `stop` misses in a row.
fn pings(count: u32, stop: u32) -> String {
    format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM,{UDPLITE}); s.settimeout(0.2)\n\
         s.connect(('{SERVER_V4}',{ECHO_PORT}))\n\
         misses=0\n\
         for i in range({count}):\n\
         \x20 try: s.send(b'ping'); ok=s.recv(100)==b'ping'\n\
         \x20 except Exception: ok=False\n\
         \x20 print('echo %f' % time.time() if ok else 'none', flush=True)\n\
         \x20 misses=0 if ok else misses+1\n\
         \x20 if misses=={stop}: break\n\
         \x20 time.sleep(0.1)\n"
    )
}

impl Drop for UdpLiteEcho {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn udp_lite_is_judged_logged_and_cut(rig: &Rig) {
    // With checksum validation on, this kernel's conntrack finds a box's
    // UDP-Lite packets invalid (it checks their partial checksum with
    // UDP's pseudo-header) and the ruleset drops them before any policy;
    // without it they are tracked flows, which the policy must judge.
    rig.host(&["sysctl", "-qw", "net.netfilter.nf_conntrack_checksum=0"]);
    let _echo = UdpLiteEcho::start(&rig.lab);
    let b = rig.create("lite1", json!({"mode": "allow-all"}), &[]);
    // One flow (same socket, same ports) echoing every 100 ms until ten
    // pings in a row go unanswered (at most a minute).
    let script = pings(600, 10);
    // TCP 80 and 443 only: no rule names UDP-Lite any more.
    let web_only = json!({"name": "web", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress",
         "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 443}]}]});
    std::thread::scope(|scope| {
        let flow =
            scope.spawn(|| rig.exec_for(&b, &["python3", "-c", &script], Duration::from_secs(90)));
        // The change comes once an echo came back (conntrack saw a reply).
        let replied = replied_flow(rig, &b, "udplite", ECHO_PORT);
        rig.update(
            &b,
            json!({"mode": "allow-all"}),
            std::slice::from_ref(&web_only),
        );
        let changed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let out = flow.join().expect("flow thread");
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert!(replied, "allow-all allows it: {out:?}");
        assert!(
            lines.first().is_some_and(|line| line.starts_with("echo")),
            "allow-all allows it: {out:?}"
        );
        let echoed_after = lines
            .iter()
            .filter_map(|line| line.strip_prefix("echo ")?.parse::<f64>().ok())
            .any(|at| at > changed);
        assert!(
            !echoed_after && lines.ends_with(&["none"; 10]),
            "the change revokes the open flow: {out:?}"
        );
    });
    let events = events_until(rig, &b, |e| e.protocol == Some(Protocol::Other(UDPLITE)));
    let denial = events
        .iter()
        .find(|e| e.protocol == Some(Protocol::Other(UDPLITE)))
        .unwrap_or_else(|| panic!("a denial names the protocol: {events:?}"));
    assert_eq!(denial.layer, Some(Layer::AppPolicy), "{denial:?}");
    assert!(
        denial.describe().contains("ip protocol 136"),
        "{}",
        denial.describe()
    );
    // A rule without ports allows every protocol, UDP-Lite included.
    let any_to_server = json!({"name": "any", "selector": {"all": true}, "rules": [
        {"action": "allow", "direction": "egress", "cidrs": [format!("{SERVER_V4}/32")]}]});
    rig.update(&b, json!({"mode": "allow-all"}), &[web_only, any_to_server]);
    let out = rig.exec(&b, &["python3", "-c", &pings(2, 2)]);
    assert!(out.stdout.starts_with("echo"), "{out:?}");
}
