use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CNAME};

use super::*;

/// A query for `name` (type A) written byte by byte, so its case is kept.
fn query(name: &str) -> Vec<u8> {
    let mut wire = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        wire.push(u8::try_from(label.len()).expect("short label"));
        wire.extend_from_slice(label.as_bytes());
    }
    wire.extend_from_slice(&[0, 0, 1, 0, 1]);
    wire
}

fn record(name: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(Name::from_str(name).expect("name"), ttl, data)
}

#[test]
fn questions_keep_their_case_and_canonicalise() {
    let question = Question::parse(&query("API.GitHub.com.")).expect("parses");
    assert_eq!(question.canonical_name(), "api.github.com");
    let sent = query("API.GitHub.com.");
    assert!(
        sent.windows(6).any(|w| w == b"GitHub"),
        "the test query carries mixed case"
    );
    let wire = question.encode(&question.refusal("x")).expect("encodes");
    assert!(
        wire.windows(6).any(|w| w == b"GitHub"),
        "0x20 case preserved"
    );
    let answer = Message::from_vec(&wire).expect("parses");
    assert_eq!(answer.id(), 0x1234);
    assert!(Question::parse(b"\x00\x01garbage").is_none());
}

#[test]
fn refusals_carry_an_extended_dns_error_prohibited_with_the_reason() {
    let question = Question::parse(&query("evil.example.")).expect("parses");
    let wire = question
        .encode(&question.refusal("box policy: not in allowedDomains"))
        .expect("encodes");
    let answer = Message::from_vec(&wire).expect("parses");
    assert_eq!(answer.response_code(), ResponseCode::Refused);
    let edns = answer.extensions().as_ref().expect("EDNS present");
    let ede = edns
        .options()
        .as_ref()
        .iter()
        .find_map(|(_, option)| match option {
            EdnsOption::Unknown(EDE_OPTION, data) => Some(data.clone()),
            _ => None,
        })
        .expect("EDE option");
    assert_eq!(&ede[..2], &EDE_PROHIBITED.to_be_bytes());
    assert_eq!(
        String::from_utf8_lossy(&ede[2..]),
        "box policy: not in allowedDomains"
    );
}

#[test]
fn screening_learns_the_chain_drops_rebinding_and_caps_ttls() {
    let question = Question::parse(&query("raw.example.")).expect("parses");
    let mut answer = question.error(ResponseCode::NoError);
    answer.add_answers([
        record(
            "raw.example.",
            60,
            RData::CNAME(CNAME(Name::from_str("cdn.example.").expect("name"))),
        ),
        record(
            "cdn.example.",
            3600,
            RData::A(A(Ipv4Addr::new(198, 51, 100, 10))),
        ),
        record(
            "cdn.example.",
            5,
            RData::AAAA(AAAA(Ipv6Addr::from_str("2606:4700::1").expect("ip"))),
        ),
        record(
            "cdn.example.",
            60,
            RData::A(A(Ipv4Addr::new(169, 254, 169, 254))),
        ),
        record(
            "other.example.",
            60,
            RData::A(A(Ipv4Addr::new(93, 184, 215, 14))),
        ),
    ]);
    let screened = screen(
        &question,
        answer,
        &AlwaysBlocked::default(),
        TtlLimits::default(),
    );
    let learned: Vec<String> = screened
        .learned
        .iter()
        .map(|(ip, keep)| format!("{ip} {}", keep.as_secs()))
        .collect();
    // 198.51.100.10 is documentation space: always blocked without an exemption.
    assert_eq!(
        learned,
        ["2606:4700::1 60"],
        "floor 30 + grace 30 for a 5 s TTL"
    );
    assert_eq!(screened.removed.len(), 2);
    let ttls: Vec<u32> = screened.message.answers().iter().map(Record::ttl).collect();
    assert_eq!(
        ttls,
        [60, 5, 60],
        "CNAME, AAAA and the off-chain A stay; TTLs capped"
    );
    let exempt = AlwaysBlocked::with_exemptions(&["198.51.100.0/24".parse().expect("cidr")], &[])
        .expect("valid");
    let mut again = question.error(ResponseCode::NoError);
    again.add_answers([
        record(
            "raw.example.",
            60,
            RData::CNAME(CNAME(Name::from_str("cdn.example.").expect("name"))),
        ),
        record(
            "cdn.example.",
            3600,
            RData::A(A(Ipv4Addr::new(198, 51, 100, 10))),
        ),
    ]);
    let screened = screen(&question, again, &exempt, TtlLimits::default());
    assert_eq!(
        screened.learned,
        [(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)),
            Duration::from_secs(330)
        )]
    );
    assert_eq!(screened.message.answers()[1].ttl(), 300);
}
