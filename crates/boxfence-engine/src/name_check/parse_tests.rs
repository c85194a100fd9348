use proptest::prelude::*;

use super::*;

/// A ClientHello record with `sni` (none: no server_name extension) and
/// an extension before it, as browsers send.
pub(crate) fn client_hello_record(sni: Option<&str>) -> Vec<u8> {
    let mut extensions = Vec::new();
    // supported_groups: x25519
    extensions.extend_from_slice(&[0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d]);
    if let Some(name) = sni {
        let name_len = u16::try_from(name.len()).expect("short");
        let mut entry = vec![HOST_NAME];
        entry.extend_from_slice(&name_len.to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        let mut list = u16::try_from(entry.len())
            .expect("short")
            .to_be_bytes()
            .to_vec();
        list.extend_from_slice(&entry);
        extensions.extend_from_slice(&SERVER_NAME.to_be_bytes());
        extensions.extend_from_slice(&u16::try_from(list.len()).expect("short").to_be_bytes());
        extensions.extend_from_slice(&list);
    }
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend_from_slice(
        &u16::try_from(extensions.len())
            .expect("short")
            .to_be_bytes(),
    );
    body.extend_from_slice(&extensions);
    let mut handshake = vec![CLIENT_HELLO];
    handshake.extend_from_slice(&u32::try_from(body.len()).expect("short").to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    record(&handshake)
}

fn record(fragment: &[u8]) -> Vec<u8> {
    let mut record = vec![HANDSHAKE, 3, 1];
    record.extend_from_slice(&u16::try_from(fragment.len()).expect("short").to_be_bytes());
    record.extend_from_slice(fragment);
    record
}

#[test]
fn a_client_hello_gives_its_sni_and_every_prefix_asks_for_more() {
    let hello = client_hello_record(Some("registry.npmjs.org"));
    assert_eq!(parse(&hello), Parsed::Sni("registry.npmjs.org".into()));
    for cut in 0..hello.len() {
        assert_eq!(parse(&hello[..cut]), Parsed::NeedMore, "cut at {cut}");
    }
    assert_eq!(parse(&client_hello_record(None)), Parsed::NoSni);
}

#[test]
fn a_client_hello_split_over_records_is_reassembled() {
    let hello = client_hello_record(Some("api.github.com"));
    let handshake = &hello[5..];
    let (first, second) = handshake.split_at(40);
    let mut two = record(first);
    two.extend_from_slice(&record(second));
    assert_eq!(parse(&two), Parsed::Sni("api.github.com".into()));
    assert_eq!(parse(&two[..two.len() - 1]), Parsed::NeedMore);
}

#[test]
fn http_requests_give_their_host_without_port() {
    for (request, host) in [
        ("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", "example.org"),
        (
            "POST /x HTTP/1.1\r\nUser-Agent: a\r\nhOsT:  Evil.Example:8080 \r\n\r\nbody",
            "Evil.Example",
        ),
        (
            "GET / HTTP/1.0\r\nHost: [2001:db8::1]:80\r\n\r\n",
            "2001:db8::1",
        ),
    ] {
        assert_eq!(
            parse(request.as_bytes()),
            Parsed::Host(host.into()),
            "{request}"
        );
        for cut in 0..request.find("\r\n\r\n").expect("head") + 3 {
            assert_eq!(
                parse(&request.as_bytes()[..cut]),
                Parsed::NeedMore,
                "{request} cut {cut}"
            );
        }
    }
    assert_eq!(
        parse(b"GET / HTTP/1.0\r\n\r\n"),
        Parsed::Unrecognised,
        "no Host"
    );
}

#[test]
fn other_protocols_are_unrecognised() {
    for bytes in [
        &b"SSH-2.0-OpenSSH_9.2\r\n"[..],
        b"\x00\x00\x00\x01",
        b"get / HTTP/1.1\r\n\r\n",
        b"GET / SPDY/3\r\nHost: a\r\n\r\n",
        &[HANDSHAKE, 3, 3, 0, 4, 2, 0, 0, 0], // a ServerHello
        &[HANDSHAKE, 9, 9],
    ] {
        assert_eq!(parse(bytes), Parsed::Unrecognised, "{bytes:?}");
    }
    assert_eq!(
        parse(&vec![b'A'; MAX_BYTES]),
        Parsed::Unrecognised,
        "too long"
    );
}

proptest! {
    #[test]
    fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn a_hello_in_any_two_records_gives_the_same_sni(cut in 1usize..80, name in "[a-z]{1,20}\\.[a-z]{2,5}") {
        let hello = client_hello_record(Some(&name));
        let handshake = &hello[5..];
        let cut = cut.min(handshake.len() - 1);
        let mut two = record(&handshake[..cut]);
        two.extend_from_slice(&record(&handshake[cut..]));
        prop_assert_eq!(parse(&two), Parsed::Sni(name));
    }

    #[test]
    fn corrupted_hellos_never_panic(flip in 0usize..200, value in any::<u8>()) {
        let mut hello = client_hello_record(Some("a.example"));
        let at = flip % hello.len();
        hello[at] = value;
        let _ = parse(&hello);
    }
}
