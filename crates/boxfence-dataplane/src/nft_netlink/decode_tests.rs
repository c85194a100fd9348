//! Encoding then decoding gives back what was encoded, without a kernel.

use super::decode;
use super::dump::{Assembly, NEWSET, listing_of_batch};
use super::expr::{element_bytes, write_exprs};
use crate::netlink::Writer;
use crate::nft::expr::*;
use crate::nft::{Command, Difference, Flowtable, ListedFlowtable, Listing};

fn round_trip(exprs: &[Expr]) -> Vec<Expr> {
    let mut w = Writer::default();
    write_exprs(&mut w, exprs, &mut [7u32].into_iter());
    decode::exprs(w.bytes())
}

fn anonymous() -> AnonymousSet {
    AnonymousSet {
        spec: SetSpec {
            flags: SET_ANONYMOUS | SET_CONSTANT,
            key_type: TYPE_INET_PROTOCOL,
            key_len: 1,
            data: None,
            fields: Vec::new(),
            userdata: vec![0, 4, 1, 0, 0, 0],
        },
        elements: vec![RawElement::key(vec![6]), RawElement::key(vec![17])],
    }
}

/// One of each expression, with every optional part both ways.
fn every_expr() -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: META_IIFNAME,
            dreg: REG_1,
        },
        Expr::MetaSet {
            key: META_MARK,
            sreg: REG_1,
        },
        Expr::Ct {
            key: CT_STATE,
            dreg: REG_1,
            direction: None,
        },
        Expr::Ct {
            key: CT_ZONE,
            dreg: REG_2,
            direction: Some(1),
        },
        Expr::CtSet {
            key: CT_ZONE,
            sreg: REG_1,
            direction: Some(CT_DIR_ORIGINAL),
        },
        Expr::Payload {
            base: BASE_TRANSPORT,
            offset: 2,
            len: 2,
            dreg: REG32_01,
        },
        Expr::Cmp {
            sreg: REG_1,
            op: CMP_NEQ,
            data: vec![0, 53],
        },
        Expr::Bitwise {
            sreg: REG_1,
            dreg: REG_1,
            len: 4,
            mask: vec![0xfe, 0xff, 0xff, 0xff],
            xor: vec![1, 0, 0, 0],
        },
        Expr::Byteorder {
            sreg: REG_1,
            dreg: REG_1,
            op: 1,
            len: 1,
            size: 2,
        },
        Expr::Lookup {
            sreg: REG_1,
            set: SetRef::Named("blocked4".into()),
            dreg: None,
            invert: false,
        },
        Expr::Lookup {
            sreg: REG_2,
            set: SetRef::Named("out_chains".into()),
            dreg: Some(REG_VERDICT),
            invert: true,
        },
        Expr::Immediate {
            dreg: REG_VERDICT,
            data: Data::Verdict {
                code: VERDICT_GOTO,
                chain: Some("deny_box".into()),
            },
        },
        Expr::Immediate {
            dreg: REG_VERDICT,
            data: Data::Verdict {
                code: VERDICT_DROP,
                chain: None,
            },
        },
        Expr::Immediate {
            dreg: REG_2,
            data: Data::Value(vec![0, 53]),
        },
        Expr::Counter,
        Expr::Objref {
            kind: OBJECT_COUNTER,
            name: "b_x_denied".into(),
        },
        Expr::Limit {
            rate: 50,
            unit: 1,
            burst: 100,
            kind: 0,
            flags: 0,
        },
        Expr::Log {
            prefix: Some("boxfence host ".into()),
            group: Some(7),
        },
        Expr::Log {
            prefix: None,
            group: None,
        },
        Expr::Reject {
            kind: 1,
            code: None,
        },
        Expr::Reject {
            kind: 2,
            code: Some(3),
        },
        Expr::Nat {
            kind: 1,
            family: 10,
            addr: Some((REG_1, REG_1)),
            proto: Some((REG_2, REG_2)),
            flags: 3,
        },
        Expr::Nat {
            kind: 0,
            family: 2,
            addr: None,
            proto: None,
            flags: 0,
        },
        Expr::Masquerade,
        Expr::FlowOffload {
            flowtable: "ft".into(),
        },
        Expr::Unknown {
            name: "quota".into(),
            data: vec![8, 0, 1, 0, 0, 0, 0, 1],
        },
    ]
}

#[test]
fn every_expression_decodes_as_it_was_encoded() {
    let exprs = every_expr();
    assert_eq!(round_trip(&exprs), exprs);
    // Each alone too: none leans on its neighbours.
    for expr in exprs {
        assert_eq!(round_trip(std::slice::from_ref(&expr)), [expr]);
    }
}

#[test]
fn a_lookup_of_a_rule_own_set_names_it_by_the_batch_set_id() {
    let lookup = Expr::Lookup {
        sreg: REG_1,
        set: SetRef::Anonymous(anonymous()),
        dreg: None,
        invert: false,
    };
    let decoded = round_trip(&[lookup]);
    assert_eq!(
        decoded,
        [Expr::Lookup {
            sreg: REG_1,
            set: SetRef::Named("__set%d#7".into()),
            dreg: None,
            invert: false,
        }]
    );
}

#[test]
fn unmodelled_shapes_decode_as_unknown_not_as_something_else() {
    // A payload write (`NFTA_PAYLOAD_SREG`) and a shift (`NFTA_BITWISE_OP` 1).
    for (name, attrs) in [
        (
            "payload",
            vec![(1u16, 1u32), (2, 1), (3, 0), (4, 4), (5, 1)],
        ),
        ("bitwise", vec![(1, 1), (2, 1), (3, 4), (6, 1)]),
    ] {
        let mut data = Writer::default();
        attrs.iter().for_each(|(k, v)| data.put_be32(*k, *v));
        let expr = Expr::Unknown {
            name: name.into(),
            data: data.bytes().to_vec(),
        };
        assert_eq!(round_trip(std::slice::from_ref(&expr)), [expr]);
    }
}

#[test]
fn every_element_shape_decodes_as_it_was_encoded() {
    let elements = [
        RawElement::key(vec![10, 0, 0, 1]),
        RawElement {
            flags: ELEM_INTERVAL_END,
            ..RawElement::key(vec![0; 4])
        },
        RawElement {
            key_end: Some(vec![6, 0, 0, 0, 0, 90, 0, 0]),
            ..RawElement::key(vec![6, 0, 0, 0, 0, 80, 0, 0])
        },
        RawElement {
            data: Some(Data::Verdict {
                code: VERDICT_GOTO,
                chain: Some("b_x_out".into()),
            }),
            ..RawElement::key(b"bf-x\0\0\0\0\0\0\0\0\0\0\0\0".to_vec())
        },
        RawElement {
            userdata: Some(vec![1, 4, 1, 0, 0, 0]),
            ..RawElement::key(vec![255, 255, 255, 0])
        },
    ];
    for element in elements {
        // A NEWSETELEM message around it, as a dump answers.
        let mut w = Writer::default();
        let start = w.begin_message(10 << 8 | 12, 0, 1, 1, 0);
        w.put_strz(1, "t");
        w.put_strz(2, "s");
        let list = w.begin_nested(3);
        w.put_raw(&element_bytes(&element));
        w.end_nested(list);
        w.end_message(start);
        let payload = &w.bytes()[16..];
        let decoded = decode::set_elements(payload).expect("decodes");
        assert_eq!(decoded, ("t".into(), "s".into(), vec![element]));
    }
}

#[test]
fn messages_of_other_tables_are_left_out() {
    let mut w = Writer::default();
    let start = w.begin_message(10 << 8 | NEWSET, 0, 1, 1, 0);
    w.put_strz(1, "other");
    w.put_strz(2, "s");
    w.put_be32(5, 4);
    w.end_message(start);
    let mut assembly = Assembly::new("t");
    assembly.absorb(NEWSET, &w.bytes()[16..]);
    assert!(assembly.finish().sets.is_empty());
}

fn add_flowtable(devices: &[&str]) -> Command {
    Command::AddFlowtable {
        name: "ft".into(),
        flowtable: Flowtable {
            priority: -10,
            devices: devices.iter().map(|d| (*d).to_owned()).collect(),
        },
    }
}

/// A flowtable made, then given another device in place, decodes from
/// the batch's messages as the model lists it.
#[test]
fn a_flowtable_and_its_added_devices_decode_as_the_model_lists_them() {
    let commands = [
        Command::AddTable,
        add_flowtable(&["bf-a", "eth0"]),
        add_flowtable(&["bf-b"]),
    ];
    let expected = Listing::after(&commands).expect("lowers");
    assert_eq!(
        expected.flowtables["ft"],
        ListedFlowtable::new(-10, ["bf-a", "bf-b", "eth0"].map(String::from))
    );
    assert_eq!(listing_of_batch("t", &commands).expect("encodes"), expected);
}

/// A device removed from the flowtable leaves the model's listing, and
/// a kernel's flowtable that still has it (or lost another) differs.
#[test]
fn a_flowtable_device_too_many_or_too_few_is_a_difference() {
    let made = [Command::AddTable, add_flowtable(&["bf-a", "bf-b"])];
    let removed = Listing::after(
        &[
            made.to_vec(),
            vec![Command::DeleteFlowtableDevices {
                name: "ft".into(),
                devices: vec!["bf-b".into()],
            }],
        ]
        .concat(),
    )
    .expect("lowers");
    let kept = Listing::after(&made).expect("lowers");
    assert_eq!(removed.flowtables["ft"].devices, ["bf-a".to_owned()].into());
    for (expected, found) in [(&removed, &kept), (&kept, &removed)] {
        let differences = expected.differences(found);
        assert!(
            matches!(differences.as_slice(), [Difference::Flowtable { name, .. }] if name == "ft"),
            "{differences:?}"
        );
    }
    let gone = Listing::after(&[Command::AddTable]).expect("lowers");
    assert_eq!(
        kept.differences(&gone),
        [Difference::MissingFlowtable("ft".into())]
    );
}
