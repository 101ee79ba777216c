#!/usr/bin/env bash
# robotctl rules (clone, edit, enable, disable, preview, test, show), agents and backup against
# the real robot-sre-aggregator (demo mode, store in a temp dir, admin API on 127.0.0.1 port 0):
# tables, --json, and clear errors (403 with the role, 404, 400 naming the field, 409, usage
# errors with exit 2, a refused connection). Args: BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
CTL="$BUILD/aggregator/robotctl/robotctl"
AGG="$BUILD/aggregator/daemon/robot-sre-aggregator"
. "$2/tests/support/cli_check.sh"

# Identities: adam (admin), victor (viewer).
{
    echo "tokens:"
    for r in admin:adam viewer:victor; do
        role=${r%%:*} op=${r##*:}
        printf 'cli-token-%s-0123456789' "$op" >"$TMP/token.$role"
        printf '  - operator: %s\n    role: %s\n    sha256: %s\n' "$op" "$role" \
            "$(sha256sum <"$TMP/token.$role" | cut -d' ' -f1)"
    done
} >"$TMP/tokens.yaml"

"$AGG" --listen=127.0.0.1:0 --api_listen=127.0.0.1:0 --env=demo --data_dir="$TMP/store" \
    --api_tokens_file="$TMP/tokens.yaml" --kube_api=http://127.0.0.1:1 >"$TMP/agg.log" 2>&1 &
daemon_pid=$!
PORT=""
for _ in $(seq 300); do
    PORT=$(grep -o 'admin API on [^ ]* (port [0-9]*' "$TMP/agg.log" | grep -o '[0-9]*$')
    [ -n "$PORT" ] && break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    echo "FAIL: the aggregator did not start"; cat "$TMP/agg.log"; exit 1
fi
S=(--server "http://127.0.0.1:$PORT")
A=(--token-file "$TMP/token.admin")
V=(--token-file "$TMP/token.viewer")

# Clone a built-in: starts disabled.
check "clone" 0 "$CTL" rules clone builtin.node_disk_pressure ndp-cli --comment "cli test" "${S[@]}" "${A[@]}"
contains "clone" "rule ndp-cli: version 1 stored (clone; was version 0), enabled in: off"
check "clone again" 1 "$CTL" rules clone builtin.node_disk_pressure ndp-cli --comment "again" "${S[@]}" "${A[@]}"
contains "clone again" "409"
check "clone as viewer" 1 "$CTL" rules clone builtin.node_disk_pressure ndp-v --comment "x" "${S[@]}" "${V[@]}"
contains "clone as viewer" "403 forbidden: this needs the admin role; victor has the viewer role"
check "clone without comment" 2 "$CTL" rules clone builtin.node_disk_pressure ndp-y "${S[@]}" "${A[@]}"
contains "clone without comment" "--comment is required"
check "clone unknown" 1 "$CTL" rules clone builtin.nothing ndp-z --comment "x" "${S[@]}" "${A[@]}"
contains "clone unknown" "404 not found: rule builtin.nothing"
check "clone bad id" 2 "$CTL" rules clone builtin.node_disk_pressure ../x --comment "x" "${S[@]}" "${A[@]}"
contains "clone bad id" "is not a valid id"

# Edit thresholds and routing; a boundary is refused naming the field, nothing stored.
check "edit" 0 "$CTL" rules edit ndp-cli --comment "earlier" --threshold "nodefs.used_ratio > 90%" \
    --channels inapp --route ops-demo --cooldown 600 "${S[@]}" "${A[@]}"
contains "edit" "version 2 stored (patch"
check "edit route only" 0 "$CTL" rules edit ndp-cli --comment "other room" --route ops-2 "${S[@]}" "${A[@]}"
check "edit below floor" 1 "$CTL" rules edit ndp-cli --comment "faster" --cooldown 10 "${S[@]}" "${A[@]}"
contains "edit below floor" "below the floor of 60s"
contains "edit below floor" "(field cooldown_seconds)"
check "edit bad expression" 1 "$CTL" rules edit ndp-cli --comment "x" --threshold "nope >" "${S[@]}" "${A[@]}"
contains "edit bad expression" "(field threshold_expression)"
check "edit nothing" 2 "$CTL" rules edit ndp-cli --comment "x" "${S[@]}" "${A[@]}"
contains "edit nothing" "nothing to change"
check "edit builtin" 1 "$CTL" rules edit builtin.node_disk_pressure --comment "x" --severity critical "${S[@]}" "${A[@]}"
contains "edit builtin" "clone it under a new id"
check "edit bad cooldown" 2 "$CTL" rules edit ndp-cli --comment "x" --cooldown soon "${S[@]}" "${A[@]}"
contains "edit bad cooldown" "--cooldown wants a number of seconds"

# Enable / disable per environment.
check "enable demo" 0 "$CTL" rules enable ndp-cli --env demo --comment "try it" "${S[@]}" "${A[@]}"
contains "enable demo" "enabled in: demo"
check "enable demo again" 1 "$CTL" rules enable ndp-cli --env demo --comment "again" "${S[@]}" "${A[@]}"
contains "enable demo again" "already enabled in demo"
check "enable all" 0 "$CTL" --json rules enable ndp-cli --env all --comment "everywhere" "${S[@]}" "${A[@]}"
json "enable all" 'd["enabled"] == {"demo": True, "staging": True, "production": True} and d["version"] == 5'
check "disable production" 0 "$CTL" rules disable ndp-cli --env production --comment "not prod" "${S[@]}" "${A[@]}"
contains "disable production" "enabled in: demo,staging"
check "enable bad env" 1 "$CTL" rules enable ndp-cli --env mars --comment "x" "${S[@]}" "${A[@]}"
contains "enable bad env" "(field env)"
check "enable no env" 2 "$CTL" rules enable ndp-cli --comment "x" "${S[@]}" "${A[@]}"

# Show: every version with its comment.
check "show" 0 "$CTL" rules show ndp-cli "${S[@]}" "${V[@]}"
contains "show" "latest version 6 by adam"
contains "show" "not prod"
contains "show" '"route": "ops-2"'
contains "show" '"channels": ['
check "show json" 0 "$CTL" --json rules show ndp-cli "${S[@]}" "${V[@]}"
json "show json" 'len(d["versions"]) == 6 and d["versions"][0]["cloned_from"] == "builtin.node_disk_pressure"'
check "list" 0 "$CTL" rules list "${S[@]}" "${V[@]}"
contains "list" "ndp-cli"

# Preview and test.
check "preview" 0 "$CTL" rules preview ndp-cli --action cordon_node --env production "${S[@]}" "${V[@]}"
contains "preview" "approval_required"
contains "preview" "LAYER"
check "preview json" 0 "$CTL" --json rules preview ndp-cli --action reboot_worker --env demo --confidence low "${S[@]}" "${V[@]}"
json "preview json" 'd["decision"] != "auto" and len(d["reasons"]) >= 1'
check "preview no action" 2 "$CTL" rules preview ndp-cli --env demo "${S[@]}" "${V[@]}"
check "preview bad action" 1 "$CTL" rules preview ndp-cli --action fly --env demo "${S[@]}" "${V[@]}"
contains "preview bad action" "(field action)"
check "test" 0 "$CTL" rules test ndp-cli "${S[@]}" "${V[@]}"
contains "test" "rule ndp-cli: nodefs.used_ratio > 90%"
contains "test" "0 would match"
contains "test" "escalation to critical when count(node.disk_pressure == 1) >= 2: would hold in 0 incident(s)"
check "test json" 0 "$CTL" --json rules test ndp-cli --limit 5 "${S[@]}" "${V[@]}"
json "test json" 'd["incidents_tested"] == 0 and d["matches"] == []'
check "test bad limit" 2 "$CTL" rules test ndp-cli --limit 0 "${S[@]}" "${V[@]}"

# Agents (none connected here; the integration test covers one with its seq).
check "agents" 0 "$CTL" agents list "${S[@]}" "${V[@]}"
contains "agents" "NODE  CONNECTED  LAST SEEN  BOOT ID  SEQ"
check "agents json" 0 "$CTL" --json agents list "${S[@]}" "${V[@]}"
json "agents json" 'd["agents"] == []'

# Audit: every change is there with who and why, and the chain verifies.
check "audit" 0 "$CTL" --json audit list --limit 100 "${S[@]}" "${V[@]}"
json "audit" 'sum(1 for r in d["records"] if r["verb"] == "rule change" and r["actor"] == "adam") == 6'
json "audit why" 'any(r["reason"] == "not prod" for r in d["records"])'
check "audit verify" 0 "$CTL" audit verify "${S[@]}" "${V[@]}"

# Backup, directly on the data directory while the daemon runs.
check "backup" 0 "$CTL" backup store --data-dir "$TMP/store" --to "$TMP/backup1"
contains "backup" "verified"
contains "backup" "6 rule version(s)"
check "backup json" 0 "$CTL" --json backup store --data-dir "$TMP/store" --to "$TMP/backup2"
json "backup json" 'd["verified"] is True and d["rules"] == 6'
check "backup exists" 1 "$CTL" backup store --data-dir "$TMP/store" --to "$TMP/backup1"
contains "backup exists" "already holds a store"
check "backup no store" 1 "$CTL" backup store --data-dir "$TMP/nothing-here" --to "$TMP/backup3"
contains "backup no store" "cannot open the store"
check "backup usage" 2 "$CTL" backup store --to "$TMP/backup4"

# No server.
check "no server" 1 "$CTL" rules test ndp-cli --server http://127.0.0.1:1 "${V[@]}"
contains "no server" "cannot connect"

finish "rules CLI"
