"""The SDK's names for the API's types, found by route in openapi.json by
generate_types.py (sdk/generate.sh). Do not edit."""

from typing import Any, Literal, Optional, Union  # noqa: F401 (as the routes need)

from . import _generated as g

App = g.AppView
AppPolicy = g.AppPolicy
AppliedPolicy = g.WithWarnings_PolicyView
BoxCreated = g.WithWarnings_BoxView
BoxGuest = g.BoxGuestBody
BoxView = g.BoxView
CreatedMachine = g.WithWarnings_MachineView
Deleted = g.Deleted
Diagnostic = g.Diagnostic
Flow = g.Flow
FlowVerdict = g.Verdict
Machine = g.MachineView
NetworkPolicy = g.NetworkPolicy
PolicyUpdated = g.NetworkPolicyView
StoredPolicy = g.PolicyView

__all__ = ['App', 'AppPolicy', 'AppliedPolicy', 'BoxCreated', 'BoxGuest', 'BoxView', 'CreatedMachine', 'Deleted', 'Diagnostic', 'Flow', 'FlowVerdict', 'Machine', 'NetworkPolicy', 'PolicyUpdated', 'StoredPolicy']
