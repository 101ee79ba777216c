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
cmake --build "$BUILD" -j"$(nproc)" --target robotctl robot-sre-agent >/dev/null
CTL="$BUILD/aggregator/robotctl/robotctl"
AGENT="$BUILD/agent/robot-sre-agent"

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

# The node agent on this host: it reads the real filesystems, kernel log and pressure stall
# information here (and the container runtime and Kubernetes API when they exist), and spools
# its signals while no aggregator is reachable.
http_get() { # host port path
    exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\n\r\n' "$3" >&3 && cat <&3 && exec 3<&-
}
WORK=$(mktemp -d)
trap 'kill "$AGENT_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
printf '\n\033[1m== The node agent, on this host for 12 seconds\033[0m\n'
"$AGENT" --node_name="$(hostname)" --aggregator=127.0.0.1:1 --kubelet_root=/ \
    --runtime_root=/var/lib --spool_dir="$WORK/spool" --health_addr=127.0.0.1:10258 \
    --filesystem_ms=2000 --psi_ms=2000 --log_level=warn 2>"$WORK/agent.log" &
AGENT_PID=$!
sleep 12
echo "\$ GET http://127.0.0.1:10258/healthz"
http_get 127.0.0.1 10258 /healthz | tail -n 1 | python3 -m json.tool 2>/dev/null || true
echo "\$ GET http://127.0.0.1:10258/metrics (excerpt)"
http_get 127.0.0.1 10258 /metrics | grep -E '^rsre_agent_(signals|batches|spool_batches|collector_runs)' || true
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
echo "(no aggregator runs yet in this demo: the agent kept its batches in its spool; log: warnings only)"

cat <<TXT

Where to look next:
  $CTL --help                      every command
  docs/architecture.md             how the pieces fit
  docs/policy.md                   how a decision is made, layer by layer
  docs/rules.md                    the operator rule schema and its boundaries
  docs/agent.md                    the node agent: install, configuration, health, actions
  $AGENT --help      every agent setting
TXT
