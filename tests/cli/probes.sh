#!/usr/bin/env bash
# robot-sre-aggregator with --probes_file: a real redis-server probed by the daemon; killing it
# opens runtime_dependency_outage at dependency/<name> through the engine (logged), restarting it
# recovers the probe; the password never appears in the log; SIGTERM exits 0 with probes in
# flight. A broken probes file stops the daemon with PATH:LINE:COL.
# Args: BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
AGG="$BUILD/aggregator/daemon/robot-sre-aggregator"
REDIS=/usr/bin/redis-server
TMP=$(mktemp -d /tmp/rsre-probe-cli-XXXXXX)
AGG_PID=""
REDIS_PID=""
cleanup() {
    [ -n "$AGG_PID" ] && kill -KILL "$AGG_PID" 2>/dev/null && wait "$AGG_PID" 2>/dev/null
    [ -n "$REDIS_PID" ] && kill -KILL "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; tail -20 "$TMP/agg.log" 2>/dev/null; fails=$((fails + 1)); }
[ -x "$REDIS" ] || { echo "FAIL: redis-server not installed (install-deps.sh --test)"; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_redis() {
    "$REDIS" --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" \
        --requirepass cli-secret-pw >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
wait_log() { # needle, seconds
    for _ in $(seq $(($2 * 10))); do
        grep -qF -- "$1" "$TMP/agg.log" && return 0
        sleep 0.1
    done
    return 1
}

printf 'cli-secret-pw\n' >"$TMP/redis.pass"
cat >"$TMP/probes.yaml" <<YAML
probes:
  - kind: redis
    name: cache
    host: 127.0.0.1
    port: $PORT
    password_file: redis.pass
    interval: 1s
    timeout: 500ms
    threshold: 1
    core: true
YAML
start_redis || fail "redis did not start"

"$AGG" --env demo --data_dir "$TMP/data" --listen 127.0.0.1:0 --api_listen 127.0.0.1:0 \
    --observe false --probes_file "$TMP/probes.yaml" >"$TMP/agg.log" 2>&1 &
AGG_PID=$!
wait_log "started probes=1" 10 || fail "probes not started"
sleep 1.5
grep -q "probe=cache.*failing" "$TMP/agg.log" && fail "probe failing while redis is up"

kill -KILL "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=""
wait_log "probe=cache kind=redis failing after 1 failures code=ECONNREFUSED" 10 ||
    fail "no probe failure after redis was killed"
wait_log "incident opened" 10 || fail "no incident opened"
grep -q "fingerprint=runtime_dependency_outage/dependency/cache" "$TMP/agg.log" ||
    fail "incident is not runtime_dependency_outage at dependency/cache"
grep -q "severity critical" "$TMP/agg.log" || fail "core dependency down is not critical"

start_redis || fail "redis did not restart"
wait_log "probe=cache kind=redis recovered" 10 || fail "probe did not recover"
grep -q "cli-secret-pw" "$TMP/agg.log" && fail "the password appears in the log"

kill -TERM "$AGG_PID"
for _ in $(seq 100); do kill -0 "$AGG_PID" 2>/dev/null || break; sleep 0.1; done
wait "$AGG_PID"; rc=$?
AGG_PID=""
[ "$rc" = 0 ] || fail "SIGTERM exit $rc"
grep -q "Sanitizer" "$TMP/agg.log" && fail "sanitizer report in the daemon's log"

# A broken probes file: the daemon refuses to start and names the place.
printf 'probes:\n  - kind: redis\n    name: cache\n    host: 127.0.0.1\n    port: 70000\n' >"$TMP/bad.yaml"
timeout 30 "$AGG" --env demo --data_dir "$TMP/data2" --listen 127.0.0.1:0 --api_listen 127.0.0.1:0 \
    --observe false --probes_file "$TMP/bad.yaml" >"$TMP/bad.log" 2>&1
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "broken probes file: exit $rc"
grep -qF "$TMP/bad.yaml:5:11: port: expected an integer in [1, 65535]" "$TMP/bad.log" ||
    { fail "broken probes file: no PATH:LINE:COL message"; cat "$TMP/bad.log"; }
grep -q "Sanitizer" "$TMP/bad.log" && fail "sanitizer report after the refused start"

[ "$fails" = 0 ] && echo "probes CLI: all checks passed"
exit $((fails > 0))
