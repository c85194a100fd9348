//! [`Match::TcpHeaderOnly`] against the kernel: over a TCP exchange on the
//! loopback of a scratch namespace, it matches every segment but those
//! that carry data, with and without TCP timestamps (the two header sizes
//! name checks leave in the kernel).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};

use serde_json::Value;

use super::{BaseChain, ChainType, Command, Family, Hook, Match, Rule, Statement};
use crate::testing::ScratchNetns;

/// IANA protocol number of TCP.
const TCP: u8 = 6;

/// Every TCP header size, in 32-bit words.
const DOFFS: std::ops::RangeInclusive<u8> = 5..=15;

/// Counters in chain order: header-only segments of each family and
/// size, then every TCP segment of each family.
fn rules() -> Vec<Rule> {
    let counted = |matches| Rule::then(matches, vec![Statement::Counter]);
    let families = [Family::Ipv4, Family::Ipv6];
    let header_only = families.into_iter().flat_map(|family| {
        DOFFS.map(move |doff| counted(vec![Match::TcpHeaderOnly { family, doff }]))
    });
    let all = families
        .into_iter()
        .map(|family| counted(vec![Match::Nfproto(family), Match::L4proto(TCP)]));
    header_only.chain(all).collect()
}

/// The counters' packets, in chain order.
fn counts(ns: &ScratchNetns) -> Vec<u64> {
    let out = ns
        .host()
        .run("nft", &["-j", "list", "chain", "inet", "t", "in"], None)
        .expect("nft lists the chain");
    let json: Value = serde_json::from_str(&out).expect("nft json");
    json["nftables"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter_map(|rule| {
            rule["expr"]
                .as_array()?
                .iter()
                .find_map(|e| e.get("counter"))?["packets"]
                .as_u64()
        })
        .collect()
}

/// One request and one answer, each a segment of data, then both close.
fn exchange(ns: &ScratchNetns, addr: IpAddr) {
    ns.run_inside(|| {
        let listener = TcpListener::bind((addr, 0)).expect("listen");
        let port = listener.local_addr().expect("port").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0; 5];
            stream.read_exact(&mut request).expect("request");
            stream.write_all(b"world").expect("answer");
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).expect("the client's close");
        });
        let mut client = TcpStream::connect((addr, port)).expect("connect");
        client.write_all(b"hello").expect("request");
        let mut answer = [0; 5];
        client.read_exact(&mut answer).expect("answer");
        drop(client);
        server.join().expect("server");
    });
}

#[test]
fn kernel_header_only_matches_every_segment_but_those_with_data() {
    let Some(ns) = ScratchNetns::new("kernel_header_only_matches_every_segment_but_data") else {
        return;
    };
    ns.host()
        .run("ip", &["link", "set", "lo", "up"], None)
        .expect("loopback up");
    let input = BaseChain {
        chain_type: ChainType::Filter,
        hook: Hook::Input,
        priority: 0,
    };
    let mut commands = vec![
        Command::AddTable,
        Command::AddBaseChain {
            name: "in".into(),
            base: input,
        },
    ];
    commands.extend(rules().into_iter().map(|rule| Command::AddRule {
        chain: "in".into(),
        rule,
    }));
    ns.nft_socket()
        .apply("t", &commands)
        .expect("the table loads");

    let mut before = counts(&ns);
    for timestamps in ["1", "0"] {
        ns.host()
            .run(
                "sysctl",
                &["-qw", &format!("net.ipv4.tcp_timestamps={timestamps}")],
                None,
            )
            .expect("sysctl");
        for (family, addr) in [
            (0, IpAddr::V4(Ipv4Addr::LOCALHOST)),
            (1, IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ] {
            exchange(&ns, addr);
            let after = counts(&ns);
            let delta: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            let what = format!("{addr} timestamps={timestamps}: {delta:?}");
            let sizes = DOFFS.len();
            assert_eq!(delta.len(), 2 * sizes + 2, "{what}");
            let (by_size, all) = delta.split_at(2 * sizes);
            let (this, other) = by_size.split_at(sizes);
            let (this, other) = if family == 0 {
                (this, other)
            } else {
                (other, this)
            };
            assert_eq!(other.iter().sum::<u64>() + all[1 - family], 0, "{what}");
            // SYN, SYN-ACK, ACKs and FINs are header only; the request
            // and the answer are not.
            let header_only: u64 = this.iter().sum();
            assert!(header_only >= 6, "{what}");
            assert_eq!(
                all[family] - header_only,
                2,
                "the two data segments: {what}"
            );
            // Bare ACKs are 20 bytes, or 32 with timestamps.
            let bare_ack = if timestamps == "1" {
                this[8 - 5]
            } else {
                this[0]
            };
            assert!(bare_ack >= 2, "{what}");
            before = after;
        }
    }
}
