#!/usr/bin/env bash
# Checks the live API against its own /openapi.json with schemathesis
# (from PyPI, in a venv under the target directory): responses match their
# schemas and documented status codes, invalid requests are refused, and
# nothing answers an undocumented error. Two checks are left out, each for
# a stated reason:
#   not_a_server_error         machine routes answer 501 by design while
#                              this daemon has no data plane;
#   positive_data_acceptance   rules that span fields ("custom needs one
#                              non-empty list", "a selector needs one of
#                              all/machines/metadata", valid CIDR text) are
#                              described in words, not in JSON Schema.
#   scripts/schemathesis.sh [max-examples]
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-30}
target=${CARGO_TARGET_DIR:-target}
venv="$(realpath -m "$target")/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi
cargo build -p boxfence >/dev/null 2>&1
work=$(mktemp -d)
token=schemathesis-admin-token
"$target/debug/boxfence" serve --no-data-plane --listen 127.0.0.1:0 --database "sqlite://$work/st.db" \
    --admin-token "$token" >"$work/out.log" 2>"$work/err.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    url=$(grep -o 'http://[0-9.:]*' "$work/out.log" || true)
    [ -n "$url" ] && break
    sleep 0.1
done
curl -sf -X POST "$url/v1/apps" -H "Authorization: Bearer $token" -d '{"app_name": "st"}' >/dev/null
# Run from the scratch directory: schemathesis leaves a cache behind.
cd "$work"
"$venv/bin/schemathesis" run "$url/openapi.json" \
    -H "Authorization: Bearer $token" \
    --max-examples "$examples" --seed 1 \
    --exclude-checks not_a_server_error,positive_data_acceptance
