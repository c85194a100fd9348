"""The box seed's examples (box-network-policy.txt) in Python's idiom,
each checked by traffic from the box to the lab's internet."""

from __future__ import annotations

from conftest import reach

from boxfence import Box, Boxfence


def test_create_a_box_with_a_policy(client: Boxfence) -> None:
    with Box.create(
        runtime="node",
        network_policy={"mode": "custom", "allowedDomains": ["api.github.com", "registry.npmjs.org"]},
        client=client,
    ) as box:
        assert reach(box, "https://api.github.com/") == "200"
        assert reach(box, "http://registry.npmjs.org/") == "200"
        # Refused by the resolver: the name never resolves.
        assert reach(box, "https://evil.example/") == "err6"


def test_combine_domain_and_cidr_rules(client: Boxfence) -> None:
    with client.Box.create(
        runtime="node",
        network_policy={
            "mode": "custom",
            "allowedDomains": ["api.github.com", "*.githubusercontent.com"],
            "allowedCidrs": ["104.16.0.0/12"],
        },
    ) as box:
        assert reach(box, "https://raw.githubusercontent.com/") == "200"
        assert reach(box, "http://104.16.120.5/") == "200"
        assert reach(box, "https://github.com/") == "err6"


def test_read_update_and_switch_back(client: Boxfence) -> None:
    with client.Box.create(runtime="node") as box:
        assert box.network_policy == {"mode": "allow-all"}
        assert reach(box, "http://203.0.113.10/") == "200"
        box.update_network_policy({"mode": "deny-all"})
        assert box.network_policy == {"mode": "deny-all"}
        assert client.Box.get(box.id).network_policy == {"mode": "deny-all"}
        assert reach(box, "http://203.0.113.10/") != "200"
        box.update_network_policy({"mode": "allow-all"})
        assert box.get_network_policy() == {"mode": "allow-all"}
        assert reach(box, "http://203.0.113.10/") == "200"


def test_example_patterns(client: Boxfence) -> None:
    with client.Box.create(runtime="node") as box:
        box.update_network_policy({"mode": "custom", "allowedDomains": ["github.com", "*.github.com", "registry.npmjs.org"]})
        assert reach(box, "https://api.github.com/") == "200"
        assert reach(box, "https://github.com/") == "200"
        assert reach(box, "https://raw.githubusercontent.com/") == "err6"

        box.update_network_policy({"mode": "custom", "allowedCidrs": ["104.16.0.0/12"]})
        assert reach(box, "http://104.16.120.5/") == "200"
        assert reach(box, "http://198.51.100.10/") != "200"

        box.update_network_policy({"mode": "custom", "deniedCidrs": ["104.16.120.0/24"]})
        assert reach(box, "http://104.16.120.5/") != "200"
        assert reach(box, "http://104.17.0.5/") == "200"
