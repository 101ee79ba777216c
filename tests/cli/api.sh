#!/usr/bin/env bash
# robotctl against a running admin API: the integration test binary in serve mode
# (tests/integration/test_admin_api.c --serve DIR: a seeded store, a token file, 127.0.0.1 on a
# free port). Tables, --json, votes, audit, rules, and clear errors for 401/403/404/409, a
# refused connection and bad ids. Args: BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
CTL="$BUILD/aggregator/robotctl/robotctl"
SERVER_BIN="$BUILD/tests/test_admin_api"
. "$2/tests/support/cli_check.sh"

"$SERVER_BIN" --serve "$TMP" >"$TMP/server.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    [ -s "$TMP/port" ] && break
    sleep 0.1
done
if [ ! -s "$TMP/port" ]; then
    echo "FAIL: the API server did not start"; cat "$TMP/server.log"; exit 1
fi
PORT=$(cat "$TMP/port")
S=(--server "http://127.0.0.1:$PORT")
V=(--token-file "$TMP/token.viewer")
A=(--token-file "$TMP/token.approver")
A2=(--token-file "$TMP/token.approver2")

# Incidents.
check "incidents list" 0 "$CTL" incidents list "${S[@]}" "${V[@]}"
contains "incidents list" "inc-1  node_disk_pressure"
contains "incidents list" "3 incident(s)"
check "incidents list open" 0 "$CTL" incidents list --state open "${S[@]}" "${V[@]}"
contains "incidents list open" "2 incident(s)"
check "incidents list json" 0 "$CTL" --json incidents list --type registry_pull_failure "${S[@]}" "${V[@]}"
json "incidents list json" 'd["count"] == 1 and d["incidents"][0]["id"] == "inc-2"'
check "incidents show" 0 "$CTL" incidents show inc-1 "${S[@]}" "${V[@]}"
contains "incidents show" "Evidence timeline"
contains "incidents show" "first sample"
contains "incidents show" "prune_unused_images  worker-1  auto"
check "incidents show json" 0 "$CTL" incidents show inc-1 --json "${S[@]}" "${V[@]}"
json "incidents show json" '[e["id"] for e in d["evidence"]] == ["ev-b", "ev-a"]'
check "incidents show unknown" 1 "$CTL" incidents show inc-404 "${S[@]}" "${V[@]}"
contains "incidents show unknown" "404 not found: incident inc-404"
check "incidents bad state" 1 "$CTL" incidents list --state sideways "${S[@]}" "${V[@]}"
contains "incidents bad state" "unknown state 'sideways'"

# Environment instead of flags.
check "env server+token" 0 env ROBOT_SRE_SERVER="http://127.0.0.1:$PORT" \
    ROBOT_SRE_TOKEN="$(cat "$TMP/token.viewer")" "$CTL" incidents list
contains "env server+token" "3 incident(s)"
check "env token file" 0 env ROBOT_SRE_SERVER="http://127.0.0.1:$PORT" \
    ROBOT_SRE_TOKEN_FILE="$TMP/token.viewer" "$CTL" approvals list
contains "env token file" "apr-1"

# Approvals: list, approve, deny, refusals.
check "approvals list" 0 "$CTL" approvals list --state pending "${S[@]}" "${V[@]}"
contains "approvals list" "2 approval(s)"
check "approve as viewer" 1 "$CTL" approvals approve apr-1 "${S[@]}" "${V[@]}"
contains "approve as viewer" "403 forbidden: this needs the approver role; victor has the viewer role"
check "approve own request" 1 "$CTL" approvals approve apr-2 "${S[@]}" "${A[@]}"
contains "approve own request" "403 forbidden: alice requested this approval"
check "approve" 0 "$CTL" approvals approve apr-1 --comment "disk is full, go" "${S[@]}" "${A[@]}"
contains "approve" "approval apr-1: approve recorded for alice; the approval is now approved"
check "approve again" 1 "$CTL" approvals approve apr-1 "${S[@]}" "${A2[@]}"
contains "approve again" "409"
check "deny json" 0 "$CTL" --json approvals deny apr-2 --comment "not now" "${S[@]}" "${A2[@]}"
json "deny json" 'd["state"] == "denied" and d["operator"] == "bob"'
check "approve unknown" 1 "$CTL" approvals approve apr-404 "${S[@]}" "${A[@]}"
contains "approve unknown" "404 not found: approval apr-404"
check "approve bad id" 2 "$CTL" approvals approve ../../rules "${S[@]}" "${A[@]}"
contains "approve bad id" "is not a valid id"
check "approve no id" 2 "$CTL" approvals approve "${S[@]}" "${A[@]}"

# Audit.
check "audit list" 0 "$CTL" audit list --limit 2 "${S[@]}" "${V[@]}"
contains "audit list" "incident.open"
contains "audit list" "more: robotctl audit list --from 3"
check "audit list json" 0 "$CTL" --json audit list --from 4 "${S[@]}" "${V[@]}"
json "audit list json" 'any(r["verb"] == "approval.vote" and r["actor"] == "alice" for r in d["records"])'
check "audit verify" 0 "$CTL" audit verify "${S[@]}" "${V[@]}"
contains "audit verify" "audit log OK"
check "audit verify json" 0 "$CTL" --json audit verify "${S[@]}" "${V[@]}"
json "audit verify json" 'd["ok"] is True and d["count"] >= 5'

# Rules.
check "rules list" 0 "$CTL" rules list "${S[@]}" "${V[@]}"
contains "rules list" "demo-disk-pressure-early"
contains "rules list" "builtin.node_disk_pressure"
check "rules show" 0 "$CTL" rules show demo-disk-pressure-early "${S[@]}" "${V[@]}"
contains "rules show" "latest version 1 by adam"
contains "rules show" "threshold_expression:"
check "rules show builtin" 0 "$CTL" rules show builtin.node_disk_pressure "${S[@]}" "${V[@]}"
contains "rules show builtin" "(built-in)"
check "rules show unknown" 1 "$CTL" rules show nope "${S[@]}" "${V[@]}"
contains "rules show unknown" "404 not found: rule nope"
check "rules validate still local" 2 "$CTL" rules validate

# Clear errors: no token, a wrong token, a refused connection, bad flags.
check "no token" 1 env -u ROBOT_SRE_TOKEN -u ROBOT_SRE_TOKEN_FILE "$CTL" incidents list "${S[@]}"
contains "no token" "401 unauthorized: missing bearer token"
echo "not-a-real-token" >"$TMP/wrong"
check "wrong token" 1 "$CTL" incidents list "${S[@]}" --token-file "$TMP/wrong"
contains "wrong token" "401 unauthorized: unknown token"
check "missing token file" 2 "$CTL" incidents list "${S[@]}" --token-file "$TMP/nope"
contains "missing token file" "cannot open token file"
check "refused" 1 "$CTL" incidents list --server http://127.0.0.1:1 "${V[@]}"
contains "refused" "cannot connect to http://127.0.0.1:1"
contains "refused" "is the aggregator running?"
check "bad server url" 2 "$CTL" incidents list --server ftp://x "${V[@]}"
check "unknown flag" 2 "$CTL" incidents list --frob 1 "${S[@]}" "${V[@]}"
check "flag without value" 2 "$CTL" incidents list "${S[@]}" "${V[@]}" --state

# The server shuts down cleanly on SIGTERM.
kill -TERM "$daemon_pid"
wait "$daemon_pid"
src=$?
daemon_pid=""
if [ "$src" != 0 ]; then
    echo "FAIL: the API server exited with $src"; tail -20 "$TMP/server.log"; fails=$((fails + 1))
fi

finish "api CLI"
