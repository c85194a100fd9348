"""Exceptions with paths, the live flow stream (sync and asyncio),
ephemeral boxes, and the Machines API's resources."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from conftest import reach, reach_async

from boxfence import AsyncBoxfence, Boxfence, BoxfenceError, NotFoundError, ValidationError


def test_bad_input_raises_validation_errors_with_paths(client: Boxfence) -> None:
    with pytest.raises(ValidationError) as caught:
        client.Box.create(network_policy={"mode": "custom", "allowedCidrs": ["not-a-cidr"], "allowedDomains": ["*bad*"]})
    assert caught.value.status == 400
    assert caught.value.code == "invalid_request"
    assert sorted(caught.value.paths) == ["networkPolicy.allowedCidrs[0]", "networkPolicy.allowedDomains[0]"]

    with client.Box.create(network_policy={"mode": "deny-all"}) as box:
        bad: Any = {"mode": "block"}
        with pytest.raises(ValidationError) as caught:
            box.update_network_policy(bad)
        assert caught.value.paths == ["mode"]
        assert box.get_network_policy() == {"mode": "deny-all"}

    with pytest.raises(NotFoundError):
        client.Box.get("nosuchbox000")


def test_wrong_token_and_no_daemon(lab: tuple[str, str]) -> None:
    with Boxfence(lab[0], "not-the-token") as stranger, pytest.raises(BoxfenceError) as caught:
        stranger.apps.list()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    with Boxfence("http://127.0.0.1:9", "x") as nowhere, pytest.raises(BoxfenceError) as caught:
        nowhere.apps.list()
    assert (caught.value.status, caught.value.code) == (0, "connection_failed")


def test_flow_stream_delivers_a_denial(client: Boxfence) -> None:
    with client.Box.create(network_policy={"mode": "custom", "allowedCidrs": ["198.51.100.0/24"]}) as box:
        assert reach(box, "http://198.51.100.10/") == "200"
        assert reach(box, "http://203.0.113.10/") != "200"
        # History first: the denial above is in the stream.
        stream = box.flows(verdict="deny")
        event = next(iter(stream))
        stream.close()  # type: ignore[attr-defined]
        assert (event["verdict"], event["machine_id"], event["dst"], event["dport"]) == ("deny", box.id, "203.0.113.10", 80)
        assert event["layer"] == "box_policy"
        assert event["reason"]
        assert [e["dst"] for e in box.flow_history(verdict="deny")] == ["203.0.113.10"]


def test_asyncio_client_live_denial_and_ephemeral_box(lab: tuple[str, str]) -> None:
    async def scenario() -> str:
        async with AsyncBoxfence(*lab) as client:
            async with await client.Box.create(network_policy={"mode": "deny-all"}) as box:
                stream = box.flows(verdict="deny")
                # Subscribe first, then be denied: the event arrives live.
                first = asyncio.ensure_future(stream.__anext__())
                await asyncio.sleep(0.3)
                assert await reach_async(box, "http://198.51.100.10/") != "200"
                event = await asyncio.wait_for(first, 10)
                await stream.aclose()  # type: ignore[attr-defined]
                assert (event["verdict"], event["dst"], event["layer"]) == ("deny", "198.51.100.10", "box_policy")
                box_id = box.id
            with pytest.raises(NotFoundError):
                await client.Box.get(box_id)
            return box_id

    assert asyncio.run(scenario())


def test_ephemeral_box_is_gone_after_its_block(client: Boxfence) -> None:
    with client.Box.create(network_policy={"mode": "deny-all"}) as box:
        assert client.Box.get(box.id).id == box.id
    with pytest.raises(NotFoundError):
        client.Box.get(box.id)

    with pytest.raises(RuntimeError, match="user's code failed"):
        with client.Box.create() as box:
            raise RuntimeError("the user's code failed")
    with pytest.raises(NotFoundError):
        client.Box.get(box.id)


def test_apps_policies_and_machines(client: Boxfence) -> None:
    app = f"sdk-py-{os.getpid()}"
    assert client.apps.create(app)["app_name"] == app
    try:
        machine = client.machines.create(app, config={"metadata": {"role": "web"}})["id"]
        assert [m["id"] for m in client.machines.list(app)] == [machine]
        assert client.machines.get(app, machine)["config"]["metadata"] == {"role": "web"}

        def http() -> str:
            return client.machines.exec(app, machine, "curl -s -m 5 -o /dev/null -w '%{http_code}' http://198.51.100.10:8080/").stdout

        assert http() == "200"
        applied = client.network_policies.apply(
            app,
            {
                "name": "specific-egress",
                "selector": {"all": True},
                "rules": [
                    {"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 443}]}
                ],
            },
        )
        policy_id = applied["id"]
        assert policy_id
        assert [p["id"] for p in client.network_policies.list(app)] == [policy_id]
        assert client.network_policies.get(app, policy_id)["name"] == "specific-egress"
        assert http() != "200"
        denials = client.machines.flows(app, machine, verdict="deny")
        denial = next(iter(denials))
        denials.close()  # type: ignore[attr-defined]
        assert (denial["dport"], denial["layer"]) == (8080, "app_policy")
        verdict = client.machines.evaluate(app, machine, {"direction": "egress", "protocol": "tcp", "ip": "198.51.100.10", "port": 8080})
        assert (verdict["verdict"], verdict["layer"]) == ("deny", "app_policy")

        client.network_policies.delete(app, policy_id)
        assert client.network_policies.list(app) == []
        assert http() == "200"

        with pytest.raises(ValidationError) as caught:
            client.network_policies.apply(
                app,
                {"name": "bad", "selector": {"all": True}, "rules": [{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": 70000}]}]},
            )
        assert "rules[0].ports[0].port" in caught.value.paths
        client.machines.delete(app, machine)
        assert client.machines.list(app) == []
    finally:
        client.apps.delete(app, force=True)

