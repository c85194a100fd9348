//! Dumps and deletes against a real kernel, in a scratch namespace whose
//! only link is its loopback: no packet leaves it.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use boxfence_policy::{AlwaysBlocked, BoxPolicy, EffectivePolicy, Machine};
use serde_json::json;

use super::*;
use crate::testing::ScratchNetns;

/// The box's addresses, a peer's and another local sender's, all on `lo`.
const BOX4: &str = "11.0.0.2";
const BOX6: &str = "2a01:9999::2";
const PEER4: &str = "11.0.0.7";
const PEER6: &str = "2a01:9999::7";
const OTHER4: &str = "11.0.0.3";
/// The zone the ruleset gives flows to ports from 4000 on.
const ZONE: u16 = 5;

fn link() -> BoxLink {
    BoxLink {
        id: "ct1".into(),
        ifname: "bf-ct1".into(),
        ipv4: BOX4.parse().expect("ip"),
        ipv6: BOX6.parse().expect("ip"),
        zone: ZONE,
    }
}

fn policy(box_policy: serde_json::Value) -> EffectivePolicy {
    let machine = Machine {
        id: "ct1".into(),
        network_policy: BoxPolicy::from_json(&box_policy).expect("box policy"),
        ..Machine::default()
    };
    EffectivePolicy::from_policies(&machine, &[], Arc::new(AlwaysBlocked::default()))
}

/// A scratch namespace with the addresses up and conntrack in use (flows
/// to ports 4000 and up in zone `ZONE`, as a box's would be).
fn lab(test: &str) -> Option<ScratchNetns> {
    let netns = ScratchNetns::new(test)?;
    let host = netns.host();
    let mut batch = String::from("link set lo up\n");
    for ip in [BOX4, PEER4, OTHER4] {
        batch.push_str(&format!("addr add {ip}/32 dev lo\n"));
    }
    for ip in [BOX6, PEER6] {
        batch.push_str(&format!("addr add {ip}/128 dev lo nodad\n"));
    }
    host.run("ip", &["-b", "-"], Some(&batch))
        .expect("addresses");
    host.nft(
        "table inet t {\n chain raw {\n type filter hook output priority raw; policy accept;\n \
         udp dport >= 4000 ct original zone set 5\n }\n \
         chain out {\n type filter hook output priority filter; policy accept;\n ct state new counter\n }\n}\n",
    )
    .expect("ruleset");
    // Under load, the first IPv6 datagrams of a fresh namespace sometimes
    // make no entry: start once they do, with an empty table.
    host.in_netns(|| {
        let mut conntrack = Conntrack::open().expect("open");
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            flows(BOX6, PEER6, 3999..4000);
            let entries = conntrack.entries().expect("dump");
            if entries.iter().any(|e| e.src.to_string() == BOX6) {
                let all: Vec<&Entry> = entries.iter().collect();
                conntrack.delete(&all).expect("delete");
                break;
            }
            assert!(Instant::now() < deadline, "IPv6 flows never tracked");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    })
    .expect("in namespace");
    Some(netns)
}

/// Sends one datagram from `from` to each of `to`'s `ports`: one entry each.
fn flows(from: &str, to: &str, ports: std::ops::Range<u16>) {
    let from: IpAddr = from.parse().expect("ip");
    let socket = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind");
    for port in ports {
        socket
            .send_to(b"x", SocketAddr::new(to.parse().expect("ip"), port))
            .expect("send");
    }
}

#[test]
fn a_dump_reports_both_families_with_ports_and_zone() {
    let Some(netns) = lab("ctdump") else {
        return;
    };
    let entries = netns
        .host()
        .in_netns(|| {
            flows(BOX4, PEER4, 4242..4243);
            flows(BOX6, PEER6, 4243..4244);
            flows(OTHER4, PEER4, 80..81);
            Conntrack::open().expect("open").entries().expect("dump")
        })
        .expect("in namespace");
    let find = |dport| {
        entries
            .iter()
            .find(|e| e.flow.dport == Some(dport))
            .unwrap_or_else(|| panic!("the flow to port {dport} in {entries:?}"))
    };
    let v4 = find(4242);
    assert_eq!(v4.src.to_string(), BOX4);
    assert_eq!(v4.dst.to_string(), PEER4);
    assert_eq!(v4.flow.protocol, Protocol::Udp);
    assert_eq!(v4.zone, ZONE);
    assert_eq!(find(4243).src.to_string(), BOX6);
    assert_eq!(find(80).zone, 0);
}

#[test]
fn cut_denied_deletes_what_the_policy_denies_and_nothing_else() {
    let Some(netns) = lab("ctcut") else {
        return;
    };
    let (allowed, denied, after) = netns
        .host()
        .in_netns(|| {
            flows(BOX4, PEER4, 4000..4010);
            flows(BOX6, PEER6, 4000..4010);
            flows(OTHER4, PEER4, 4000..4010);
            let mut conntrack = Conntrack::open().expect("open");
            let none = |_: &str, _: IpAddr| None;
            let open = policy(json!({"mode": "allow-all"}));
            let allowed = conntrack
                .cut_denied(&[(link(), &open)], &none)
                .expect("cut");
            let closed = policy(json!({"mode": "deny-all"}));
            // What the first cut kept is all there is to look at: no walk.
            let kept = allowed.kept.get("ct1").cloned().unwrap_or_default();
            let denied = conntrack
                .cut_among(&[(link(), &closed)], kept, &none)
                .expect("cut");
            (allowed, denied, conntrack.entries().expect("dump"))
        })
        .expect("in namespace");
    assert_eq!(allowed.cut, 0, "allow-all cuts nothing");
    assert_eq!(
        allowed.kept.get("ct1").map(Vec::len),
        Some(20),
        "what allow-all keeps is reported"
    );
    assert_eq!(
        denied.cut, 20,
        "deny-all cuts the box's ten flows of each family"
    );
    let owned = |ip: IpAddr| [BOX4, BOX6].contains(&ip.to_string().as_str());
    assert!(!after.iter().any(|e| owned(e.src) || owned(e.dst)));
    assert_eq!(
        after.iter().filter(|e| e.src.to_string() == OTHER4).count(),
        10,
        "another sender's flows stay"
    );
}

#[test]
fn flush_box_deletes_every_flow_of_the_box_and_a_gone_entry_is_fine() {
    let Some(netns) = lab("ctflush") else {
        return;
    };
    let (flushed, again, stale, after) = netns
        .host()
        .in_netns(|| {
            flows(BOX4, PEER4, 4000..4005);
            flows(BOX6, PEER6, 80..85);
            flows(PEER4, BOX4, 90..95);
            flows(OTHER4, PEER4, 80..85);
            let mut conntrack = Conntrack::open().expect("open");
            let before = conntrack.entries().expect("dump");
            let flushed = conntrack.flush_box(&link()).expect("flush");
            let again = conntrack.flush_box(&link()).expect("flush again");
            let gone: Vec<&Entry> = before
                .iter()
                .filter(|e| e.src.to_string() == BOX4)
                .take(1)
                .collect();
            let stale = conntrack.delete(&gone).expect("delete a gone entry");
            (flushed, again, stale, conntrack.entries().expect("dump"))
        })
        .expect("in namespace");
    assert_eq!(flushed, 15, "egress of both families and ingress");
    assert_eq!((again, stale), (0, 0));
    assert_eq!(after.len(), 5, "only the other sender's flows: {after:?}");
}

/// Prints what a dump, a cut and a flush cost with no flows and with
/// 1,000 (in-process) next to the `conntrack` runs they replace:
/// `cargo test -p boxfence-dataplane conntrack_timing -- --ignored --nocapture` as root.
#[test]
#[ignore = "a timing printout, not a check"]
fn conntrack_timing() {
    let Some(netns) = lab("cttime") else {
        return;
    };
    let host = netns.host();
    let ms = |started: Instant| started.elapsed().as_secs_f64() * 1e3;
    let closed = policy(json!({"mode": "deny-all"}));
    let none = |_: &str, _: IpAddr| None;
    for count in [0u16, 1000] {
        let (cut, flush) = host
            .in_netns(|| {
                let mut conntrack = Conntrack::open().expect("open");
                let mut cut = Vec::new();
                for _ in 0..5 {
                    flows(BOX4, PEER4, 4000..4000 + count);
                    let started = Instant::now();
                    let n = conntrack
                        .cut_denied(&[(link(), &closed)], &none)
                        .expect("cut");
                    cut.push(ms(started));
                    assert_eq!(n.cut, usize::from(count));
                }
                flows(BOX4, PEER4, 4000..4000 + count);
                let started = Instant::now();
                conntrack.flush_box(&link()).expect("flush");
                (cut, ms(started))
            })
            .expect("in namespace");
        // What the engine ran before: two listings per apply, four deletes per box.
        flows_in(&host, count);
        let started = Instant::now();
        for family in ["ipv4", "ipv6"] {
            host.run("conntrack", &["-L", "-f", family], None)
                .expect("list");
        }
        let listed = ms(started);
        let started = Instant::now();
        for (family, side, ip) in [
            ("ipv4", "-s", BOX4),
            ("ipv4", "-d", BOX4),
            ("ipv6", "-s", BOX6),
            ("ipv6", "-d", BOX6),
        ] {
            let _ = host.run("conntrack", &["-D", "-f", family, side, ip], None);
        }
        let deleted = ms(started);
        // And one `conntrack -D` per denied flow.
        flows_in(&host, 1);
        let started = Instant::now();
        let _ = host.run(
            "conntrack",
            &[
                "-D", "-f", "ipv4", "-p", "udp", "-s", BOX4, "-d", PEER4, "--dport", "4000",
            ],
            None,
        );
        let one = ms(started);
        println!(
            "{count} flows: in-process cut_denied {cut:.2?} ms (dump + deletes), flush_box {flush:.2} ms; \
             before: conntrack -L x2 {listed:.1} ms, conntrack -D x4 {deleted:.1} ms, one flow's -D {one:.1} ms"
        );
    }
}

fn flows_in(host: &crate::HostNetns, count: u16) {
    host.in_netns(|| flows(BOX4, PEER4, 4000..4000 + count))
        .expect("in namespace");
}
