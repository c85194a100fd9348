"""Boxes in the Box API's shape. A box is a context manager: leaving the
`with` block deletes it (an ephemeral box)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from . import _ops as ops
from ._errors import NotFoundError
from ._flow import FlowEvent
from ._routes import BoxGuest, BoxView, Deleted, Diagnostic, NetworkPolicy
from ._ops import Command, ExecResult

if TYPE_CHECKING:
    from ._client import AsyncBoxfence, Boxfence

Verdict = Optional[Literal["allow", "deny"]]


class _BoxState:
    """What both kinds of box hold: the id and the view last read."""

    def __init__(self, view: Union[BoxView, Any], warnings: Optional[list[Diagnostic]] = None) -> None:
        self._view: BoxView = {key: value for key, value in view.items() if key != "warnings"}  # type: ignore[assignment]
        self.id: str = view["id"]
        self.warnings: list[Diagnostic] = warnings or []

    @property
    def network_policy(self) -> NetworkPolicy:
        """The policy as last read or set (`get_network_policy()` asks the daemon)."""
        return self._view["networkPolicy"]

    @property
    def view(self) -> BoxView:
        """The box as last read: app, addresses, metadata, image, times."""
        return self._view

    def _policy_set(self, answer: Any) -> NetworkPolicy:
        self._view["networkPolicy"] = answer["networkPolicy"]
        self.warnings = answer["warnings"]
        return self._view["networkPolicy"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, network_policy={self.network_policy!r})"


class Box(_BoxState):
    """A box: a sandboxed machine whose outbound traffic its policy governs (sync client)."""

    #: The client of `create` and `get` without one (`client.Box` sets it); else the environment's.
    default_client: Optional[Boxfence] = None

    def __init__(self, client: Boxfence, view: Any) -> None:
        super().__init__(view, view.get("warnings"))
        self._client = client

    @classmethod
    def create(
        cls,
        *,
        network_policy: Optional[NetworkPolicy] = None,
        image: Optional[str] = None,
        guest: Optional[BoxGuest] = None,
        runtime: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        app: Optional[str] = None,
        client: Optional[Boxfence] = None,
    ) -> Box:
        """Creates a box; its policy is enforced before this returns. Default client: BOXFENCE_URL, BOXFENCE_TOKEN."""
        client = client or cls._default()
        call = ops.create_box(network_policy, image, guest, runtime, metadata, app)
        return cls(client, client.transport.run(call))

    @classmethod
    def get(cls, box_id: str, *, client: Optional[Boxfence] = None) -> Box:
        client = client or cls._default()
        return cls(client, client.transport.run(ops.get_box(box_id)))

    @classmethod
    def _default(cls) -> Boxfence:
        from ._client import Boxfence

        return cls.default_client or Boxfence()

    def get_network_policy(self) -> NetworkPolicy:
        """Reads the box again and returns its policy."""
        self._view = self._client.transport.run(ops.get_box(self.id))
        return self.network_policy

    def update_network_policy(self, policy: NetworkPolicy) -> NetworkPolicy:
        """Replaces the policy; in force (flows it denies cut) before this returns."""
        return self._policy_set(self._client.transport.run(ops.update_box_policy(self.id, policy)))

    def exec(self, command: Command, *, stdin: Optional[str] = None, timeout: Optional[float] = None) -> ExecResult:
        """Runs a command in the box: `["curl", "-sI", url]`, or a string for `sh -c`."""
        return self._client.transport.run(ops.exec_box(self.id, command, stdin, timeout))

    def set_flow_log(self, *, log_allowed: bool) -> None:
        """Logs allowed new connections too (off by default; until the daemon restarts)."""
        self._client.transport.run(ops.set_box_flow_log(self.id, log_allowed))

    def flow_history(self, *, verdict: Verdict = None, since: Optional[int] = None, limit: Optional[int] = None) -> list[FlowEvent]:
        """Past flow events, oldest first."""
        return self._client.transport.run(ops.box_flows(self.id, verdict, since, limit, follow=False))

    def flows(self, *, verdict: Verdict = None, since: Optional[int] = None, limit: Optional[int] = None) -> Iterator[FlowEvent]:
        """The live flow event stream, recent history first; stop iterating (or `close()` it) to hang up."""
        return self._client.transport.events(ops.box_flows(self.id, verdict, since, limit, follow=True))

    def delete(self) -> Deleted:
        """Deletes the box: its processes, namespace and rules."""
        return self._client.transport.run(ops.delete_box(self.id))

    def __enter__(self) -> Box:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        try:
            self.delete()
        except NotFoundError:
            pass


class AsyncBox(_BoxState):
    """A box of the asyncio client; `async with` deletes it at the block's end."""

    #: The client of `create` and `get` without one (`client.Box` sets it); else the environment's.
    default_client: Optional[AsyncBoxfence] = None

    def __init__(self, client: AsyncBoxfence, view: Any) -> None:
        super().__init__(view, view.get("warnings"))
        self._client = client

    @classmethod
    async def create(
        cls,
        *,
        network_policy: Optional[NetworkPolicy] = None,
        image: Optional[str] = None,
        guest: Optional[BoxGuest] = None,
        runtime: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        app: Optional[str] = None,
        client: Optional[AsyncBoxfence] = None,
    ) -> AsyncBox:
        client = client or cls._default()
        call = ops.create_box(network_policy, image, guest, runtime, metadata, app)
        return cls(client, await client.transport.run(call))

    @classmethod
    async def get(cls, box_id: str, *, client: Optional[AsyncBoxfence] = None) -> AsyncBox:
        client = client or cls._default()
        return cls(client, await client.transport.run(ops.get_box(box_id)))

    @classmethod
    def _default(cls) -> AsyncBoxfence:
        from ._client import AsyncBoxfence

        return cls.default_client or AsyncBoxfence()

    async def get_network_policy(self) -> NetworkPolicy:
        self._view = await self._client.transport.run(ops.get_box(self.id))
        return self.network_policy

    async def update_network_policy(self, policy: NetworkPolicy) -> NetworkPolicy:
        return self._policy_set(await self._client.transport.run(ops.update_box_policy(self.id, policy)))

    async def exec(self, command: Command, *, stdin: Optional[str] = None, timeout: Optional[float] = None) -> ExecResult:
        return await self._client.transport.run(ops.exec_box(self.id, command, stdin, timeout))

    async def set_flow_log(self, *, log_allowed: bool) -> None:
        await self._client.transport.run(ops.set_box_flow_log(self.id, log_allowed))

    async def flow_history(
        self, *, verdict: Verdict = None, since: Optional[int] = None, limit: Optional[int] = None
    ) -> list[FlowEvent]:
        return await self._client.transport.run(ops.box_flows(self.id, verdict, since, limit, follow=False))

    def flows(self, *, verdict: Verdict = None, since: Optional[int] = None, limit: Optional[int] = None) -> AsyncIterator[FlowEvent]:
        return self._client.transport.events(ops.box_flows(self.id, verdict, since, limit, follow=True))

    async def delete(self) -> Deleted:
        return await self._client.transport.run(ops.delete_box(self.id))

    async def __aenter__(self) -> AsyncBox:
        return self

    async def __aexit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]
    ) -> None:
        try:
            await self.delete()
        except NotFoundError:
            pass
