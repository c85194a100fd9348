#!/usr/bin/env bash
# Probes the running kernel for the nf_tables features boxfence's data plane
# chooses between (issue 12), by loading small rulesets with `nft -f` and
# looking at what the kernel kept. Version numbers lie (distributions
# backport), so this asks the kernel itself.
#
# Needs root, nft, ip and python3. Everything happens in a scratch network
# namespace of its own (the script re-runs itself under `unshare --net`), so
# the host's ruleset and links are never touched and no packet leaves it.
#
# Output: one line per probe, `<id>  <yes|no>  <what>  [<detail>]`, where
# the detail of a `no` is the kernel's first complaint.
set -uo pipefail

if [ "${BOXFENCE_PROBE_NETNS:-}" != 1 ]; then
  exec unshare --net -- env BOXFENCE_PROBE_NETNS=1 "$0" "$@"
fi

ip link set lo up
ip link add pa0 type veth peer name pa1
ip link set pa0 up
ip link set pa1 up

# Prints one result line: id, yes/no, description, detail.
report() {
  printf '%-3s %-4s %-62s %s\n' "$1" "$2" "$3" "${4:-}"
}

# Loads the ruleset on stdin; on failure prints nft's first error line
# (without the file position) and returns non-zero.
load() {
  local out
  if out=$(nft -f - 2>&1); then
    return 0
  fi
  printf '%s' "$out" | grep -m1 'Error' | sed -e 's/^[^ ]* Error: //'
  return 1
}

# Runs one probe: id, description, then the ruleset on stdin.
probe() {
  local id=$1 what=$2 err
  if err=$(load); then
    report "$id" yes "$what"
  else
    report "$id" no "$what" "$err"
  fi
}

echo "kernel $(uname -r)  nft $(nft --version | awk '{print $2}')"

probe a 'inet ingress base chain on an existing device' <<'EOF'
table inet probe_a {
  chain c { type filter hook ingress device "pa0" priority 0; policy accept; }
}
EOF

probe b 'inet ingress base chain on a device that does not exist yet' <<'EOF'
table inet probe_b {
  chain c { type filter hook ingress device "pnothere0" priority 0; policy accept; }
}
EOF

# c) nft 1.0.x has no `destroy` command, so the message goes over netlink
# from python: one batch with NFT_MSG_DESTROYSETELEM (30) for an element
# that is not in the set. A kernel that has it acknowledges (a missing
# element is no error); one that does not refuses the unknown message type.
# DELSETELEM (14) for the same element must fail with ENOENT everywhere,
# which shows the message itself is well formed.
load <<'EOF' >/dev/null
table inet probe_c {
  set s { type ipv4_addr; }
}
EOF
setelem() {
  python3 - "$1" <<'PY'
import os, socket, struct, sys

def attr(kind, payload):
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)

def nested(kind, payload):
    return attr(kind | 0x8000, payload)

def message(kind, flags, seq, family, res_id, body):
    head = struct.pack("=BBH", family, 0, socket.htons(res_id))
    size = 16 + len(head) + len(body)
    return struct.pack("=IHHII", size, kind, flags, seq, 0) + head + body

REQUEST, ACK = 1, 4
elements = nested(3, nested(1, nested(1, attr(1, socket.inet_aton("192.0.2.1")))))
body = attr(1, b"probe_c\0") + attr(2, b"s\0") + elements
batch = (
    message(0x10, REQUEST, 1, 0, 10, b"")
    + message((10 << 8) | int(sys.argv[1]), REQUEST | ACK, 2, 1, 0, body)
    + message(0x11, REQUEST, 3, 0, 10, b"")
)
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
sock.bind((0, 0))
sock.send(batch)
sock.settimeout(2)
reply = sock.recv(65536)
while reply:
    size, kind = struct.unpack_from("=IH", reply)
    if kind == 2:  # NLMSG_ERROR
        (error,) = struct.unpack_from("=i", reply, 16)
        print(0 if error == 0 else os.strerror(-error))
        sys.exit(0)
    reply = reply[(size + 3) & ~3:]
print("no answer")
PY
}
control=$(setelem 14)
destroy=$(setelem 30)
if [ "$control" != "No such file or directory" ]; then
  report c '?' 'DESTROYSETELEM (delete an element that may be gone)' "control DELSETELEM answered: $control"
elif [ "$destroy" = 0 ]; then
  report c yes 'DESTROYSETELEM (delete an element that may be gone)'
else
  report c no 'DESTROYSETELEM (delete an element that may be gone)' "$destroy"
fi

# d) The element is added with a 10 s timeout, then added again with 100 s.
load <<'EOF' >/dev/null
table inet probe_d {
  set s { type ipv4_addr; flags timeout; }
}
add element inet probe_d s { 192.0.2.1 timeout 10s }
add element inet probe_d s { 192.0.2.1 timeout 100s }
EOF
element=$(nft list set inet probe_d s | grep -o '192.0.2.1[^,}]*' | head -1)
if printf '%s' "$element" | grep -q 'timeout 1m40s'; then
  report d yes 're-adding an element refreshes its timeout' "$element"
else
  report d no 're-adding an element refreshes its timeout' "$element"
fi

probe e 'flowtable on ingress with "flow add @ft" from forward' <<'EOF'
table inet probe_e {
  flowtable ft { hook ingress priority 0; devices = { pa0 }; }
  chain forward { type filter hook forward priority 0; policy accept; ip protocol tcp flow add @ft; }
}
EOF

probe f1 'reject from prerouting (goto a regular chain)' <<'EOF'
table inet probe_f1 {
  chain deny { reject; }
  chain pre { type filter hook prerouting priority 0; policy accept; ip daddr 192.0.2.1 goto deny; }
}
EOF

probe f2 "ct original zone set + meta mark set in an inet ingress chain" <<'EOF'
table inet probe_f2 {
  chain c {
    type filter hook ingress device "pa0" priority 0; policy accept;
    ip saddr 192.0.2.1 ct original zone set 5 meta mark set 1 accept;
  }
}
EOF

# g) Needs a): an ingress chain on pa0, then pa0 goes away.
if load <<'EOF' >/dev/null
table inet probe_g {
  chain c { type filter hook ingress device "pa0" priority 0; policy accept; }
}
EOF
then
  ip link del pa0
  if nft list chain inet probe_g c >/dev/null 2>&1; then
    report g no 'deleting the device deletes its ingress base chain' 'the chain stays in the table'
  else
    report g yes 'deleting the device deletes its ingress base chain'
  fi
else
  report g '?' 'deleting the device deletes its ingress base chain' 'no inet ingress chain (a)'
fi

# The modules the data plane needs: loaded (on demand, by the probes above
# or earlier), built in, available to load, or missing.
if [ ! -f /proc/modules ]; then
  echo "modules: none (this kernel loads no modules; what it has is built in)"
  exit 0
fi
builtin=/lib/modules/$(uname -r)/modules.builtin
for module in nf_tables nf_conntrack nf_nat nft_ct nft_reject_inet nf_flow_table nft_flow_offload nfnetlink_log veth; do
  if grep -q "^$module " /proc/modules; then
    loaded+=" $module"
  elif [ -f "$builtin" ] && grep -q "/$module\\.ko\$" "$builtin"; then
    built_in+=" $module"
  elif modinfo -n "$module" >/dev/null 2>&1; then
    available+=" $module"
  else
    missing+=" $module"
  fi
done
echo "modules loaded:${loaded:-}; built in:${built_in:-}; to load:${available:-}; missing:${missing:-}"
