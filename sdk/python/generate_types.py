"""Writes boxfence/_generated.py: a TypedDict or alias per schema of the
OpenAPI document given as the first argument (see ../generate.sh).

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


def annotation(schema: dict[str, Any]) -> str:
    """The Python type of `schema` (annotations are postponed, so names
    of schemas defined later are fine in classes; aliases come last)."""
    if "$ref" in schema:
        return ref_name(schema["$ref"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            parts = [annotation(part) for part in schema[key]]
            return parts[0] if len(parts) == 1 else f"Union[{', '.join(parts)}]"
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
        inner = f"list[{annotation(schema.get('items', {}))}]"
    elif kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        inner = f"dict[str, {annotation(extra) if isinstance(extra, dict) else 'Any'}]"
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


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        sys.stdout.write(render(json.load(file)))
