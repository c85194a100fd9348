"""An https URL: the lab daemon behind nginx terminating TLS with a
certificate made for the run, trusted with `verify=`; refused without."""

from __future__ import annotations

import asyncio
import os

import pytest
from conftest import reach

from boxfence import AsyncBoxfence, Boxfence, BoxfenceError, ValidationError


@pytest.fixture
def tls(lab: tuple[str, str]) -> tuple[str, str, str]:
    url, ca = os.environ.get("BOXFENCE_TLS_URL", ""), os.environ.get("BOXFENCE_TLS_CA", "")
    assert url.startswith("https://") and ca, "BOXFENCE_TLS_URL and BOXFENCE_TLS_CA name the lab's TLS proxy"
    return url, lab[1], ca


def test_sync_client_over_https(tls: tuple[str, str, str]) -> None:
    url, token, ca = tls
    with Boxfence(url, token, verify=ca) as client:
        assert isinstance(client.apps.list(), list)
        with pytest.raises(ValidationError) as caught:
            client.Box.create(network_policy={"mode": "custom", "allowedCidrs": ["10.0.0.0/33"]})
        assert caught.value.paths == ["networkPolicy.allowedCidrs[0]"]
        with client.Box.create(network_policy={"mode": "deny-all"}) as box:
            assert reach(box, "http://198.51.100.10/") != "200"
            stream = box.flows(verdict="deny")
            event = next(iter(stream))
            stream.close()  # type: ignore[attr-defined]
            assert event["dst"] == "198.51.100.10"


def test_certificate_is_checked(tls: tuple[str, str, str]) -> None:
    url, token, _ = tls
    with Boxfence(url, token) as client, pytest.raises(BoxfenceError) as caught:
        client.apps.list()
    assert caught.value.code == "connection_failed"
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message


def test_asyncio_client_over_https(tls: tuple[str, str, str]) -> None:
    url, token, ca = tls

    async def apps() -> object:
        async with AsyncBoxfence(url, token, verify=ca) as client:
            return await client.apps.list()

    assert isinstance(asyncio.run(apps()), list)
