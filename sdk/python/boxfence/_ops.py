"""Every operation as a `Call`, shared by the sync and asyncio clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import quote

from ._routes import (
    App,
    AppliedPolicy,
    AppPolicy,
    BoxCreated,
    BoxGuest,
    BoxView,
    CreatedMachine,
    Deleted,
    Flow,
    FlowVerdict,
    Machine,
    NetworkPolicy,
    PolicyUpdated,
    StoredPolicy,
)
from ._transport import Call

Command = Union[str, list[str]]
"""A program and its arguments, or one string run by `sh -c`."""


@dataclass(frozen=True)
class ExecResult:
    """What a command did: exit status (128 + signal when killed), output."""

    exit_code: int
    stdout: str
    stderr: str


def _segment(value: str) -> str:
    return quote(value, safe="")


def _present(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _exec_body(command: Command, stdin: Optional[str], timeout: Optional[float]) -> dict[str, Any]:
    argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
    return _present(command=argv, stdin=stdin, timeout=timeout)


def _exec_result(answer: Any) -> ExecResult:
    # The Box API answers camelCase, the Machines API snake_case.
    code = answer["exitCode"] if "exitCode" in answer else answer["exit_code"]
    return ExecResult(exit_code=code, stdout=answer["stdout"], stderr=answer["stderr"])


def _flow_query(verdict: Optional[str], since: Optional[int], limit: Optional[int], follow: bool) -> dict[str, Any]:
    return {"verdict": verdict, "since": since, "limit": limit, "follow": "true" if follow else None}


# Boxes (Box API).


def box_path(box_id: str, rest: str = "") -> str:
    return f"/v1/boxes/{_segment(box_id)}{rest}"


def create_box(
    network_policy: Optional[NetworkPolicy],
    image: Optional[str],
    guest: Optional[BoxGuest],
    runtime: Optional[str],
    metadata: Optional[dict[str, str]],
    app: Optional[str],
) -> Call[BoxCreated]:
    body = _present(networkPolicy=network_policy, image=image, guest=guest, runtime=runtime, metadata=metadata, app=app)
    return Call("POST", "/v1/boxes", body)


def get_box(box_id: str) -> Call[BoxView]:
    return Call("GET", box_path(box_id))


def update_box_policy(box_id: str, policy: NetworkPolicy) -> Call[PolicyUpdated]:
    return Call("PUT", box_path(box_id, "/network-policy"), policy)


def exec_box(box_id: str, command: Command, stdin: Optional[str], timeout: Optional[float]) -> Call[ExecResult]:
    return Call("POST", box_path(box_id, "/exec"), _exec_body(command, stdin, timeout), convert=_exec_result)


def set_box_flow_log(box_id: str, log_allowed: bool) -> Call[Any]:
    return Call("PUT", box_path(box_id, "/flow-log"), {"logAllowed": log_allowed})


def box_flows(box_id: str, verdict: Optional[str], since: Optional[int], limit: Optional[int], follow: bool) -> Call[Any]:
    return Call("GET", box_path(box_id, "/flows"), query=_flow_query(verdict, since, limit, follow))


def delete_box(box_id: str) -> Call[Deleted]:
    return Call("DELETE", box_path(box_id))


# Apps, their policies and machines (Machines API).


def create_app(name: str) -> Call[App]:
    return Call("POST", "/v1/apps", {"app_name": name})


def list_apps() -> Call[list[App]]:
    return Call("GET", "/v1/apps")


def get_app(name: str) -> Call[App]:
    return Call("GET", f"/v1/apps/{_segment(name)}")


def delete_app(name: str, force: bool) -> Call[Deleted]:
    return Call("DELETE", f"/v1/apps/{_segment(name)}", query={"force": "true" if force else None})


def _policies(app: str, rest: str = "") -> str:
    return f"/v1/apps/{_segment(app)}/network_policies{rest}"


def apply_policy(app: str, policy: AppPolicy) -> Call[AppliedPolicy]:
    return Call("POST", _policies(app), policy)


def list_policies(app: str) -> Call[list[StoredPolicy]]:
    return Call("GET", _policies(app))


def get_policy(app: str, policy_id: str) -> Call[StoredPolicy]:
    return Call("GET", _policies(app, f"/{_segment(policy_id)}"))


def delete_policy(app: str, policy_id: str) -> Call[Deleted]:
    return Call("DELETE", _policies(app, f"/{_segment(policy_id)}"))


def _machine(app: str, machine_id: str, rest: str = "") -> str:
    return f"/v1/apps/{_segment(app)}/machines/{_segment(machine_id)}{rest}"


def create_machine(app: str, body: dict[str, Any]) -> Call[CreatedMachine]:
    return Call("POST", f"/v1/apps/{_segment(app)}/machines", body)


def list_machines(app: str) -> Call[list[Machine]]:
    return Call("GET", f"/v1/apps/{_segment(app)}/machines")


def get_machine(app: str, machine_id: str) -> Call[Machine]:
    return Call("GET", _machine(app, machine_id))


def delete_machine(app: str, machine_id: str) -> Call[Deleted]:
    return Call("DELETE", _machine(app, machine_id))


def exec_machine(
    app: str, machine_id: str, command: Command, stdin: Optional[str], timeout: Optional[float]
) -> Call[ExecResult]:
    body = _exec_body(command, stdin, timeout)
    return Call("POST", _machine(app, machine_id, "/exec"), body, convert=_exec_result)


def evaluate(app: str, machine_id: str, flow: Flow) -> Call[FlowVerdict]:
    return Call("POST", _machine(app, machine_id, "/network_policy/evaluate"), flow)


def machine_flows(app: str, machine_id: str, verdict: Optional[str], since: Optional[int], limit: Optional[int]) -> Call[Any]:
    return Call("GET", _machine(app, machine_id, "/flows"), query=_flow_query(verdict, since, limit, True))

