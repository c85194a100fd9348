"""A client of the lab daemon that crates/boxfence/tests/sdk_e2e.rs starts
(BOXFENCE_URL, BOXFENCE_TOKEN), and curl in a box."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Union

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boxfence import AsyncBox, Box, Boxfence  # noqa: E402

CURL = ["curl", "-sk", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"]


@pytest.fixture(scope="session")
def lab() -> tuple[str, str]:
    url, token = os.environ.get("BOXFENCE_URL"), os.environ.get("BOXFENCE_TOKEN")
    assert url and token, "BOXFENCE_URL and BOXFENCE_TOKEN name the lab daemon (run through sdk_e2e)"
    return url, token


@pytest.fixture
def client(lab: tuple[str, str]) -> Iterator[Boxfence]:
    with Boxfence(*lab) as client:
        yield client


def reach(box: Box, target: str) -> str:
    """What curl in `box` gets from `target`: the HTTP status, or `err<exit code>` without an answer."""
    out = box.exec([*CURL, target])
    return out.stdout if out.exit_code == 0 else f"err{out.exit_code}"


async def reach_async(box: AsyncBox, target: str) -> str:
    out = await box.exec([*CURL, target])
    return out.stdout if out.exit_code == 0 else f"err{out.exit_code}"


Anybox = Union[Box, AsyncBox]
