"""Writes the Python SDK's types from the OpenAPI document given as the
first argument (see ../generate.sh): with no second argument
boxfence/_generated.py, a TypedDict or alias per schema; with `routes`
boxfence/_routes.py, the SDK's names for them found by route (path,
method, status or body, then fields), which stay put when the document
renames a schema.

Only what the document states is written: required fields are plain,
the others NotRequired; `type: [X, "null"]` is Optional; a pattern that
lists its only values (`^(a|b)$`) is a Literal; `allOf` merges fields.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

ALTERNATIVES = re.compile(r"^\^\(?([A-Za-z0-9_-]+(?:\|[A-Za-z0-9_-]+)*)\)?\$$")
SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def annotation(schema: dict[str, Any], prefix: str = "") -> str:
    """The Python type of `schema` (annotations are postponed, so names
    of schemas defined later are fine in classes; aliases come last)."""
    if "$ref" in schema:
        return prefix + ref_name(schema["$ref"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            parts = [annotation(part, prefix) for part in schema[key]]
            return parts[0] if len(parts) == 1 else f"Union[{', '.join(parts)}]"
    if "allOf" in schema and len(schema["allOf"]) == 1:
        # A `$ref` wrapped to carry its own description.
        return annotation(schema["allOf"][0], prefix)
    if "const" in schema:
        return f"Literal[{schema['const']!r}]"
    if "enum" in schema:
        return f"Literal[{', '.join(repr(v) for v in schema['enum'])}]"
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    nullable = "null" in kinds
    kinds = [kind for kind in kinds if kind != "null"]
    if not kinds:
        inner = "None" if nullable else "Any"
        return inner
    kind = kinds[0]
    alternatives = ALTERNATIVES.match(schema.get("pattern", "")) if kind == "string" else None
    if alternatives:
        inner = f"Literal[{', '.join(repr(v) for v in alternatives.group(1).split('|'))}]"
    elif kind in SCALARS:
        inner = SCALARS[kind]
    elif kind == "array":
        inner = f"list[{annotation(schema.get('items', {}), prefix)}]"
    elif kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        inner = f"dict[str, {annotation(extra, prefix) if isinstance(extra, dict) else 'Any'}]"
    else:
        inner = "dict[str, Any]"
    return f"Optional[{inner}]" if nullable else inner


def fields(schema: dict[str, Any], schemas: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Properties and required names of an object schema, `allOf` merged."""
    if "$ref" in schema:
        return fields(schemas[ref_name(schema["$ref"])], schemas)
    if "allOf" in schema or ("oneOf" in schema and len(schema["oneOf"]) == 1):
        properties: dict[str, Any] = {}
        required: set[str] = set()
        for part in schema.get("allOf", schema.get("oneOf")):
            more, needed = fields(part, schemas)
            properties.update(more)
            required |= needed
        return properties, required
    return schema.get("properties", {}), set(schema.get("required", []))


def is_record(schema: dict[str, Any]) -> bool:
    return "properties" in schema or "allOf" in schema


def render(document: dict[str, Any]) -> str:
    schemas = document["components"]["schemas"]
    out = [
        '"""The API\'s wire types, generated from openapi.json by',
        'generate_types.py (sdk/generate.sh). Do not edit."""',
        "",
        "from __future__ import annotations",
        "",
        "import sys",
        "from typing import TYPE_CHECKING, Any, Literal, Optional, TypedDict, Union",
        "",
        "if sys.version_info >= (3, 11):",
        "    from typing import NotRequired",
        "elif TYPE_CHECKING:",
        "    from typing_extensions import NotRequired",
        "",
    ]
    aliases = []
    for name in sorted(schemas):
        schema = schemas[name]
        if not is_record(schema):
            aliases.append(f"{name} = {annotation(schema)}")
            continue
        out.append("")
        properties, required = fields(schema, schemas)
        out.append(f"class {name}(TypedDict):")
        description = (schema.get("description") or "").split("\n")[0].replace('"""', "'")
        if description:
            out.append(f'    """{description}"""')
            out.append("")
        for field in sorted(properties):
            kind = annotation(properties[field])
            out.append(f"    {field}: {kind if field in required else f'NotRequired[{kind}]'}")
        if not properties:
            out.append("    pass")
        out.append("")
    # Aliases name only classes (the document's unions are of objects).
    out.extend(["", *aliases])
    return "\n".join(out).rstrip() + "\n"


EVALUATE = "/v1/apps/{app}/machines/{id}/network_policy/evaluate"

# The SDK's name -> (path, method, a status or "body", then fields, "[]"
# for an array's items).
ROUTES: dict[str, tuple[str, ...]] = {
    "App": ("/v1/apps/{app}", "get", "200"),
    "AppPolicy": ("/v1/apps/{app}/network_policies", "post", "body"),
    "AppliedPolicy": ("/v1/apps/{app}/network_policies", "post", "201"),
    "BoxCreated": ("/v1/boxes", "post", "201"),
    "BoxGuest": ("/v1/boxes", "post", "body", "guest"),
    "BoxView": ("/v1/boxes/{id}", "get", "200"),
    "CreatedMachine": ("/v1/apps/{app}/machines", "post", "201"),
    "Deleted": ("/v1/boxes/{id}", "delete", "200"),
    "Diagnostic": ("/v1/boxes", "post", "400", "error", "details", "[]"),
    "Flow": (EVALUATE, "post", "body"),
    "FlowVerdict": (EVALUATE, "post", "200"),
    "Machine": ("/v1/apps/{app}/machines/{id}", "get", "200"),
    "NetworkPolicy": ("/v1/boxes/{id}/network-policy", "put", "body"),
    "PolicyUpdated": ("/v1/boxes/{id}/network-policy", "put", "200"),
    "StoredPolicy": ("/v1/apps/{app}/network_policies/{id}", "get", "200"),
}


def resolve(document: dict[str, Any], route: tuple[str, ...]) -> dict[str, Any]:
    """The schema at `route`; a `$ref` at its end is kept (it names a type)."""
    schemas = document["components"]["schemas"]
    path, method, where, *steps = route
    operation = document["paths"][path][method]
    place = operation["requestBody"] if where == "body" else operation["responses"][where]
    schema: dict[str, Any] = place["content"]["application/json"]["schema"]
    for step in steps:
        # Optional fields are `oneOf [null, X]`: the type is X's.
        variants: list[dict[str, Any]] = [v for v in schema.get("oneOf", []) if v.get("type") != "null"]
        schema = variants[0] if len(variants) == 1 else schema
        if step == "[]":
            schema = (schemas[ref_name(schema["$ref"])] if "$ref" in schema else schema)["items"]
        else:
            schema = fields(schema, schemas)[0][step]
    variants = [v for v in schema.get("oneOf", []) if v.get("type") != "null"]
    return variants[0] if len(variants) == 1 and "$ref" in variants[0] else schema


def render_routes(document: dict[str, Any]) -> str:
    out = [
        '"""The SDK\'s names for the API\'s types, found by route in openapi.json by',
        'generate_types.py (sdk/generate.sh). Do not edit."""',
        "",
        "from typing import Any, Literal, Optional, Union  # noqa: F401 (as the routes need)",
        "",
        "from . import _generated as g",
        "",
    ]
    for name, route in ROUTES.items():
        out.append(f"{name} = {annotation(resolve(document, route), 'g.')}")
    out.append("")
    out.append(f"__all__ = {sorted(ROUTES)!r}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        document = json.load(file)
    routes = sys.argv[2:] == ["routes"]
    sys.stdout.write(render_routes(document) if routes else render(document))
