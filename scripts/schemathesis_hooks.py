"""Strategies for the string formats boxfence's OpenAPI document names
beyond JSON Schema's own (boxfence_policy::openapi::FORMATS), so that
schemathesis generates values the document allows. Loaded by
scripts/schemathesis.sh through SCHEMATHESIS_HOOKS."""

import ipaddress

import schemathesis
from hypothesis import strategies as st


def _network(version: int, bits: int) -> st.SearchStrategy:
    addresses = st.ip_addresses(v=version)
    prefixes = st.integers(min_value=0, max_value=bits)
    networks = st.builds(
        lambda address, prefix: ipaddress.ip_network(f"{address}/{prefix}", strict=False),
        addresses,
        prefixes,
    )
    return st.one_of(addresses.map(str), networks.map(str))


_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9_-]{0,20}[a-z0-9])?\Z")
_NAME = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)

schemathesis.openapi.format("cidr", st.one_of(_network(4, 32), _network(6, 128)))
schemathesis.openapi.format("domain-name", _NAME)
schemathesis.openapi.format("domain-pattern", st.one_of(_NAME, _NAME.map(lambda n: "*." + n)))
