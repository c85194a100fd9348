#!/usr/bin/env bash
# Regenerates both SDKs' types from the repo's openapi.json: TypeScript
# with openapi-typescript (a dev dependency: run `npm ci` in
# sdk/typescript first), Python with sdk/python/generate_types.py (no
# dependency; its route table names the types the SDK uses). Commit what
# it writes. `--check` writes nothing and fails
# when a committed file differs from what the document makes (the
# sdk_e2e test runs it; neither step needs the network).
set -euo pipefail
cd "$(dirname "$0")"
doc=../openapi.json
ts=typescript/src/generated/openapi.ts
py=python/boxfence/_generated.py
routes=python/boxfence/_routes.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The types are keyed by path and method; operation ids, which the
# document repeats across tags (`list`, `create`, ...), would collide.
node -e '
  const fs = require("fs");
  const doc = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  for (const item of Object.values(doc.paths)) for (const op of Object.values(item)) delete op.operationId;
  fs.writeFileSync(process.argv[2], JSON.stringify(doc));
' "$doc" "$tmp/doc.json"
(cd typescript && npx --no-install openapi-typescript "$tmp/doc.json" -o "$tmp/openapi.ts" >/dev/null)
python3 python/generate_types.py "$doc" >"$tmp/_generated.py"
python3 python/generate_types.py "$doc" routes >"$tmp/_routes.py"
if [ "${1:-}" = --check ]; then
  diff -u "$ts" "$tmp/openapi.ts" && diff -u "$py" "$tmp/_generated.py" && diff -u "$routes" "$tmp/_routes.py" || {
    echo "sdk: generated types differ from openapi.json; run sdk/generate.sh" >&2
    exit 1
  }
else
  cp "$tmp/openapi.ts" "$ts"
  cp "$tmp/_generated.py" "$py"
  cp "$tmp/_routes.py" "$routes"
fi
