//! Box links against a real kernel: a scratch namespace plays the host,
//! so the veth pairs and box namespaces made here reach nothing else.

use serde_json::Value;

use super::*;
use crate::testing::ScratchNetns;

fn config(netns_prefix: String) -> LinkConfig {
    LinkConfig {
        netns_prefix,
        ifname_prefix: "bfx".into(),
        gateway4: "10.203.0.1".parse().expect("ip"),
        gateway6: "fd00:bf::1".parse().expect("ip"),
    }
}

fn link(id: &str) -> BoxLink {
    BoxLink {
        id: id.into(),
        ifname: format!("bfx{id}"),
        ipv4: "10.203.0.2".parse().expect("ip"),
        ipv6: "fd00:bf::2".parse().expect("ip"),
        zone: 1,
    }
}

/// Removes box namespaces on drop, even when a test fails midway (the
/// scratch namespace takes the veth pairs with it).
struct Boxes(Vec<String>);

impl Drop for Boxes {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = netns::remove(name);
        }
    }
}

/// What `create` did before it spoke rtnetlink: `ip netns add`, two `ip`
/// batches and a sysctl. The reference the new way must match.
fn create_with_ip(config: &LinkConfig, host: &HostNetns, link: &BoxLink) {
    let netns = config.netns(&link.id);
    let (gw4, gw6) = (config.gateway4, config.gateway6);
    let (ip4, ip6, ifname) = (link.ipv4, link.ipv6, &link.ifname);
    host.run("ip", &["netns", "add", &netns], None)
        .expect("ip netns add");
    let host_side = format!(
        "link add {ifname} type veth peer name eth0 netns {netns}\n\
         addr add {gw4}/32 dev {ifname}\n\
         addr add {gw6}/128 dev {ifname} nodad\n\
         link set {ifname} up\n\
         route add {ip4}/32 dev {ifname}\n\
         route add {ip6}/128 dev {ifname}\n"
    );
    host.run("ip", &["-b", "-"], Some(&host_side))
        .expect("host side");
    let box_side = format!(
        "link set lo up\n\
         link set eth0 addrgenmode none\n\
         link set eth0 up\n\
         addr add {ip4}/32 dev eth0\n\
         addr add {ip6}/128 dev eth0 nodad\n\
         route add {gw4}/32 dev eth0\n\
         route add default via {gw4} dev eth0 src {ip4}\n\
         route add {gw6}/128 dev eth0\n\
         route add default via {gw6} dev eth0 src {ip6}\n"
    );
    host.run("ip", &["-n", &netns, "-b", "-"], Some(&box_side))
        .expect("box side");
    host.sysctl(&format!("net/ipv4/conf/{ifname}/src_valid_mark"), "1")
        .expect("sysctl");
}

/// Keys whose values differ between two equal setups: indexes, MAC
/// addresses, lifetimes, and states that follow timers (DAD, linkwatch).
const VOLATILE: [&str; 9] = [
    "ifindex",
    "link_index",
    "link_netnsid",
    "address",
    "broadcast",
    "operstate",
    "valid_life_time",
    "preferred_life_time",
    "tentative",
];

/// `ip -j <args>` in `host`, without what [`VOLATILE`] names and without
/// the `NO-CARRIER` flag (it goes once linkwatch runs, up to a second
/// later); link-local addresses (made from the random MAC), and their
/// local routes, become `fe80::`.
fn ip_json(host: &HostNetns, args: &[&str]) -> Value {
    let out = host.run("ip", args, None).expect("ip -j");
    let mut json: Value = serde_json::from_str(&out).expect("ip json");
    scrub(&mut json);
    json
}

fn scrub(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for key in VOLATILE {
                map.remove(key);
            }
            // The host side's link-local address, and its local route
            // (`dst`, without a prefix length), carry the random MAC.
            for key in ["local", "dst"] {
                if let Some(Value::String(addr)) = map.get_mut(key)
                    && addr.starts_with("fe80:")
                    && !addr.contains('/')
                {
                    *addr = "fe80::".into();
                }
            }
            if let Some(Value::Array(flags)) = map.get_mut("flags") {
                flags.retain(|flag| flag != "NO-CARRIER");
            }
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// Waits up to 30 s until the host side's link-local address has passed
/// duplicate address detection, which is when its local route appears:
/// natively both boxes are snapshotted long before (about a second), but
/// in an emulated VM one box's address had passed it and the other's not.
fn wait_for_dad(host: &HostNetns, ifname: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = host
            .run("ip", &["-j", "-6", "addr", "show", "dev", ifname], None)
            .expect("ip -j addr");
        let json: Value = serde_json::from_str(&out).expect("ip json");
        let addresses = json[0]["addr_info"].as_array().cloned().unwrap_or_default();
        let link_local_done = addresses.iter().any(|a| {
            a["local"].as_str().is_some_and(|l| l.starts_with("fe80:"))
                && a.get("tentative").is_none()
        });
        if link_local_done {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ifname}: no link-local address out of DAD after 30 s: {out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Everything `ip` shows of one box: the host side's link, addresses and
/// routes, the box namespace's, the host side's `src_valid_mark` and
/// eth0's `addr_gen_mode`.
fn snapshot(config: &LinkConfig, host: &HostNetns, link: &BoxLink) -> Vec<Value> {
    let netns = config.netns(&link.id);
    let mut views = Vec::new();
    for (prefix, dev) in [
        (vec![], vec!["dev", &link.ifname]),
        (vec!["-n", &netns], vec![]),
    ] {
        let ip = |args: &[&str]| {
            let all: Vec<&str> = prefix.iter().copied().chain(args.iter().copied()).collect();
            ip_json(host, &all)
        };
        let addr: Vec<&str> = ["-j", "-d", "addr", "show"]
            .into_iter()
            .chain(dev.iter().copied())
            .collect();
        views.push(ip(&addr));
        views.push(ip(&["-j", "-4", "route", "show", "table", "all"]));
        views.push(ip(&["-j", "-6", "route", "show", "table", "all"]));
    }
    let key = format!("net.ipv4.conf.{}.src_valid_mark", link.ifname);
    let mark = host.run("sysctl", &["-n", &key], None).expect("sysctl");
    views.push(Value::String(mark.trim().to_owned()));
    let key = "net.ipv6.conf.eth0.addr_gen_mode";
    let mode = host
        .run("ip", &["netns", "exec", &netns, "sysctl", "-n", key], None)
        .expect("sysctl in the box");
    views.push(Value::String(mode.trim().to_owned()));
    views
}

#[test]
fn create_matches_the_ip_batches_and_delete_leaves_nothing() {
    let test = "create_matches_the_ip_batches_and_delete_leaves_nothing";
    let (Some(old_host), Some(new_host)) = (ScratchNetns::new(test), ScratchNetns::new(test))
    else {
        return;
    };
    let prefix = format!("bft{}l", std::process::id());
    let (old, new) = (config(format!("{prefix}o-")), config(format!("{prefix}n-")));
    let link = link("1");
    let _boxes = Boxes(vec![old.netns(&link.id), new.netns(&link.id)]);
    let (old_host, new_host) = (old_host.host(), new_host.host());

    create_with_ip(&old, &old_host, &link);
    new.create(&new_host, &link).expect("create");
    wait_for_dad(&old_host, &link.ifname);
    wait_for_dad(&new_host, &link.ifname);

    let expected = snapshot(&old, &old_host, &link);
    let got = snapshot(&new, &new_host, &link);
    assert_eq!(got, expected);
    // src_valid_mark on, addr_gen_mode none (1).
    let one = Value::String("1".into());
    assert_eq!(expected[6..], [one.clone(), one]);

    // Boxes made by `ip` (by an earlier version) go the same way.
    for (config, host) in [(&old, &old_host), (&new, &new_host)] {
        config.delete(host, &link).expect("delete");
        assert!(!config.exists(&link.id));
        let links = ip_json(host, &["-j", "link"]);
        assert_eq!(links.as_array().map(Vec::len), Some(1), "only lo: {links}");
        // Deleting again finds everything gone, which is fine.
        config.delete(host, &link).expect("delete again");
    }
}

#[test]
fn a_taken_ifname_fails_the_create_and_stays() {
    let test = "a_taken_ifname_fails_the_create_and_stays";
    let Some(scratch) = ScratchNetns::new(test) else {
        return;
    };
    let host = scratch.host();
    let config = config(format!("bft{}t-", std::process::id()));
    let link = link("2");
    let _boxes = Boxes(vec![config.netns(&link.id)]);
    let taken = [
        "link",
        "add",
        &link.ifname,
        "type",
        "veth",
        "peer",
        "name",
        "taken",
    ];
    host.run("ip", &taken, None).expect("veth");

    let error = config.create(&host, &link).expect_err("the name is taken");
    assert!(
        error.to_string().contains("`link add bfx2 type veth"),
        "{error}"
    );
    assert!(!config.exists(&link.id));
    host.run("ip", &["link", "show", &link.ifname], None)
        .expect("the link that was there stays");
}

#[test]
fn a_failed_step_after_the_link_removes_it_all() {
    let test = "a_failed_step_after_the_link_removes_it_all";
    let Some(scratch) = ScratchNetns::new(test) else {
        return;
    };
    let host = scratch.host();
    let config = config(format!("bft{}f-", std::process::id()));
    let link = link("3");
    let _boxes = Boxes(vec![config.netns(&link.id)]);
    // A route to the box's address already there: the host side's
    // `route add` is refused after the veth pair exists.
    let batch = format!(
        "link add other type veth peer name otherp\nlink set other up\n\
         route add {}/32 dev other\n",
        link.ipv4
    );
    host.run("ip", &["-b", "-"], Some(&batch)).expect("route");

    let error = config.create(&host, &link).expect_err("the route is taken");
    let text = error.to_string();
    assert!(
        text.contains("`route add 10.203.0.2/32 dev bfx3` failed: EEXIST"),
        "{text}"
    );
    assert!(!config.exists(&link.id));
    let links = ip_json(&host, &["-j", "link"]);
    assert_eq!(
        links.as_array().map(Vec::len),
        Some(3),
        "lo, other, otherp: {links}"
    );
}
