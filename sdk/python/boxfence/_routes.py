"""The SDK's names for the API's types, found by route in openapi.json by
generate_types.py (sdk/generate.sh). Do not edit."""

from typing import Any, Literal, Optional, Union  # noqa: F401 (as the routes need)

from . import _generated as g

App = g.AppInfo
AppPolicy = g.AppPolicy
AppliedPolicy = g.Applied_PolicyInfo
BoxCreated = g.Applied_BoxInfo
BoxGuest = g.BoxGuest
BoxView = g.BoxInfo
CreatedMachine = g.Applied_MachineInfo
Deleted = g.Deleted
Diagnostic = g.Diagnostic
Flow = g.Flow
FlowVerdict = g.Verdict
Machine = g.MachineInfo
NetworkPolicy = g.NetworkPolicy
PolicyUpdated = g.NetworkPolicyAnswer
StoredPolicy = g.PolicyInfo

__all__ = ['App', 'AppPolicy', 'AppliedPolicy', 'BoxCreated', 'BoxGuest', 'BoxView', 'CreatedMachine', 'Deleted', 'Diagnostic', 'Flow', 'FlowVerdict', 'Machine', 'NetworkPolicy', 'PolicyUpdated', 'StoredPolicy']
