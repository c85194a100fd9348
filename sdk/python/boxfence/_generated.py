"""The API's wire types, generated from openapi.json by
generate_types.py (sdk/generate.sh). Do not edit."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Literal, Optional, TypedDict, Union

if sys.version_info >= (3, 11):
    from typing import NotRequired
elif TYPE_CHECKING:
    from typing_extensions import NotRequired


class AddressesView(TypedDict):
    """A machine's addresses."""

    ipv4: str
    ipv6: str


class AppPolicy(TypedDict):
    """An app policy (Machines API shape)."""

    id: NotRequired[Optional[str]]
    name: str
    rules: list[Rule]
    selector: Selector


class AppView(TypedDict):
    """An app."""

    app_name: str
    created_at: str


class AttachBody(TypedDict):
    """A network namespace to attach."""

    container_id: NotRequired[Optional[str]]
    ifname: NotRequired[Optional[str]]
    kind: NotRequired[Optional[Literal['netns', 'cni']]]
    netns: str


class AttachedView(TypedDict):
    """What an attached machine is attached to."""

    container_id: NotRequired[Optional[str]]
    gateways: AddressesView
    ifname: str
    kind: str
    mac: str
    netns: str


class BinaryReport(TypedDict):
    """A program, found on `PATH` or not."""

    name: str
    path: NotRequired[Optional[str]]
    purpose: str
    required: bool


class BoxExecView(TypedDict):
    """What a command run in a box did (Box API)."""

    exitCode: int
    stderr: str
    stdout: str


class BoxGuestBody(TypedDict):
    """A box's size."""

    cpus: NotRequired[Optional[int]]
    memoryMb: NotRequired[Optional[int]]


class BoxGuestView(TypedDict):
    """A box's size (Box API)."""

    cpus: int
    memoryMb: int


class BoxView(TypedDict):
    """A box (Box API view of a machine)."""

    addresses: AddressesView
    app: str
    createdAt: str
    guest: NotRequired[Union[None, BoxGuestView]]
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


class CreateAppBody(TypedDict):
    """`POST /v1/apps`."""

    app_name: str


class CreateBoxBody(TypedDict):
    """`POST /v1/boxes`."""

    app: NotRequired[Optional[str]]
    guest: NotRequired[Union[None, BoxGuestBody]]
    image: NotRequired[Optional[str]]
    metadata: NotRequired[Optional[dict[str, str]]]
    networkPolicy: NotRequired[Union[None, NetworkPolicy]]
    runtime: NotRequired[Optional[str]]


class CreateMachineBody(TypedDict):
    """`POST /v1/apps/{app}/machines`."""

    attach: NotRequired[Union[None, AttachBody]]
    config: NotRequired[Union[None, MachineConfigBody]]
    name: NotRequired[Optional[str]]
    network_policy: NotRequired[Union[None, NetworkPolicy]]


class CustomPolicySchema(TypedDict):
    """Allowed domains and CIDRs (default deny), or only denied CIDRs"""

    allowedCidrs: NotRequired[Optional[list[str]]]
    allowedDomains: NotRequired[Optional[list[str]]]
    deniedCidrs: NotRequired[Optional[list[str]]]
    mode: Literal['custom']


class Deleted(TypedDict):
    """The answer to a delete."""

    deleted: bool
    id: str


class Diagnostic(TypedDict):
    """One problem (or warning) about one place of a request body."""

    message: str
    path: str


class ErrorBody(TypedDict):
    """The error body of every failed request."""

    error: ErrorDetail


class ErrorDetail(TypedDict):
    """What went wrong."""

    code: str
    details: list[Diagnostic]
    message: str


class ExecBody(TypedDict):
    """A command to run in a machine."""

    command: list[str]
    stdin: NotRequired[Optional[str]]
    timeout: NotRequired[Optional[float]]


class ExecView(TypedDict):
    """What a command run in a machine did (Machines API)."""

    exit_code: int
    stderr: str
    stdout: str


class FeatureReport(TypedDict):
    """One kernel feature."""

    answer: NotRequired[Optional[str]]
    name: str
    purpose: str
    required: bool
    since: str
    status: FeatureStatus


class Flow(TypedDict):
    """A hypothetical flow to evaluate."""

    direction: str
    domain: NotRequired[Optional[str]]
    ip: NotRequired[Optional[str]]
    port: NotRequired[Optional[int]]
    protocol: str
    source: NotRequired[Optional[str]]


class Forwarding(TypedDict):
    """The forwarding sysctls; `null` when one cannot be read."""

    ipv4: NotRequired[Optional[bool]]
    ipv6: NotRequired[Optional[bool]]


class GuestBody(TypedDict):
    """A machine's size."""

    cpus: NotRequired[Optional[int]]
    memory_mb: NotRequired[Optional[int]]


class GuestView(TypedDict):
    """A machine's size (Machines API)."""

    cpus: int
    memory_mb: int


class Health(TypedDict):
    """`GET /healthz`."""

    problems: NotRequired[list[str]]
    status: str


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


class MachineConfigBody(TypedDict):
    """A machine's configuration."""

    guest: NotRequired[Union[None, GuestBody]]
    image: NotRequired[Optional[str]]
    metadata: NotRequired[Optional[dict[str, str]]]


class MachineConfigView(TypedDict):
    """A machine's configuration (Machines API)."""

    guest: NotRequired[Union[None, GuestView]]
    image: NotRequired[Optional[str]]
    metadata: dict[str, str]


class MachineRef(TypedDict):
    """A machine named in a selector."""

    id: str


class MachineView(TypedDict):
    """A machine (Machines API view of a box)."""

    addresses: AddressesView
    app_name: str
    attached: NotRequired[Union[None, AttachedView]]
    config: MachineConfigView
    created_at: str
    id: str
    name: str
    network_policy: NetworkPolicy
    runtime: NotRequired[Optional[str]]
    updated_at: str


class ModePolicySchema(TypedDict):
    """`allow-all`: no restriction; `deny-all`: the box is offline."""

    mode: Literal['allow-all', 'deny-all']


class NetworkPolicyView(TypedDict):
    """A box policy update's answer."""

    networkPolicy: NetworkPolicy
    warnings: list[Diagnostic]


class PathReport(TypedDict):
    """The path one part of the data plane takes."""

    fallback: bool
    part: str
    path: str


class PolicyView(TypedDict):
    """An app policy as stored, with its id."""

    created_at: str
    id: NotRequired[Optional[str]]
    name: str
    rules: list[Rule]
    selector: Selector
    updated_at: str


class PortRule(TypedDict):
    """A protocol and port (range)."""

    end_port: NotRequired[Optional[int]]
    port: NotRequired[Optional[int]]
    protocol: Literal['tcp', 'udp', 'icmp']


class Rule(TypedDict):
    """An allow rule."""

    action: Literal['allow']
    cidrs: NotRequired[Optional[list[str]]]
    direction: Literal['ingress', 'egress']
    domains: NotRequired[Optional[list[str]]]
    ports: NotRequired[Optional[list[PortRule]]]


class Selector(TypedDict):
    """Fields given together must all match; at least one is required."""

    all: NotRequired[Optional[bool]]
    machines: NotRequired[Optional[list[MachineRef]]]
    metadata: NotRequired[Optional[dict[str, str]]]


class TokenView(TypedDict):
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
    """The verdict on a flow."""

    caveats: NotRequired[Optional[list[str]]]
    findings: list[Any]
    layer: NotRequired[Optional[str]]
    name_check: NotRequired[Optional[str]]
    reason: str
    verdict: str


class WithWarnings_BoxView(TypedDict):
    """A success answer that also carries warnings: entries accepted but"""

    addresses: AddressesView
    app: str
    createdAt: str
    guest: NotRequired[Union[None, BoxGuestView]]
    id: str
    image: NotRequired[Optional[str]]
    metadata: dict[str, str]
    name: str
    networkPolicy: NetworkPolicy
    runtime: NotRequired[Optional[str]]
    updatedAt: str
    warnings: list[Diagnostic]


class WithWarnings_MachineView(TypedDict):
    """A success answer that also carries warnings: entries accepted but"""

    addresses: AddressesView
    app_name: str
    attached: NotRequired[Union[None, AttachedView]]
    config: MachineConfigView
    created_at: str
    id: str
    name: str
    network_policy: NetworkPolicy
    runtime: NotRequired[Optional[str]]
    updated_at: str
    warnings: list[Diagnostic]


class WithWarnings_PolicyView(TypedDict):
    """A success answer that also carries warnings: entries accepted but"""

    created_at: str
    id: NotRequired[Optional[str]]
    name: str
    rules: list[Rule]
    selector: Selector
    updated_at: str
    warnings: list[Diagnostic]


CgroupVersion = Literal['v2', 'v1', 'hybrid', 'unknown']
FeatureStatus = Literal['found', 'avoided', 'missing']
MetadataPatch = dict[str, Optional[str]]
NetworkPolicy = Union[ModePolicySchema, CustomPolicySchema]
