# Shared by the shell tests of tests/cli (sourced after `set -uo pipefail`; it lives here, not in
# tests/cli, because every tests/cli/*.sh is a test). It gives:
#   $TMP              a fresh temp dir, removed at exit;
#   $daemon_pid       set it to the pid of a daemon the test starts: SIGTERM and reaped at exit;
#   fails             the number of failed checks (fail "message" counts one);
#   check WHAT RC CMD...   runs CMD, its stdout+stderr in $out; a failure unless it exits RC;
#   contains WHAT NEEDLE / lacks WHAT NEEDLE   $out has / has not the fixed string;
#   json WHAT EXPR    a Python expression over d = $out parsed as JSON must hold;
#   finish LABEL      prints the summary and exits 1 when a check failed, else 0.
# A failed check shows the first 20 lines of $out (CLI_SHOW=tail before sourcing: the last).
TMP=$(mktemp -d)
daemon_pid=""
cli_cleanup() {
    if [ -n "$daemon_pid" ]; then
        kill -TERM "$daemon_pid" 2>/dev/null
        wait "$daemon_pid" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cli_cleanup EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cli_show() { echo "$out" | "${CLI_SHOW:-head}" -20; }
check() { # description, expected exit, command...
    local what=$1 want=$2
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$what: exit $rc, want $want"; cli_show
    fi
}
contains() { # description, needle
    if ! grep -qF -- "$2" <<<"$out"; then
        fail "$1: output lacks '$2'"; cli_show
    fi
}
lacks() { # description, needle
    if grep -qF -- "$2" <<<"$out"; then
        fail "$1: output has '$2'"; cli_show
    fi
}
json() { # description, python expression over d
    if ! python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert $2, d" "$out" 2>/dev/null; then
        fail "$1: JSON check failed: $2"; cli_show
    fi
}
finish() { # label
    if [ "$fails" -gt 0 ]; then
        echo "$fails check(s) failed"; exit 1
    fi
    echo "$1: all checks passed"
    exit 0
}
