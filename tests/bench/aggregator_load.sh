#!/usr/bin/env bash
# Aggregator load benchmark (not in ctest; docs/performance.md "Aggregator"). For each agent
# count it starts the aggregator (Release build, LMDB in a temp dir, env production so only
# observe/notify actions run) and drives it with robot-sre-sim over real gRPC: N agents, each
# its own TCP connection, one batch per agent every INTERVAL, RATE signals/s in total, PRESSURE
# percent of the nodes going into DiskPressure at half time. It reports
#   - signals/s sustained: signals acknowledged / run time (an Ack is sent only after the LMDB
#     transaction holding the batch's effects committed),
#   - the sim's send-to-Ack latency p50/p99,
#   - CPU per signal: the aggregator's utime+stime (from /proc) over the run / signals acked,
#   - receipt-to-incident-open latency p50/p99 from the aggregator's histogram
#     rsre_incident_open_latency_seconds (/metrics; quantiles interpolated within buckets),
#   - RSS per node: (VmRSS after the run - VmRSS before the agents connected) / N.
# In the same run it starts prometheus-alertmanager and feeds it the same logical load (one
# alert per node per round, N nodes, batched POSTs to /api/v2/alerts, at the aggregator run's
# round rate) and reports its CPU per alert beside the aggregator's CPU per signal.
#
# Usage: tests/bench/aggregator_load.sh [BUILD_DIR]
# Environment: AGENTS ("1000 2000"), RATE (100000), DURATION (30s), INTERVAL (5s: the agent's
#   default batch_flush_ms; 1s is the stress configuration of docs/performance.md),
#   PRESSURE (1), AM_DURATION (20), AM_ROUNDS (Alertmanager rounds per second; default one per
#   INTERVAL, as the agents), RATE_PER_SEC (aggregator per-agent message rate; default the
#   aggregator's own), EXTRA_AGG_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD=${1:-$ROOT/build-bench-aggregator}
AGENTS=${AGENTS:-"1000 2000"}
RATE=${RATE:-100000}
DURATION=${DURATION:-30s}
INTERVAL=${INTERVAL:-5s}
PRESSURE=${PRESSURE:-1}
AM_DURATION=${AM_DURATION:-20}
AM_ROUNDS=${AM_ROUNDS:-}
RATE_PER_SEC=${RATE_PER_SEC:-}
EXTRA_AGG_FLAGS=${EXTRA_AGG_FLAGS:-}
AM_BIN=/usr/bin/prometheus-alertmanager

if [ ! -x "$AM_BIN" ]; then
    echo "needs prometheus-alertmanager (deploy/local/install-deps.sh --test)" >&2
    exit 2
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRSRE_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target robot-sre-aggregator robot-sre-sim >/dev/null
AGG="$BUILD/aggregator/daemon/robot-sre-aggregator"
SIM="$BUILD/aggregator/sim/robot-sre-sim"

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
field() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" <<<"$2" | head -n 1; }
wait_for() { # file pattern tries
    for _ in $(seq "$3"); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# Quantile from a Prometheus histogram (cumulative buckets), linear within the bucket.
hist_q() { # metrics-file name q
    python3 - "$1" "$2" "$3" <<'PY'
import re, sys
path, name, q = sys.argv[1], sys.argv[2], float(sys.argv[3])
b = []
for line in open(path):
    m = re.match(r'%s_bucket\{le="([^"]+)"\} (\S+)' % re.escape(name), line)
    if m:
        b.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
if not b or b[-1][1] == 0:
    print("n/a"); sys.exit()
total, want, lo, prev = b[-1][1], q * b[-1][1], 0.0, 0.0
for le, c in b:
    if c >= want:
        if le == float("inf"):
            print(">%.1f" % (lo * 1000)); sys.exit()
        frac = (want - prev) / (c - prev) if c > prev else 1.0
        print("%.1f" % ((lo + (le - lo) * frac) * 1000)); sys.exit()
    lo, prev = le, c
PY
}
hist_count() { sed -n "s/^$2_count \(.*\)/\1/p" "$1" | head -n 1; }

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
echo "aggregator: $AGG (Release); load: rate=$RATE signals/s, interval=$INTERVAL, duration=$DURATION, pressure=$PRESSURE%"
RESULTS=()
for N in $AGENTS; do
    D="$WORK/agg-$N"
    mkdir -p "$D"
    TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf 'tokens:\n  - operator: bench\n    role: viewer\n    sha256: %s\n' \
        "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$D/tokens.yaml"
    flags=(--listen=127.0.0.1:0 --data_dir="$D/data" --env=production --api_listen=127.0.0.1:0
        --api_tokens_file="$D/tokens.yaml" --kube_api=http://127.0.0.1:1 --max_connections=$((N + 100)))
    [ -n "$RATE_PER_SEC" ] && flags+=(--rate_per_sec="$RATE_PER_SEC")
    # shellcheck disable=SC2206
    flags+=($EXTRA_AGG_FLAGS)
    "$AGG" "${flags[@]}" 2>"$D/aggregator.log" &
    APID=$!
    PIDS+=("$APID")
    wait_for "$D/aggregator.log" 'msg="started ' 300 || { cat "$D/aggregator.log" >&2; exit 1; }
    GPORT=$(sed -n 's/.*msg="started .* port=\([0-9]*\) .*/\1/p' "$D/aggregator.log" | head -n 1)
    APORT=$(sed -n 's/.*admin API on .*(port \([0-9]*\)).*/\1/p' "$D/aggregator.log" | head -n 1)
    rss0=$(rss_kb "$APID")
    "$SIM" --aggregator "127.0.0.1:$GPORT" --agents "$N" --rate "$RATE" --duration "$DURATION" \
        --interval "$INTERVAL" --pressure "$PRESSURE" --connect-timeout 60s --drain 10s \
        --report 5s --log-level info >"$D/sim.out" 2>"$D/sim.log" &
    SPID=$!
    PIDS+=("$SPID")
    wait_for "$D/sim.log" 'timeline starts' 1200 || { cat "$D/sim.log" >&2; exit 1; }
    c0=$(cpu_ticks "$APID")
    t0=$(date +%s.%N)
    wait "$SPID" || true
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$APID")
    rss1=$(rss_kb "$APID")
    exec 3<>"/dev/tcp/127.0.0.1/$APORT"
    printf 'GET /metrics HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n' "$TOKEN" >&3
    cat <&3 >"$D/metrics.txt"
    exec 3<&-
    kill -TERM "$APID"; wait "$APID" 2>/dev/null || true
    sum=$(cat "$D/sim.out")
    acked=$(field signals_acked "$sum")
    persec=$(field acked_signals_per_s "$sum")
    cpu_s=$(python3 -c "print(($c1 - $c0) / $TCK)")
    cpu_us=$(python3 -c "print('%.2f' % (($c1 - $c0) / $TCK * 1e6 / max(1, $acked)))")
    util=$(python3 -c "print('%.0f' % (100 * ($c1 - $c0) / $TCK / ($t1 - $t0)))")
    p50=$(hist_q "$D/metrics.txt" rsre_incident_open_latency_seconds 0.50)
    p99=$(hist_q "$D/metrics.txt" rsre_incident_open_latency_seconds 0.99)
    nopen=$(hist_count "$D/metrics.txt" rsre_incident_open_latency_seconds)
    rss_node=$(python3 -c "print('%.1f' % (($rss1 - $rss0) / $N))")
    echo
    echo "== $N agents"
    grep '^sim:' "$D/sim.log" | sed 's/^/   /'
    echo "   sim: $sum"
    echo "   aggregator: ${persec} signals/s sustained (${acked} signals acked), CPU ${cpu_s}s over the run (${util}% of one core), ${cpu_us} us CPU/signal"
    echo "   receipt->incident open: p50=${p50} ms p99=${p99} ms over ${nopen:-0} incidents; ack p50=$(field ack_p50_ms "$sum") ms p99=$(field ack_p99_ms "$sum") ms"
    echo "   RSS: ${rss0} kB before, ${rss1} kB after: ${rss_node} kB per node"
    grep -E 'rsre_ingest_(commits|messages_committed|throttled)' "$D/metrics.txt" | sed 's/^/   /' || true
    RESULTS+=("$N $persec $cpu_us $p50 $p99 $rss_node")

    # Alertmanager, same node count, one alert per node per round at the same round rate.
    A="$WORK/am-$N"
    mkdir -p "$A/data"
    printf 'route:\n  receiver: blackhole\n  group_by: [alertname]\nreceivers:\n  - name: blackhole\n' >"$A/am.yml"
    AMPORT=$((20000 + RANDOM % 20000))
    "$AM_BIN" --config.file="$A/am.yml" --storage.path="$A/data" \
        --web.listen-address="127.0.0.1:$AMPORT" --cluster.listen-address= >"$A/am.log" 2>&1 &
    AMPID=$!
    PIDS+=("$AMPID")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$AMPORT") 2>/dev/null && break
        sleep 0.1
    done
    rounds=${AM_ROUNDS:-$(python3 -c "
import re
iv = '$INTERVAL'
ms = float(iv[:-2]) if iv.endswith('ms') else float(iv.rstrip('s')) * 1000
print(1000.0 / ms)")}
    ac0=$(cpu_ticks "$AMPID")
    amsum=$(python3 tests/bench/alertmanager_load.py --port "$AMPORT" --nodes "$N" \
        --duration "$AM_DURATION" --rounds-per-sec "$rounds")
    ac1=$(cpu_ticks "$AMPID")
    kill -TERM "$AMPID"; wait "$AMPID" 2>/dev/null || true
    alerts=$(field alerts "$amsum")
    am_us=$(python3 -c "print('%.2f' % (($ac1 - $ac0) / $TCK * 1e6 / max(1, $alerts)))")
    ratio=$(python3 -c "print('%.1f' % ($am_us / max(0.001, $cpu_us)))")
    echo "   alertmanager: $amsum"
    echo "   alertmanager: $(python3 -c "print(($ac1 - $ac0) / $TCK)")s CPU, ${am_us} us CPU/alert; aggregator CPU/signal is 1/${ratio} of it"
    RESULTS[-1]+=" $am_us $ratio"
done
echo
echo "agents signals/s cpu_us/signal open_p50_ms open_p99_ms rss_kB/node am_cpu_us/alert ratio"
printf '%s\n' "${RESULTS[@]}"
