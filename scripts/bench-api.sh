#!/usr/bin/env bash
# API throughput of `boxfence serve` (release build) with 64 concurrent
# connections from a second process (wrk, Debian package `wrk`), on
# loopback, against a fresh SQLite file. Prints wrk's latency tables.
#   scripts/bench-api.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
command -v wrk >/dev/null || { echo "needs wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release -p boxfence >/dev/null 2>&1
work=$(mktemp -d)
token=bench-admin-token
"${CARGO_TARGET_DIR:-target}/release/boxfence" serve --no-data-plane --listen 127.0.0.1:0 --database "sqlite://$work/bench.db" \
    --admin-token "$token" >"$work/out.log" 2>"$work/err.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    url=$(grep -o 'http://[0-9.:]*' "$work/out.log" || true)
    [ -n "$url" ] && break
    sleep 0.1
done
auth="Authorization: Bearer $token"
curl -sf -X POST "$url/v1/apps" -H "$auth" -H 'Content-Type: application/json' -d '{"app_name": "bench"}' >/dev/null
for n in $(seq 0 9); do
    curl -sf -X POST "$url/v1/apps/bench/network_policies" -H "$auth" \
        -d "{\"name\": \"p$n\", \"selector\": {\"all\": true}, \"rules\": [{\"action\": \"allow\",
             \"direction\": \"egress\", \"ports\": [{\"protocol\": \"tcp\", \"port\": 443}]}]}" >/dev/null
done
cat >"$work/apply.lua" <<'LUA'
-- Idempotent applies spread over 100 policy names: every request is a
-- durable upsert (SQLite write, synchronous=FULL) plus a recompute.
counter = 0
request = function()
    counter = counter + 1
    local body = string.format('{"name": "apply-%d", "selector": {"all": true}, "rules": ' ..
        '[{"action": "allow", "direction": "egress", "ports": [{"protocol": "tcp", "port": %d}]}]}',
        counter % 100, 1000 + counter % 1000)
    -- wrk.format does not add the -H headers when given its own.
    local headers = {["Content-Type"] = "application/json"}
    for name, value in pairs(wrk.headers) do headers[name] = value end
    return wrk.format("POST", "/v1/apps/bench/network_policies", headers, body)
end
LUA
echo "== GET /v1/apps/bench/network_policies (10 policies), 64 connections, ${seconds}s"
wrk -t2 -c64 -d"${seconds}s" --latency -H "$auth" "$url/v1/apps/bench/network_policies"
echo "== POST /v1/apps/bench/network_policies (apply), 64 connections, ${seconds}s"
wrk -t2 -c64 -d"${seconds}s" --latency -H "$auth" -s "$work/apply.lua" "$url"
echo "== policies after the run: $(curl -sf -H "$auth" "$url/v1/apps/bench/network_policies" | grep -o '"id"' | wc -l)"
