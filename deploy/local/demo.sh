#!/usr/bin/env bash
# The main job. Installs what it needs, builds Robot SRE, and shows the safety contract at
# work: the spec's policy matrix computed by the policy engine, and policy previews of the
# decisions the robot would take, with every reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${RSRE_BUILD_DIR:-$ROOT/build}

deploy/local/install-deps.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRSRE_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target robotctl robot-sre-agent robot-sre-aggregator robot-sre-sim >/dev/null
CTL="$BUILD/aggregator/robotctl/robotctl"
AGENT="$BUILD/agent/robot-sre-agent"
SIM="$BUILD/aggregator/sim/robot-sre-sim"
AGG="$BUILD/aggregator/daemon/robot-sre-aggregator"

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "The incident taxonomy compiled into the binary" "$CTL" taxonomy show
step "The policy matrix, computed by the policy engine (all environments)" "$CTL" policy matrix
step "The same in production: nothing but observe/notify runs alone" "$CTL" policy matrix --env production
step "Disk pressure in demo: cleaning up finished pods runs alone" \
    "$CTL" policy preview --incident node_disk_pressure --action delete_finished_pods --env demo --confidence high --target ci
step "...but not twice inside its cooldown" \
    "$CTL" policy preview --incident node_disk_pressure --action delete_finished_pods --env demo --confidence high --target ci --last-run-ago 300
step "...and not on medium confidence" \
    "$CTL" policy preview --incident node_disk_pressure --action delete_finished_pods --env demo --confidence medium --target ci
step "Rebooting a worker in production needs two approvers" \
    "$CTL" policy preview --incident node_disk_pressure --action reboot_worker --env production --target 10.0.10.202
step "Never auto-contain: cert-manager stays with humans even when allowlisted families match" \
    "$CTL" policy preview --incident node_disk_pressure --action delete_finished_pods --env demo --target cert-manager/cert-manager
step "Deleting a PVC is human-only, whatever the rules say" \
    "$CTL" policy preview --incident database_connectivity_degraded --action delete_pvc --env demo
step "Operator rules are checked against the spec's boundaries" \
    "$CTL" rules validate deploy/local/rules/demo-disk-pressure.yaml
printf '\n$ %s\n' "$CTL rules validate deploy/local/rules/unsafe-example.yaml"
"$CTL" rules validate deploy/local/rules/unsafe-example.yaml || true
step "An operator rule allowlisting a CronJob takes effect inside the boundary" \
    "$CTL" policy preview --incident node_disk_pressure --action suspend_cronjob --env demo --target ci/nightly-scan --rules deploy/local/rules/demo-disk-pressure.yaml

# The whole robot on this host: the aggregator, a real agent, and a simulated Kubernetes API
# (tests/support/kube_api_server.py speaks the real v1 JSON and watch streams) holding one
# worker, 10.0.10.21, in DiskPressure with a disk-pressure taint, and three pods on it.
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
http_get() { # host port path
    exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\n\r\n' "$3" >&3 && cat <&3 && exec 3<&-
}
K=tests/data/kube
# The node fixture is a recorded v1 Node; its DiskPressure started 4 minutes ago in the demo.
sed -e "s/2024-05-02T07:58:12Z/$(date -u -d '-4 min' +%Y-%m-%dT%H:%M:%SZ)/" \
    -e "s/2024-05-02T08:02:47Z/$(date -u +%Y-%m-%dT%H:%M:%SZ)/g" "$K/node-disk-pressure.json" >"$WORK/node.json"
/usr/bin/python3 tests/support/kube_api_server.py --port 0 --load "$WORK/node.json" \
    "$K/pod-succeeded.json" "$K/pod-running.json" "$K/pod-evicted.json" >"$WORK/kube.out" 2>"$WORK/kube.log" &
PIDS+=($!)
for _ in $(seq 50); do grep -q PORT "$WORK/kube.out" 2>/dev/null && break; sleep 0.1; done
KPORT=$(awk '/PORT/{print $2}' "$WORK/kube.out")
TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'tokens:\n  - operator: alice\n    role: approver\n    sha256: %s\n' \
    "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$WORK/tokens.yaml"
printf 'operators:\n  - id: alice\n    roles: [approver]\n' >"$WORK/operators.yaml"
printf '\n\033[1m== The aggregator, a node agent and a simulated cluster (demo mode)\033[0m\n'
# Port 0 everywhere: the kernel picks free ports, read back from the aggregator's log.
"$AGG" --listen=127.0.0.1:0 --data_dir="$WORK/data" --env=demo --tick_ms=2000 \
    --api_listen=127.0.0.1:0 --api_tokens_file="$WORK/tokens.yaml" \
    --operators_file="$WORK/operators.yaml" --kube_api="http://127.0.0.1:$KPORT" 2>"$WORK/aggregator.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q 'admin API on' "$WORK/aggregator.log" 2>/dev/null && break; sleep 0.1; done
GPORT=$(sed -n 's/.*msg="started .* port=\([0-9]*\) .*/\1/p' "$WORK/aggregator.log" | head -n 1)
APORT=$(sed -n 's/.*admin API on .*(port \([0-9]*\)).*/\1/p' "$WORK/aggregator.log" | head -n 1)
if [ -z "$GPORT" ] || [ -z "$APORT" ]; then
    echo "the aggregator did not start:" >&2; cat "$WORK/aggregator.log" >&2; exit 1
fi
HPORT=$((20000 + RANDOM % 20000))
"$AGENT" --node_name=10.0.10.21 --aggregator="127.0.0.1:$GPORT" --kube_api="http://127.0.0.1:$KPORT" \
    --kubelet_root=/ --runtime_root=/var/lib --spool_dir="$WORK/spool" --health_addr="127.0.0.1:$HPORT" \
    --batch_flush_ms=1000 --log_level=warn 2>"$WORK/agent.log" &
PIDS+=($!)
# Three simulated agents beside it (docs/sim.md): sim-worker-2 fills its disk and goes into
# DiskPressure, sim-worker-3 goes silent for a while and comes back.
echo "\$ robot-sre-sim --scenario deploy/local/scenarios/demo.yaml (sim-worker-1..3 beside the real agent)"
"$SIM" --aggregator="127.0.0.1:$GPORT" --scenario deploy/local/scenarios/demo.yaml --duration 120s \
    >"$WORK/sim.out" 2>"$WORK/sim.log" &
PIDS+=($!)
export ROBOT_SRE_SERVER="http://127.0.0.1:$APORT" ROBOT_SRE_TOKEN="$TOKEN"
sleep 10
step "A disk-pressure incident opened; the allowlisted cleanup ran by itself" "$CTL" incidents list
echo "\$ pods left on the simulated cluster (the Succeeded and Failed ones were cleaned up)"
http_get 127.0.0.1 "$KPORT" /api/v1/pods | sed -n '/^{/,$p' | python3 -c \
    'import json,sys; [print("  ", p["metadata"]["namespace"] + "/" + p["metadata"]["name"], p["status"]["phase"]) for p in json.load(sys.stdin)["items"]]'
step "Cordon, reboot and replace wait for a human" "$CTL" approvals list
APR=$("$CTL" --json approvals list | python3 -c \
    'import json,sys; print([a["id"] for a in json.load(sys.stdin)["approvals"] if a.get("target") == "10.0.10.21"][0])')
step "alice approves the cordon of 10.0.10.21 (she is not the requester; the robot re-checks policy first)" \
    "$CTL" approvals approve "$APR" --comment "demo: cordon the pressured worker"
sleep 2
echo "\$ the node on the simulated cluster"
http_get 127.0.0.1 "$KPORT" /api/v1/nodes/10.0.10.21 | sed -n '/^{/,$p' | python3 -c \
    'import json,sys; n=json.load(sys.stdin); print("   spec.unschedulable =", n["spec"].get("unschedulable", False))'
step "The incident moved on" "$CTL" incidents list
step "Every decision is in the hash-chained audit log" "$CTL" audit verify
echo "\$ GET http://127.0.0.1:$HPORT/healthz (the agent)"
http_get 127.0.0.1 "$HPORT" /healthz | tail -n 1 | cut -c1-200
echo

cat <<TXT

Where to look next:
  $CTL --help                      every command
  docs/architecture.md             how the pieces fit
  docs/policy.md                   how a decision is made, layer by layer
  docs/rules.md                    the operator rule schema and its boundaries
  docs/agent.md                    the node agent: install, configuration, health, actions
  docs/aggregator.md, docs/api.md the aggregator and its admin API
  $AGENT --help      every agent setting
  $AGG --help      every aggregator setting
TXT
