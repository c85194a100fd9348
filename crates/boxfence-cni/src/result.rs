//! The ADD result: the container's interface, its addresses with their
//! gateways, default routes, and the built-in resolver as its DNS, in
//! the shape of the configuration's version (1.x, or 0.3/0.4 where
//! addresses carry their IP version).

use serde_json::{Value, json};

use crate::error::CniError;

/// The result of an ADD for the machine `machine` (the API's view of
/// it), attached at `netns`, in the shape of `version`.
pub fn add_result(machine: &Value, netns: &str, version: &str) -> Result<Value, CniError> {
    let text = |value: &Value, what: &str| {
        value.as_str().map(str::to_owned).ok_or_else(|| {
            CniError::Decode(format!("the daemon's machine has no {what}: {machine}"))
        })
    };
    let attached = &machine["attached"];
    let ipv4 = text(&machine["addresses"]["ipv4"], "IPv4 address")?;
    let ipv6 = text(&machine["addresses"]["ipv6"], "IPv6 address")?;
    let gateway4 = text(&attached["gateways"]["ipv4"], "IPv4 gateway")?;
    let gateway6 = text(&attached["gateways"]["ipv6"], "IPv6 gateway")?;
    let legacy = version.starts_with("0.");
    let ip = |address: String, gateway: &str, family: &str| {
        let mut ip = json!({"address": address, "gateway": gateway, "interface": 0});
        if legacy {
            ip["version"] = json!(family);
        }
        ip
    };
    Ok(json!({
        "cniVersion": version,
        "interfaces": [{
            "name": text(&attached["ifname"], "interface name")?,
            "mac": text(&attached["mac"], "hardware address")?,
            "sandbox": netns,
        }],
        "ips": [
            ip(format!("{ipv4}/32"), &gateway4, "4"),
            ip(format!("{ipv6}/128"), &gateway6, "6"),
        ],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": gateway4},
            {"dst": "::/0", "gw": gateway6},
        ],
        "dns": {"nameservers": [gateway4, gateway6]},
    }))
}

/// The addresses (`a.b.c.d/nn`) a result lists.
pub fn result_addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Value {
        json!({"addresses": {"ipv4": "10.200.0.2", "ipv6": "fd00:b0f::2"},
               "attached": {"ifname": "eth0", "mac": "02:bf:0a:c8:00:02",
                            "gateways": {"ipv4": "10.200.0.1", "ipv6": "fd00:b0f::1"}}})
    }

    #[test]
    fn results_take_the_configurations_shape() {
        let current = add_result(&machine(), "/run/netns/x", "1.0.0").expect("result");
        assert_eq!(current["ips"][0]["address"], "10.200.0.2/32");
        assert!(current["ips"][0].get("version").is_none());
        assert_eq!(current["dns"]["nameservers"][0], "10.200.0.1");
        assert_eq!(current["interfaces"][0]["sandbox"], "/run/netns/x");
        let legacy = add_result(&machine(), "/run/netns/x", "0.4.0").expect("result");
        assert_eq!(legacy["ips"][1]["version"], "6");
        assert_eq!(
            result_addresses(&legacy),
            vec!["10.200.0.2/32".to_owned(), "fd00:b0f::2/128".to_owned()]
        );
    }
}
