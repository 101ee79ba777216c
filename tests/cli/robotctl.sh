#!/usr/bin/env bash
# robotctl end to end: exit codes, tables, JSON shape, clear errors. Args: BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
SRC=$2
CTL="$BUILD/aggregator/robotctl/robotctl"
. "$2/tests/support/cli_check.sh"
check "help" 0 "$CTL" --help; contains "help" "policy preview"
check "no args" 2 "$CTL"
check "unknown command" 2 "$CTL" policy frobnicate; contains "unknown command" "unknown command 'policy frobnicate'"
check "unknown option" 2 "$CTL" --frob
check "matrix" 0 "$CTL" policy matrix; contains "matrix" "node_disk_pressure"
contains "matrix" "limited restart in demo/staging"
check "matrix json" 0 "$CTL" --json policy matrix
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert len(d["rows"])==11; assert d["rows"][0]["auto_contain"]=="yes, allowlist only"' "$out" \
    || { echo "FAIL: matrix json shape"; fails=$((fails + 1)); }
check "matrix bad env" 2 "$CTL" policy matrix --env prod; contains "bad env" "unknown environment 'prod'"
check "preview" 0 "$CTL" policy preview --incident node_disk_pressure --action reboot_worker --env production
contains "preview" "approval_required (2 approvers"
check "preview json" 0 "$CTL" policy preview --incident node_disk_pressure --action delete_pvc --env demo --json
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["decision"]=="denied" and d["reasons"]' "$out" \
    || { echo "FAIL: preview json"; echo "$out"; fails=$((fails + 1)); }
check "preview missing flags" 2 "$CTL" policy preview --incident node_disk_pressure
check "preview unknown action" 2 "$CTL" policy preview --incident node_disk_pressure --action nuke --env demo
contains "unknown action" "unknown action 'nuke'"
check "preview bad confidence" 2 "$CTL" policy preview --incident node_disk_pressure --action cordon_node --env demo --confidence sure
check "preview flag without value" 2 "$CTL" policy preview --incident node_disk_pressure --action cordon_node --env
check "preview bad last-run" 2 "$CTL" policy preview --incident node_disk_pressure --action cordon_node --env demo --last-run-ago -5
check "preview cooldown" 0 "$CTL" policy preview --incident node_disk_pressure --action cordon_node --env demo --last-run-ago 60
contains "cooldown" "cooldown active"
check "preview bad rules dir" 1 "$CTL" policy preview --incident node_disk_pressure --action cordon_node --env demo --rules /nonexistent
check "validate good" 0 "$CTL" rules validate "$SRC/deploy/local/rules/demo-disk-pressure.yaml"
check "validate unsafe" 1 "$CTL" rules validate "$SRC/deploy/local/rules/unsafe-example.yaml"
contains "validate unsafe" "cannot be made auto-allowed"
check "validate json" 1 "$CTL" --json rules validate "$SRC/deploy/local/rules/unsafe-example.yaml"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d[0]["ok"] is False and d[0]["line"]==10 and d[0]["field"].endswith(".mode")' "$out" \
    || { echo "FAIL: validate json"; echo "$out"; fails=$((fails + 1)); }
check "validate same file twice" 1 "$CTL" rules validate "$SRC/deploy/local/rules/demo-disk-pressure.yaml" "$SRC/deploy/local/rules/demo-disk-pressure.yaml"
contains "duplicate" "already exists"
check "validate missing file" 1 "$CTL" rules validate /nonexistent.yaml; contains "missing" "cannot open"
check "validate no files" 2 "$CTL" rules validate
check "taxonomy" 0 "$CTL" taxonomy show; contains "taxonomy" "11 incident classes"
check "taxonomy one" 0 "$CTL" --json taxonomy show chatops_delivery_failure
check "taxonomy unknown" 2 "$CTL" taxonomy show nope
finish "robotctl"
