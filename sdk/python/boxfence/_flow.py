"""The flow log event (not yet a schema of the document)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Literal, TypedDict

if sys.version_info >= (3, 11):
    from typing import NotRequired
elif TYPE_CHECKING:
    from typing_extensions import NotRequired


class FlowEvent(TypedDict):
    """A denied (or, when asked, allowed) connection, a refused DNS query, or a count of suppressed events."""

    time_ms: int
    app: NotRequired[str]
    machine_id: str
    kind: Literal["connection", "dns_query", "suppressed"]
    verdict: Literal["allow", "deny"]
    direction: NotRequired[Literal["ingress", "egress"]]
    protocol: NotRequired[str]
    src: NotRequired[str]
    sport: NotRequired[int]
    dst: NotRequired[str]
    dport: NotRequired[int]
    domain: NotRequired[str]
    claimed: NotRequired[str]
    layer: NotRequired[str]
    reason: str
    policy_id: NotRequired[str]
    policy_name: NotRequired[str]
    rule_index: NotRequired[int]
    suppressed: NotRequired[int]
