"""The clients: one daemon, its boxes, apps, app policies and machines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Optional

from . import _ops as ops
from ._box import AsyncBox, Box, Verdict
from ._flow import FlowEvent
from ._routes import (
    App,
    AppliedPolicy,
    AppPolicy,
    CreatedMachine,
    Deleted,
    Flow,
    FlowVerdict,
    Machine,
    StoredPolicy,
)
from ._ops import Command, ExecResult
from ._transport import AsyncTransport, Transport, Verify


class Boxfence:
    """A client of one daemon: `Boxfence(url, token)`, else BOXFENCE_URL and BOXFENCE_TOKEN.
    `verify` is httpx's: False, or a CA bundle's path, for an https URL with its own certificate.
    `client.Box` is `Box` with this client as its default."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *, verify: Verify = True) -> None:
        self.transport = Transport(url, token, verify=verify)
        # `client.Box.create(...)`: Box with this client as its default.
        self.Box: type[Box] = type("Box", (Box,), {"default_client": self})
        self.apps = Apps(self.transport)
        self.network_policies = NetworkPolicies(self.transport)
        self.machines = Machines(self.transport)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Boxfence:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        self.close()


class Apps:
    """`/v1/apps`."""

    def __init__(self, transport: Transport) -> None:
        self._run = transport.run

    def create(self, name: str) -> App:
        return self._run(ops.create_app(name))

    def list(self) -> list[App]:
        return self._run(ops.list_apps())

    def get(self, name: str) -> App:
        return self._run(ops.get_app(name))

    def delete(self, name: str, *, force: bool = False) -> Deleted:
        """`force` deletes its machines too (else a ConflictError while it has some)."""
        return self._run(ops.delete_app(name, force))


class NetworkPolicies:
    """`/v1/apps/{app}/network_policies`."""

    def __init__(self, transport: Transport) -> None:
        self._run = transport.run

    def apply(self, app: str, policy: AppPolicy) -> AppliedPolicy:
        """Creates or updates (by `id`, else by `name`); enforced before this returns."""
        return self._run(ops.apply_policy(app, policy))

    def list(self, app: str) -> list[StoredPolicy]:
        return self._run(ops.list_policies(app))

    def get(self, app: str, policy_id: str) -> StoredPolicy:
        return self._run(ops.get_policy(app, policy_id))

    def delete(self, app: str, policy_id: str) -> Deleted:
        return self._run(ops.delete_policy(app, policy_id))


class Machines:
    """`/v1/apps/{app}/machines`."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def create(self, app: str, **body: Any) -> CreatedMachine:
        """Keyword arguments are the request's fields: `config`, `network_policy`, `name`, `attach`."""
        return self._transport.run(ops.create_machine(app, body))

    def list(self, app: str) -> list[Machine]:
        return self._transport.run(ops.list_machines(app))

    def get(self, app: str, machine_id: str) -> Machine:
        return self._transport.run(ops.get_machine(app, machine_id))

    def delete(self, app: str, machine_id: str) -> Deleted:
        return self._transport.run(ops.delete_machine(app, machine_id))

    def exec(self, app: str, machine_id: str, command: Command, *, stdin: Optional[str] = None, timeout: Optional[float] = None) -> ExecResult:
        return self._transport.run(ops.exec_machine(app, machine_id, command, stdin, timeout))

    def evaluate(self, app: str, machine_id: str, flow: Flow) -> FlowVerdict:
        """Would this flow be allowed, and why? Nothing is sent."""
        return self._transport.run(ops.evaluate(app, machine_id, flow))

    def flows(
        self, app: str, machine_id: str, *, verdict: Verdict = None, since: Optional[int] = None, limit: Optional[int] = None
    ) -> Iterator[FlowEvent]:
        return self._transport.events(ops.machine_flows(app, machine_id, verdict, since, limit))


class AsyncBoxfence:
    """The asyncio client: the same surface, each call awaited; `async with` closes it."""

    def __init__(self, url: Optional[str] = None, token: Optional[str] = None, *, verify: Verify = True) -> None:
        self.transport = AsyncTransport(url, token, verify=verify)
        self.Box: type[AsyncBox] = type("AsyncBox", (AsyncBox,), {"default_client": self})
        self.apps = AsyncApps(self.transport)
        self.network_policies = AsyncNetworkPolicies(self.transport)
        self.machines = AsyncMachines(self.transport)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> AsyncBoxfence:
        return self

    async def __aexit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]
    ) -> None:
        await self.aclose()


class AsyncApps:
    def __init__(self, transport: AsyncTransport) -> None:
        self._run = transport.run

    async def create(self, name: str) -> App:
        return await self._run(ops.create_app(name))

    async def list(self) -> list[App]:
        return await self._run(ops.list_apps())

    async def get(self, name: str) -> App:
        return await self._run(ops.get_app(name))

    async def delete(self, name: str, *, force: bool = False) -> Deleted:
        return await self._run(ops.delete_app(name, force))


class AsyncNetworkPolicies:
    def __init__(self, transport: AsyncTransport) -> None:
        self._run = transport.run

    async def apply(self, app: str, policy: AppPolicy) -> AppliedPolicy:
        return await self._run(ops.apply_policy(app, policy))

    async def list(self, app: str) -> list[StoredPolicy]:
        return await self._run(ops.list_policies(app))

    async def get(self, app: str, policy_id: str) -> StoredPolicy:
        return await self._run(ops.get_policy(app, policy_id))

    async def delete(self, app: str, policy_id: str) -> Deleted:
        return await self._run(ops.delete_policy(app, policy_id))


class AsyncMachines:
    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    async def create(self, app: str, **body: Any) -> CreatedMachine:
        return await self._transport.run(ops.create_machine(app, body))

    async def list(self, app: str) -> list[Machine]:
        return await self._transport.run(ops.list_machines(app))

    async def get(self, app: str, machine_id: str) -> Machine:
        return await self._transport.run(ops.get_machine(app, machine_id))

    async def delete(self, app: str, machine_id: str) -> Deleted:
        return await self._transport.run(ops.delete_machine(app, machine_id))

    async def exec(
        self, app: str, machine_id: str, command: Command, *, stdin: Optional[str] = None, timeout: Optional[float] = None
    ) -> ExecResult:
        return await self._transport.run(ops.exec_machine(app, machine_id, command, stdin, timeout))

    async def evaluate(self, app: str, machine_id: str, flow: Flow) -> FlowVerdict:
        return await self._transport.run(ops.evaluate(app, machine_id, flow))

    def flows(
        self, app: str, machine_id: str, *, verdict: Verdict = None, since: Optional[int] = None, limit: Optional[int] = None
    ) -> AsyncIterator[FlowEvent]:
        return self._transport.events(ops.machine_flows(app, machine_id, verdict, since, limit))
