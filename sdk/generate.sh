#!/usr/bin/env bash
# Regenerates both SDKs' types from the repo's openapi.json: TypeScript
# with openapi-typescript (a dev dependency: run `npm ci` in
# sdk/typescript first), Python with sdk/python/generate_types.py (no
# dependency). Commit what it writes; sdk/python's tests check that the
# Python file is current, and `tsc` checks the TypeScript layer against its.
set -euo pipefail
cd "$(dirname "$0")"
doc=../openapi.json
tmp=$(mktemp --suffix=.json)
trap 'rm -f "$tmp"' EXIT
# The types are keyed by path and method; operation ids, which the
# document repeats across tags (`list`, `create`, ...), would collide.
node -e '
  const fs = require("fs");
  const doc = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  for (const item of Object.values(doc.paths)) for (const op of Object.values(item)) delete op.operationId;
  fs.writeFileSync(process.argv[2], JSON.stringify(doc));
' "$doc" "$tmp"
(cd typescript && npx --no-install openapi-typescript "$tmp" -o src/generated/openapi.ts)
python3 python/generate_types.py "$doc" > python/boxfence/_generated.py
