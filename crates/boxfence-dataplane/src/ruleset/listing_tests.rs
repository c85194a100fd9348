//! The listing the model expects against what its own batches encode and
//! what the kernel's table holds, read back over netlink.

use std::time::Duration;

use serde_json::json;

use super::tests::{config, effective, link, web_policy};
use super::*;
use crate::features::KernelFeatures;
use crate::nft::expr::{Expr, SetRef};
use crate::nft::{Difference, QueueBy};
use crate::nft_netlink::dump::listing_of_batch;
use crate::nft_netlink::{ElementKey, SetElement};
use crate::nft_watch::NftWatch;
use crate::testing::ScratchNetns;

/// A ruleset with a custom box (lists of every kind, domains) and a
/// deny-all one under an app policy with ports, CIDRs and domains, name
/// checks queueing `by` one of the kernel's ways.
fn model(uplinks: &[&str], by: QueueBy) -> Ruleset {
    let mut ruleset = Ruleset::new(TableConfig {
        uplinks: uplinks.iter().map(|u| (*u).to_owned()).collect(),
        name_check: Some(super::NameCheck::new(3, by, config().mark)),
        ..config()
    });
    let custom = json!({"mode": "custom", "allowedDomains": ["api.github.com"],
        "allowedCidrs": ["104.16.0.0/12", "198.51.100.7/32", "2001:db8::/32"],
        "deniedCidrs": ["104.16.120.0/24"]});
    let a = effective("aaa", custom, &[web_policy(&[80, 443])]);
    let b = effective(
        "bbb",
        json!({"mode": "deny-all"}),
        &[web_policy(&[80, 443])],
    );
    let _ = ruleset.upsert_boxes(&[(link("aaa", 2), &a), (link("bbb", 3), &b)]);
    ruleset
}

#[test]
fn the_expected_listing_is_what_the_full_batch_encodes() {
    let cases = [&[][..], &["eth0"], &["eth0", "eth1"]]
        .into_iter()
        .flat_map(|uplinks| [QueueBy::Expression, QueueBy::XtTarget].map(|by| (uplinks, by)));
    for (uplinks, by) in cases {
        let ruleset = model(uplinks, by);
        let expected = ruleset.listing().expect("lowers");
        let encoded = listing_of_batch("boxfence", ruleset.whole().commands()).expect("encodes");
        assert_eq!(expected.differences(&encoded), [], "{uplinks:?} {by:?}");
        assert_eq!(expected, encoded);
        // Not trivially: boxes, shared policies, maps with their
        // elements, rules' own sets.
        assert!(expected.chains.contains_key("b_aaa_link"));
        assert!(expected.chains.keys().any(|c| c.starts_with("a_")));
        assert_eq!(
            expected.sets["out_chains"].elements.as_ref().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            expected.sets["b_aaa_learn4"].elements, None,
            "learned: not compared"
        );
        let own_sets = expected
            .chains
            .values()
            .flat_map(|c| c.rules.iter().flatten())
            .filter(|e| {
                matches!(
                    e,
                    Expr::Lookup {
                        set: SetRef::Anonymous(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(
            own_sets,
            7 + usize::from(uplinks.len() > 1) * 2,
            "{uplinks:?}"
        );
    }
}

fn probed_queue() -> QueueBy {
    KernelFeatures::probe(&[]).expect("probe").paths().queue
}

/// A scratch namespace holding the model's whole table, loaded over
/// netlink, and a socket to read it back.
struct Loaded {
    ns: ScratchNetns,
    socket: crate::nft_netlink::NftSocket,
    watch: NftWatch,
    ruleset: Ruleset,
}

impl Loaded {
    fn new(test: &str) -> Option<Self> {
        let ns = ScratchNetns::new(test)?;
        // The boxes' devices, and the one a chain is moved to below.
        ns.add_links(&["bf-aaa", "bf-bbb", "bf-zzz"]);
        let socket = ns.nft_socket();
        let watch = NftWatch::open_in(&ns.host()).expect("watch");
        let mut loaded = Self {
            ns,
            socket,
            watch,
            // The way this kernel queues: it refuses the other.
            ruleset: model(&["eth0", "eth1"], probed_queue()),
        };
        loaded.restore();
        Some(loaded)
    }

    fn restore(&mut self) {
        let full = self.ruleset.full();
        self.socket
            .apply(full.table(), full.commands())
            .expect("the whole table loads");
    }

    fn differences(&mut self) -> Vec<Difference> {
        let found = self
            .watch
            .list_table("boxfence")
            .expect("dump")
            .expect("the table is there");
        self.ruleset.listing().expect("lowers").differences(&found)
    }

    fn nft(&self, command: &str) {
        self.ns.host().nft(command).expect(command);
    }
}

#[test]
fn kernel_table_read_back_is_the_model_listing_and_learned_elements_do_not_count() {
    let Some(mut loaded) = Loaded::new("listing-same") else {
        return;
    };
    assert_eq!(loaded.differences(), []);
    let learned = [
        SetElement::new(
            box_learned_set("aaa", false),
            ElementKey::Ipv4("203.0.113.9".parse().expect("ip")),
            Some(Duration::from_secs(60)),
        ),
        SetElement::new(
            box_learned_set("aaa", true),
            ElementKey::Ipv6("2001:db8::9".parse().expect("ip")),
            Some(Duration::from_secs(60)),
        ),
    ];
    loaded
        .socket
        .add_elements("boxfence", &learned)
        .expect("learn");
    assert_eq!(
        loaded.differences(),
        [],
        "learned addresses are not tampering"
    );
    loaded.nft("delete table inet boxfence");
    assert_eq!(loaded.watch.list_table("boxfence").expect("dump"), None);
}

#[test]
fn kernel_every_kind_of_alteration_is_named() {
    let Some(mut loaded) = Loaded::new("listing-altered") else {
        return;
    };
    let cases: [(&str, &str); 7] = [
        (
            "insert rule inet boxfence b_aaa_out accept",
            "chain b_aaa_out rule 1 differs",
        ),
        (
            "add element inet boxfence b_aaa_allow4 { 203.0.113.7 }",
            "set b_aaa_allow4 holds 2 element(s) it should not, the first 203.0.113.7",
        ),
        (
            "delete element inet boxfence out_chains { \"bf-bbb\" }",
            "set out_chains lacks 1 element(s), the first \"bf-bbb\"",
        ),
        (
            "chain inet boxfence input { policy drop; }",
            "chain input hook differs",
        ),
        (
            "flush chain inet boxfence b_aaa_out\ndelete counter inet boxfence b_aaa_new_out",
            "counter b_aaa_new_out missing",
        ),
        (
            "delete chain inet boxfence b_aaa_link\n\
             add chain inet boxfence b_aaa_link { type filter hook ingress device \"bf-zzz\" priority filter; policy accept; }",
            "chain b_aaa_link hook differs",
        ),
        (
            "add table inet boxfence { flags dormant; }",
            "table flags are 0x1, expected 0x0",
        ),
    ];
    for (alteration, said) in cases {
        loaded.nft(alteration);
        let differences: Vec<String> = loaded
            .differences()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            differences.iter().any(|d| d.starts_with(said)),
            "{alteration}: {differences:#?}"
        );
        loaded.restore();
        assert_eq!(loaded.differences(), [], "{alteration}: restored");
    }
}

/// Prints what the watchdog's comparison costs at 1,000 boxes, its parts,
/// and what the `nft -j` listing it replaced cost on the same table:
/// `cargo test -p boxfence-dataplane listing_timing -- --ignored --nocapture` as root.
#[test]
#[ignore = "a timing printout, not a check"]
fn listing_timing() {
    let Some(ns) = ScratchNetns::new("listing-timing") else {
        return;
    };
    let mut socket = ns.nft_socket();
    let mut watch = NftWatch::open_in(&ns.host()).expect("watch");
    let mut ruleset = Ruleset::new(config());
    let custom = json!({"mode": "custom", "allowedDomains": ["api.github.com"],
        "allowedCidrs": ["104.16.0.0/12", "198.51.100.7/32", "2001:db8::/32"],
        "deniedCidrs": ["104.16.120.0/24"]});
    let policies: Vec<_> = (0..1000)
        .map(|i| {
            effective(
                &format!("m{i:04}"),
                custom.clone(),
                &[web_policy(&[80, 443])],
            )
        })
        .collect();
    let links: Vec<_> = (0..1000u16)
        .map(|i| BoxLink {
            ipv4: std::net::Ipv4Addr::from(0x0ac8_0002 + u32::from(i)),
            ipv6: std::net::Ipv6Addr::from(0xfd00_0b0f_u128 << 96 | (2 + u128::from(i))),
            zone: i + 2,
            ..link(&format!("m{i:04}"), 2)
        })
        .collect();
    let boxes: Vec<_> = links.iter().cloned().zip(policies.iter()).collect();
    let _ = ruleset.upsert_boxes(&boxes);
    let full = ruleset.full();
    let started = std::time::Instant::now();
    socket.apply(full.table(), full.commands()).expect("loads");
    let load = started.elapsed();
    let started = std::time::Instant::now();
    let expected = ruleset.listing().expect("lowers");
    let model = started.elapsed();
    let started = std::time::Instant::now();
    let found = watch.list_table("boxfence").expect("dump").expect("table");
    let read = started.elapsed();
    let started = std::time::Instant::now();
    assert_eq!(expected.differences(&found), []);
    let compare = started.elapsed();
    let started = std::time::Instant::now();
    ns.host()
        .run(
            "nft",
            &["-j", "-s", "list", "table", "inet", "boxfence"],
            None,
        )
        .expect("nft -j");
    let nft_json = started.elapsed();
    println!(
        "1,000 boxes, {} sets, {} chains: whole table over netlink {load:?}; the model's listing {model:?}; \
         the table read back over netlink {read:?}; compared {compare:?}; (nft -j -s list table {nft_json:?})",
        found.sets.len(),
        found.chains.len()
    );
}

/// With the fast path the table holds the flowtable on the uplinks and
/// every box link, fed by the forward chain (established TCP and UDP of
/// box links only); a box joins it in its create batch and leaves it in
/// its delete batch, and an update of its policy leaves it alone.
#[test]
fn the_flowtable_holds_the_uplinks_and_every_box_link() {
    use crate::nft::Flowtable;
    let mut ruleset = Ruleset::new(TableConfig {
        flowtable_uplinks: Some(vec!["eth0".into()]),
        ..config()
    });
    let allow = effective("aaa", json!({"mode": "allow-all"}), &[]);
    let created = ruleset.upsert_boxes(&[(link("aaa", 2), &allow), (link("bbb", 3), &allow)]);
    let joins = |device: &str| Command::AddFlowtable {
        name: FLOWTABLE.into(),
        flowtable: Flowtable {
            priority: -10,
            devices: vec![device.into()],
        },
    };
    assert!(created.commands().contains(&joins("bf-aaa")));
    assert!(created.commands().contains(&joins("bf-bbb")));
    let expected = ruleset.listing().expect("lowers");
    assert_eq!(
        expected.flowtables[FLOWTABLE].devices,
        ["bf-aaa", "bf-bbb", "eth0"].map(String::from).into()
    );
    let encoded = listing_of_batch("boxfence", ruleset.whole().commands()).expect("encodes");
    assert_eq!(expected, encoded);
    let forward = &expected.chains["forward"];
    assert_eq!(forward.rules.len(), 2);
    assert!(
        forward
            .rules
            .iter()
            .all(|rule| rule.contains(&Expr::FlowOffload {
                flowtable: FLOWTABLE.into()
            }))
    );

    let deny = effective("bbb", json!({"mode": "deny-all"}), &[]);
    let updated = ruleset.upsert_boxes(&[(link("bbb", 3), &deny)]);
    assert!(!updated.commands().iter().any(|c| matches!(
        c,
        Command::AddFlowtable { .. } | Command::DeleteFlowtableDevices { .. }
    )));
    let removed = ruleset.remove_box("aaa").expect("there");
    assert!(
        removed
            .commands()
            .contains(&Command::DeleteFlowtableDevices {
                name: FLOWTABLE.into(),
                devices: vec!["bf-aaa".into()],
            })
    );
    assert_eq!(
        ruleset.listing().expect("lowers").flowtables[FLOWTABLE].devices,
        ["bf-bbb", "eth0"].map(String::from).into()
    );

    let plain = model(&["eth0"], QueueBy::Expression)
        .listing()
        .expect("lowers");
    assert!(plain.flowtables.is_empty() && !plain.chains.contains_key("forward"));
}

/// An uplink that comes after the start joins the flowtable in place and
/// one that goes leaves the model (the kernel already dropped it), so the
/// watchdog's listing matches the kernel's either way.
#[test]
fn the_flowtable_follows_the_uplinks_there_are() {
    use crate::nft::Flowtable;
    let mut ruleset = Ruleset::new(TableConfig {
        flowtable_uplinks: Some(vec!["eth0".into()]),
        ..config()
    });
    let devices = |ruleset: &Ruleset| {
        ruleset.listing().expect("lowers").flowtables[FLOWTABLE]
            .devices
            .clone()
    };
    assert!(
        ruleset.follow_uplinks(vec!["eth0".into()]).is_none(),
        "unchanged"
    );

    let came = ruleset
        .follow_uplinks(vec!["eth0".into(), "eth1".into()])
        .expect("a change");
    assert_eq!(
        came.commands(),
        [Command::AddFlowtable {
            name: FLOWTABLE.into(),
            flowtable: Flowtable {
                priority: -10,
                devices: vec!["eth1".into()],
            },
        }]
    );
    assert_eq!(devices(&ruleset), ["eth0", "eth1"].map(String::from).into());

    let went = ruleset
        .follow_uplinks(vec!["eth1".into()])
        .expect("a change");
    assert!(
        went.is_empty(),
        "the kernel dropped it: {:?}",
        went.commands()
    );
    assert_eq!(devices(&ruleset), ["eth1"].map(String::from).into());

    let mut plain = model(&["eth0"], QueueBy::Expression);
    assert!(plain.follow_uplinks(vec![]).is_none(), "no flowtable");
}
