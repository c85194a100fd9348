#!/usr/bin/env bash
# Checks the live API against its own /openapi.json with schemathesis
# (from PyPI, in a venv under the target directory), every check on:
# responses match their schemas and documented status codes, requests
# the document allows are accepted (positive_data_acceptance), requests
# it forbids are refused, and nothing answers a server error. The daemon
# runs WITH its data plane, in the host namespace of a sealed lab
# (boxfence-lab run), and schemathesis runs there too: no packet leaves
# namespaces this script made, which are removed when it exits. Needs
# root.
#   scripts/schemathesis.sh [max-examples]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --inside-lab ]; then
    examples=$2 venv=$3 bin=$4 scripts=$PWD/scripts
    work=$BOXFENCE_LAB_WORKDIR
    token=schemathesis-admin-token
    cat >"$work/st.toml" <<TOML
listen = "127.0.0.1:4280"
database = "sqlite://$work/st.db"
admin_token = "$token"
[network]
uplink = "$BOXFENCE_LAB_UPLINK"
upstream_dns = ["$BOXFENCE_LAB_UPSTREAM_DNS"]
netns_prefix = "$BOXFENCE_LAB_NETNS_PREFIX"
state_dir = "$work/state"
TOML
    "$bin/boxfence" serve --config "$work/st.toml" >"$work/out.log" 2>"$work/err.log" &
    daemon=$!
    trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
    url=http://127.0.0.1:4280
    for _ in $(seq 100); do
        curl -sf "$url/healthz" >/dev/null && break
        sleep 0.1
    done
    curl -sf "$url/healthz" >/dev/null || { cat "$work/err.log" >&2; exit 1; }
    curl -sf -X POST "$url/v1/apps" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d '{"app_name": "st"}' >/dev/null
    # Run from the scratch directory: schemathesis leaves a cache behind.
    cd "$work"
    # A body over the limit is refused with 413, which the document
    # states for every operation with a body.
    cat >schemathesis.toml <<'TOML'
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
TOML
    status=0
    # Values of the document's own string formats (cidr, domain-pattern, ...).
    PYTHONPATH=$scripts SCHEMATHESIS_HOOKS=schemathesis_hooks \
        "$venv/bin/schemathesis" --config-file schemathesis.toml run "$url/openapi.json" \
        -H "Authorization: Bearer $token" \
        --max-examples "$examples" --seed 1 --checks all || status=$?
    if [ "$status" != 0 ]; then
        echo "--- daemon log (last lines)" >&2
        tail -n 20 "$work/err.log" >&2
    fi
    exit "$status"
fi
examples=${1:-30}
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
venv="$target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis>=4,<5'
fi
cargo build -q -p boxfence -p boxfence-lab --bins
exec "$target/debug/boxfence-lab" run -- "$PWD/scripts/schemathesis.sh" --inside-lab \
    "$examples" "$venv" "$target/debug"
