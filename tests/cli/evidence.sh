#!/usr/bin/env bash
# robotctl evidence classify end to end: table and JSON-lines output, stdin, exit codes (1 when a
# record failed to parse, the others still classified), usage errors, the pattern table.
# Args: BUILD_DIR SOURCE_DIR
set -uo pipefail
BUILD=$1
SRC=$2
CTL="$BUILD/aggregator/robotctl/robotctl"
CORPUS="$SRC/tests/data/evidence/corpus.jsonl"
. "$2/tests/support/cli_check.sh"

records=$(grep -c . "$CORPUS")

# The corpus: every record classified, exit 0, a row per record and a summary.
check "corpus table" 0 "$CTL" evidence classify "$CORPUS"
contains "corpus table" "Line  Kind"
contains "corpus table" "Contribution"
contains "corpus table" "kubelet.event.free_disk_space_failed: reason \"FreeDiskSpaceFailed\""
contains "corpus table" "$records records:"
contains "corpus table" " 0 errors"
for cls in node_disk_pressure node_unreachable_or_notready registry_pull_failure \
    runtime_dependency_outage ingress_configuration_drift identity_provider_unreachable \
    http_error_rate_spike database_connectivity_degraded release_drift_or_partial_apply \
    background_job_buildup chatops_delivery_failure; do
    contains "corpus table has $cls" "$cls"
done
rows=$(grep -cE '^[0-9]+ +(k8s_event|node|pod|log_line|http_response|helm_release|probe_result|chat_delivery) ' <<<"$out")
[ "$rows" = "$records" ] || { echo "FAIL: corpus table: $rows rows for $records records"; fails=$((fails + 1)); }

# JSON lines: one object per record, the fields scripts rely on, agreeing with each expect.
check "corpus json" 0 "$CTL" --json evidence classify "$CORPUS"
printf '%s\n' "$out" >"$TMP/out.jsonl"
python3 - "$CORPUS" "$TMP/out.jsonl" <<'EOF' || { echo "FAIL: corpus json shape"; fails=$((fails + 1)); }
import json, sys
want = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
got = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
assert len(got) == len(want), (len(got), len(want))
for w, g in zip(want, got):
    assert g["ok"] is True and g["kind"] == w["kind"], g
    assert set(g) >= {"line", "incident", "severity", "contribution", "rule", "field", "span", "also"}, g
    e = w["expect"]
    if not e.get("known_miss"):
        assert g["incident"] == e["type"], (w["id"], g)
    if g["incident"] == "none":
        assert g["contribution"] is None and g["severity"] == "info", g
    else:
        assert g["contribution"] in ("weak", "strong", "direct") and g["rule"], g
    if e.get("benign"):
        assert g["incident"] == "none" or g["contribution"] == "weak", (w["id"], g)
EOF

# --json after the verb, and stdin by '-' and by default.
check "json after verb" 0 "$CTL" evidence classify "$CORPUS" --json
head -c 1 <<<"$out" | grep -q '{' || { echo "FAIL: --json after verb not JSON"; fails=$((fails + 1)); }
check "stdin dash" 0 bash -c "head -n 3 '$CORPUS' | '$CTL' evidence classify -"
contains "stdin dash" "3 records:"
check "stdin default" 0 bash -c "tail -n 2 '$CORPUS' | '$CTL' --json evidence classify"
[ "$(grep -c '"ok":true' <<<"$out")" = 2 ] || { echo "FAIL: stdin default"; fails=$((fails + 1)); }

# A broken record: exit 1, a clear per-record error, the rest still classified.
{
    echo '{"kind":"probe_result","object":{"dependency":"postgres","ok":false,"error":"FATAL:  sorry, too many clients already"}}'
    echo 'this is not json'
    echo ''
    echo '{"kind":"probe_result","object":{"dependency":"mysql","ok":false}}'
    printf '%s\r\n' '{"kind":"chat_delivery","object":{"channel":"telegram","status":403,"body":"{\"ok\":false,\"error_code\":403,\"description\":\"Forbidden: bot was blocked by the user\"}"}}'
    printf '%s' '{"kind":"log_line","object":{"line":"Ready to accept connections"}}'
} >"$TMP/mixed.jsonl"
check "mixed table" 1 "$CTL" evidence classify "$TMP/mixed.jsonl"
contains "mixed table" "database_connectivity_degraded  critical  direct"
contains "mixed table" "not JSON"
contains "mixed table" "object.dependency: unknown value \"mysql\""
contains "mixed table" "chatops_delivery_failure"
contains "mixed table" "benign benign.server_ready"
contains "mixed table" "5 records: 2 classified to an incident, 1 none, 2 errors"
check "mixed json" 1 "$CTL" --json evidence classify "$TMP/mixed.jsonl"
python3 -c '
import json, sys
got = [json.loads(l) for l in sys.argv[1].splitlines()]
assert [g["line"] for g in got] == [1, 2, 4, 5, 6], got
assert [g["ok"] for g in got] == [True, False, False, True, True], got
assert got[1]["error"].startswith("not JSON") and got[2]["kind"] == "probe_result", got
assert got[3]["incident"] == "chatops_delivery_failure" and got[3]["contribution"] == "direct", got
assert got[4]["incident"] == "none" and got[4]["rule"] == "benign.server_ready", got
' "$out" || { echo "FAIL: mixed json"; echo "$out"; fails=$((fails + 1)); }

# A line over the 1 MiB limit is an error for that line only.
python3 -c '
import sys
sys.stdout.write("{\"kind\":\"log_line\",\"object\":{\"line\":\"" + "a" * (1 << 20) + "\"}}\n")
sys.stdout.write("{\"kind\":\"log_line\",\"object\":{\"line\":\"manifest unknown\"}}\n")' >"$TMP/big.jsonl"
check "overlong line" 1 "$CTL" evidence classify "$TMP/big.jsonl"
contains "overlong line" "longer than 1048576 bytes"
contains "overlong line" "registry_pull_failure"

# An empty input is fine.
check "empty input" 0 "$CTL" evidence classify /dev/null
contains "empty input" "0 records"

# Errors of the command line and of the file.
check "missing file" 1 "$CTL" evidence classify "$TMP/nope.jsonl"
contains "missing file" "cannot open"
check "two files" 2 "$CTL" evidence classify "$CORPUS" "$CORPUS"
contains "two files" "at most one FILE"
check "unknown option" 2 "$CTL" evidence classify --frob
contains "unknown option" "unknown option '--frob'"
check "markdown alone" 2 "$CTL" evidence classify --markdown
check "patterns with file" 2 "$CTL" evidence classify --patterns "$CORPUS"
check "help" 0 "$CTL" evidence classify --help
contains "help" "usage: robotctl evidence classify"
check "global help" 0 "$CTL" --help
contains "global help" "evidence classify"

# The pattern table, as a table, as JSON and as markdown for the docs.
check "patterns" 0 "$CTL" evidence classify --patterns
contains "patterns" "pattern rows"
contains "patterns" "kubelet.event.free_disk_space_failed"
check "patterns json" 0 "$CTL" --json evidence classify --patterns
python3 -c '
import json, sys
rows = json.loads(sys.argv[1])
assert len(rows) > 100 and len({r["id"] for r in rows}) == len(rows)
classes = {r["incident"] for r in rows} - {"(benign marker)"}
assert len(classes) == 11, classes
' "$out" || { echo "FAIL: patterns json"; fails=$((fails + 1)); }
check "patterns markdown" 0 "$CTL" evidence classify --patterns --markdown
contains "patterns markdown" "| id | kinds | field | match | incident | severity | strength |"
lacks "patterns markdown" "pattern rows"

finish "evidence classify"
