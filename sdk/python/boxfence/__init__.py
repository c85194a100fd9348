"""The boxfence SDK: network policies for sandboxed boxes, over the
daemon's HTTP API. `Boxfence` is the sync client, `AsyncBoxfence` the
asyncio one; `Box.create(network_policy=...)` as in the Box API."""

from ._box import AsyncBox, Box
from ._client import AsyncBoxfence, Boxfence
from ._errors import (
    AuthError,
    BoxfenceError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._flow import FlowEvent
from ._routes import App, AppPolicy, BoxGuest, BoxView, Deleted, Diagnostic, Flow, FlowVerdict, Machine, NetworkPolicy, StoredPolicy
from ._ops import Command, ExecResult

__all__ = [
    "App",
    "AppPolicy",
    "BoxGuest",
    "BoxView",
    "Deleted",
    "Diagnostic",
    "Flow",
    "FlowVerdict",
    "Machine",
    "StoredPolicy",
    "AsyncBox",
    "AsyncBoxfence",
    "AuthError",
    "Box",
    "Boxfence",
    "BoxfenceError",
    "Command",
    "ConflictError",
    "ExecResult",
    "FlowEvent",
    "NetworkPolicy",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "ValidationError",
]
