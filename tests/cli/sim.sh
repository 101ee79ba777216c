#!/usr/bin/env bash
# robot-sre-sim against a real aggregator over gRPC: a small scenario (one node develops disk
# pressure, one goes silent and comes back, one stays steady) must open a node_disk_pressure
# incident for exactly the pressured node (seen through the admin API with robotctl), every
# batch must be acknowledged, the node-local cleanup the aggregator sends must be answered and
# acknowledged, and the silent node must reconnect. Plus the CLI's errors: scenario errors
# with line:col (exit 2), usage errors (exit 2), no aggregator (exit 1).
# Args: BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
SRC=$2
SIM="$BUILD/aggregator/sim/robot-sre-sim"
AGG="$BUILD/aggregator/daemon/robot-sre-aggregator"
CTL="$BUILD/aggregator/robotctl/robotctl"
CLI_SHOW=tail
. "$2/tests/support/cli_check.sh"
field() { # key: value of key=value in $out's summary line
    sed -n "s/.*summary .*[ ]$1=\([^ ]*\).*/\1/p" <<<"$out" | head -n 1
}

# --- CLI errors (no aggregator needed) ---
check "help" 0 "$SIM" --help
contains "help" "--scenario FILE"
check "shipped demo scenario" 0 "$SIM" --check "$SRC/deploy/local/scenarios/demo.yaml"
contains "shipped demo scenario" "3 node(s) in 3 group(s)"
check "shipped load scenario" 0 "$SIM" --check "$SRC/deploy/local/scenarios/load.yaml"
printf 'groups:\n  - nodes: w-{1..2}\n    steps:\n      - {at: 1s, disk_presure: true}\n' >"$TMP/typo.yaml"
check "unknown key" 2 "$SIM" --check "$TMP/typo.yaml"
contains "unknown key" "typo.yaml:4:18: steps[]: unknown key 'disk_presure'"
printf 'groups:\n  - nodes: w-1\n    steps:\n      - {at: 5s, psi_io: 120}\n' >"$TMP/range.yaml"
check "out of range" 2 "$SIM" --check "$TMP/range.yaml"
contains "out of range" "range.yaml:4:26: psi_io: 120 is outside 0..100"
printf 'groups:\n  - nodes: w-1\n    steps:\n      - {at: 5s, silent: true}\n      - {at: 2s, silent: false}\n' >"$TMP/order.yaml"
check "steps out of order" 2 "$SIM" --check "$TMP/order.yaml"
contains "steps out of order" "order.yaml:5:14: at: steps must be in time order"
printf 'groups:\n  - nodes: Worker_{1..3}\n' >"$TMP/name.yaml"
check "bad node names" 2 "$SIM" --check "$TMP/name.yaml"
contains "bad node names" "not a DNS-1123 subdomain"
printf 'groups:\n  - nodes: w-{1..3}\n  - nodes: w-2\n' >"$TMP/dup.yaml"
check "duplicate node" 2 "$SIM" --check "$TMP/dup.yaml"
contains "duplicate node" "repeats a node name"
check "missing file" 2 "$SIM" --check "$TMP/nope.yaml"
contains "missing file" "cannot open"
check "load mode half" 2 "$SIM" --agents 10
contains "load mode half" "load mode needs both --agents and --rate"
check "bad duration" 2 "$SIM" --agents 10 --rate 100 --duration soon
contains "bad duration" "'soon' is not a duration"
check "nothing to do" 2 "$SIM"
check "no aggregator" 1 "$SIM" --aggregator 127.0.0.1:1 --agents 2 --rate 10 --connect-timeout 1s

# --- against a real aggregator ---
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'tokens:\n  - operator: carol\n    role: viewer\n    sha256: %s\n' \
    "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$TMP/tokens.yaml"
"$AGG" --listen=127.0.0.1:0 --data_dir="$TMP/data" --env=demo --tick_ms=1000 \
    --api_listen=127.0.0.1:0 --api_tokens_file="$TMP/tokens.yaml" \
    --kube_api=http://127.0.0.1:1 --log_level=info 2>"$TMP/aggregator.log" &
daemon_pid=$!
for _ in $(seq 300); do grep -q 'msg="started ' "$TMP/aggregator.log" 2>/dev/null && break; sleep 0.1; done
GPORT=$(sed -n 's/.*msg="started .* port=\([0-9]*\) .*/\1/p' "$TMP/aggregator.log" | head -n 1)
APORT=$(sed -n 's/.*admin API on .*(port \([0-9]*\)).*/\1/p' "$TMP/aggregator.log" | head -n 1)
if [ -z "$GPORT" ] || [ -z "$APORT" ]; then
    echo "FAIL: the aggregator did not start"; cat "$TMP/aggregator.log"; exit 1
fi
cat >"$TMP/scenario.yaml" <<'EOF'
duration: 6s
action_result: ok
action_delay: 100ms
groups:
  - name: steady
    nodes: t-steady
    start: {nodefs_used_percent: 40, interval: 500ms}
  - name: filling
    nodes: t-full-{1..1}
    start: {nodefs_used_percent: 80, pods_succeeded: 3, interval: 500ms}
    steps:
      - {at: 500ms, ramp: 1s, nodefs_used_percent: 92}
      - {at: 1s, disk_pressure: true, pods_failed: 1, pods_evicted: 1}
  - name: flaky
    nodes: t-flaky
    start: {interval: 500ms}
    steps:
      - {at: 1s, silent: true}
      - {at: 3s, silent: false}
EOF
check "scenario run" 0 "$SIM" --aggregator "127.0.0.1:$GPORT" --scenario "$TMP/scenario.yaml" \
    --connect-timeout 30s --drain 20s --require-all
contains "scenario run" "all_connected=1"
sent=$(field signals_sent)
acked=$(field signals_acked)
if [ -z "$sent" ] || [ "$sent" = 0 ] || [ "$sent" != "$acked" ]; then
    fail "every signal acknowledged: sent=$sent acked=$acked"
fi
[ "$(field reconnects)" = 1 ] || fail "the silent node came back once: reconnects=$(field reconnects)"
[ "$(field actions)" -ge 1 ] 2>/dev/null || fail "an ActionRequest reached the simulated agent"
[ "$(field results_acked)" = "$(field actions)" ] || fail "every result acknowledged: $out"

export ROBOT_SRE_SERVER="http://127.0.0.1:$APORT" ROBOT_SRE_TOKEN="$TOKEN"
check "incidents" 0 "$CTL" --json incidents list
if ! python3 -c '
import json, sys
d = json.loads(sys.argv[1])
inc = [i for i in d["incidents"] if i["incident_type"] == "node_disk_pressure"]
assert len(inc) == 1, inc
assert "t-full-1" in json.dumps(inc[0]), inc[0]
assert all("t-steady" not in json.dumps(i) and "t-flaky" not in json.dumps(i) for i in d["incidents"]), d
' "$out"; then
    fail "one node_disk_pressure incident, for t-full-1 only"; echo "$out" | head -40
fi
grep -q 'action=delete_finished_pods .*node=t-full-1' "$TMP/aggregator.log" ||
    fail "the aggregator sent the node-local cleanup to t-full-1"

if [ "$fails" -ne 0 ]; then
    echo "--- aggregator log (tail)"; tail -30 "$TMP/aggregator.log"
    echo "$fails failure(s)"
    exit 1
fi
echo "sim: all checks passed"
