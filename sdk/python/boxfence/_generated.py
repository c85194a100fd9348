"""The API's wire types, generated from openapi.json by
generate_types.py (sdk/generate.sh). Do not edit."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Literal, Optional, TypedDict, Union

if sys.version_info >= (3, 11):
    from typing import NotRequired
elif TYPE_CHECKING:
    from typing_extensions import NotRequired


class Addresses(TypedDict):
    """A machine's addresses."""

    ipv4: str
    ipv6: str


class AppInfo(TypedDict):
    """An app."""

    app_name: str
    created_at: str


class AppPolicy(TypedDict):
    """Allow rules for the machines of an app that the selector matches."""

    id: NotRequired[Optional[str]]
    name: str
    rules: list[Rule]
    selector: Selector


class Applied_BoxInfo(TypedDict):
    """An answer that carries warnings: entries accepted but without effect"""

    addresses: Addresses
    app: str
    createdAt: str
    guest: NotRequired[Union[None, BoxGuest]]
    id: str
    image: NotRequired[Optional[str]]
    metadata: dict[str, str]
    name: str
    networkPolicy: NetworkPolicy
    runtime: NotRequired[Optional[str]]
    updatedAt: str
    warnings: NotRequired[list[Diagnostic]]


class Applied_MachineInfo(TypedDict):
    """An answer that carries warnings: entries accepted but without effect"""

    addresses: Addresses
    app_name: str
    attached: NotRequired[Union[None, Attached]]
    config: MachineConfig
    created_at: str
    id: str
    name: str
    network_policy: NetworkPolicy
    runtime: NotRequired[Optional[str]]
    updated_at: str
    warnings: NotRequired[list[Diagnostic]]


class Applied_PolicyInfo(TypedDict):
    """An answer that carries warnings: entries accepted but without effect"""

    created_at: str
    id: str
    name: str
    rules: list[Rule]
    selector: Selector
    updated_at: str
    warnings: NotRequired[list[Diagnostic]]


class Attached(TypedDict):
    """What an attached machine is attached to."""

    container_id: NotRequired[Optional[str]]
    gateways: Addresses
    ifname: str
    kind: Literal['netns', 'cni']
    mac: str
    netns: str


class BinaryReport(TypedDict):
    """A program, found on `PATH` or not."""

    name: str
    path: NotRequired[Optional[str]]
    purpose: str
    required: bool


class BoxExecOutput(TypedDict):
    """What a command run in a box did (Box API)."""

    exitCode: int
    stderr: str
    stdout: str


class BoxFlowLog(TypedDict):
    """`{"logAllowed": true|false}` (Box API)."""

    logAllowed: bool


class BoxGuest(TypedDict):
    """A box's size (Box API: `memoryMb`)."""

    cpus: NotRequired[Optional[int]]
    memoryMb: NotRequired[Optional[int]]


class BoxInfo(TypedDict):
    """A box (Box API view of a machine)."""

    addresses: Addresses
    app: str
    createdAt: str
    guest: NotRequired[Union[None, BoxGuest]]
    id: str
    image: NotRequired[Optional[str]]
    metadata: dict[str, str]
    name: str
    networkPolicy: NetworkPolicy
    runtime: NotRequired[Optional[str]]
    updatedAt: str


class Checked(TypedDict):
    """A check's answer: the kernel enforces what is stored."""

    enforced: bool
    id: str


class CreateApp(TypedDict):
    """`POST /v1/apps`."""

    app_name: str


class CreateBox(TypedDict):
    """`POST /v1/boxes`: what to create a box with (all optional)."""

    app: NotRequired[Optional[str]]
    guest: NotRequired[Union[None, BoxGuest]]
    image: NotRequired[Optional[str]]
    metadata: NotRequired[Optional[dict[str, str]]]
    networkPolicy: NotRequired[Union[None, NetworkPolicy]]
    runtime: NotRequired[Optional[str]]


class Deleted(TypedDict):
    """The answer to a delete."""

    deleted: bool
    id: str


class Diagnostic(TypedDict):
    """One finding (an error or a warning) about one place in a JSON document."""

    message: str
    path: str


class ErrorBody(TypedDict):
    """`{"error": {"code", "message", "details"}}`."""

    error: ErrorDetail


class ErrorDetail(TypedDict):
    """What went wrong."""

    code: str
    details: NotRequired[list[Diagnostic]]
    message: str


class ExecOutput(TypedDict):
    """What a command run in a machine did (Machines API)."""

    exit_code: int
    stderr: str
    stdout: str


class ExecRequest(TypedDict):
    """A command to run in a machine or box."""

    command: list[str]
    stdin: NotRequired[Optional[str]]
    timeout: NotRequired[Optional[float]]


class FeatureReport(TypedDict):
    """One kernel feature."""

    answer: NotRequired[Optional[str]]
    name: str
    purpose: str
    required: bool
    since: str
    status: FeatureStatus


class Finding(TypedDict):
    """What one layer found."""

    allowed: bool
    layer: Layer
    reason: dict[str, Any]


class Flow(TypedDict):
    """A hypothetical flow to evaluate, seen from the machine: `port` is the remote port for egress, the machine's for ingress. `protocol` is tcp, udp, icmp, or an IP protocol number 0-255 (which only a rule without `ports` allows)."""

    pass


class FlowEvent(TypedDict):
    """One flow log event."""

    app: NotRequired[Optional[str]]
    claimed: NotRequired[Optional[str]]
    direction: NotRequired[Union[None, Direction]]
    domain: NotRequired[Optional[str]]
    dport: NotRequired[Optional[int]]
    dst: NotRequired[Optional[str]]
    kind: FlowEventKind
    layer: NotRequired[Union[None, Layer]]
    machine_id: str
    policy_id: NotRequired[Optional[str]]
    policy_name: NotRequired[Optional[str]]
    protocol: NotRequired[Union[None, Protocol]]
    reason: str
    rule_index: NotRequired[Optional[int]]
    sport: NotRequired[Optional[int]]
    src: NotRequired[Optional[str]]
    suppressed: NotRequired[Optional[int]]
    time_ms: int
    verdict: str


class Forwarding(TypedDict):
    """The forwarding sysctls; `null` when one cannot be read."""

    ipv4: NotRequired[Optional[bool]]
    ipv6: NotRequired[Optional[bool]]


class Health(TypedDict):
    """`GET /healthz`."""

    problems: NotRequired[list[str]]
    status: Literal['ok', 'unhealthy']


class HostReport(TypedDict):
    """What a host offers boxfence."""

    binaries: list[BinaryReport]
    cgroup: CgroupVersion
    features: list[FeatureReport]
    forwarding: Forwarding
    kernel: str
    ok: bool
    paths: list[PathReport]
    problems: list[str]
    uplinks: list[UplinkReport]


class MachineConfig(TypedDict):
    """A machine's configuration."""

    guest: NotRequired[Union[None, MachineGuest]]
    image: NotRequired[Optional[str]]
    metadata: NotRequired[Optional[dict[str, str]]]


class MachineFlowLog(TypedDict):
    """`{"log_allowed": true|false}` (Machines API)."""

    log_allowed: bool


class MachineGuest(TypedDict):
    """A machine's size (Machines API: `memory_mb`)."""

    cpus: NotRequired[Optional[int]]
    memory_mb: NotRequired[Optional[int]]


class MachineInfo(TypedDict):
    """A machine (Machines API view of a box)."""

    addresses: Addresses
    app_name: str
    attached: NotRequired[Union[None, Attached]]
    config: MachineConfig
    created_at: str
    id: str
    name: str
    network_policy: NetworkPolicy
    runtime: NotRequired[Optional[str]]
    updated_at: str


class MachineRef(TypedDict):
    id: str


class NetworkPolicyAnswer(TypedDict):
    """A box policy update's answer."""

    networkPolicy: NetworkPolicy
    warnings: NotRequired[list[Diagnostic]]


class NewMachine(TypedDict):
    """`POST /v1/apps/{app}/machines`."""

    attach: NotRequired[Union[None, AttachRequest]]
    config: NotRequired[Union[MachineConfig, None]]
    name: NotRequired[Optional[str]]
    network_policy: NotRequired[Union[None, NetworkPolicy]]


class PathReport(TypedDict):
    """The path one part of the data plane takes."""

    fallback: bool
    part: str
    path: str


class PolicyInfo(TypedDict):
    """An app policy as stored, with its id."""

    created_at: str
    id: str
    name: str
    rules: list[Rule]
    selector: Selector
    updated_at: str


class Selector(TypedDict):
    """Which machines of the app a policy applies to: the members given must all match, and at least one is given."""

    all: NotRequired[Literal[True, None]]
    machines: NotRequired[Optional[list[MachineRef]]]
    metadata: NotRequired[Optional[dict[str, str]]]


class TokenInfo(TypedDict):
    """A minted token; its text is shown only in this answer."""

    app_name: str
    id: str
    token: str


class UplinkReport(TypedDict):
    """An interface box traffic leaves by."""

    default_route: bool
    name: str
    present: bool
    up: bool


class Verdict(TypedDict):
    """The verdict on a flow: allowed only if every layer allows it; the"""

    caveats: NotRequired[list[str]]
    findings: list[Finding]
    layer: NotRequired[Union[None, Layer]]
    name_check: NotRequired[Optional[str]]
    reason: str
    verdict: Literal['allow', 'deny']


AttachRequest = Union[dict[str, Any], dict[str, Any]]
CgroupVersion = Literal['v2', 'v1', 'hybrid', 'unknown']
Direction = Literal['ingress', 'egress']
FeatureStatus = Literal['found', 'avoided', 'missing']
FlowEventKind = Literal['connection', 'dns_query', 'suppressed']
Layer = Literal['anti_spoof', 'always_blocked', 'box_policy', 'app_policy', 'sni', 'host']
MetadataPatch = dict[str, Optional[str]]
NetworkPolicy = Union[dict[str, Any], Any]
PortRule = Union[dict[str, Any], dict[str, Any]]
Protocol = Union[Literal['tcp', 'udp', 'icmp'], int]
Rule = Union[dict[str, Any], dict[str, Any]]
