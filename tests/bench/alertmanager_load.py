#!/usr/bin/python3
"""Alertmanager load generator for tests/bench/aggregator_load.sh (docs/performance.md).

Feeds a running prometheus-alertmanager the same logical load robot-sre-sim feeds the
aggregator: NODES simulated nodes, one alert per node per round (a node filesystem alert whose
annotation carries the round's usage value, so every alert is a new state), POSTed in batches of
BATCH alerts to /api/v2/alerts over keep-alive HTTP/1.1 connections, one per worker thread.
Rounds run back to back for DURATION seconds, or at ROUNDS_PER_SEC when given (the pace of the
aggregator run). Prints one line: "summary alerts=... posts=... errors=... seconds=...
alerts_per_s=...".

Usage: alertmanager_load.py --port PORT --nodes N --duration SECONDS
                            [--batch 500] [--workers 2] [--rounds-per-sec R]
"""
import argparse
import datetime
import http.client
import json
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds-per-sec", type=float, default=0)
    a = ap.parse_args()
    if a.nodes < 1 or a.batch < 1 or a.workers < 1 or a.duration <= 0:
        ap.error("nodes, batch, workers and duration must be positive")

    names = ["sim-%05d" % (i + 1) for i in range(a.nodes)]
    lock = threading.Lock()
    state = {"round": 0, "alerts": 0, "posts": 0, "errors": 0}
    t_end = time.monotonic() + a.duration
    t0 = time.monotonic()

    def next_round():
        with lock:
            r = state["round"]
            state["round"] += 1
        if a.rounds_per_sec > 0:
            due = t0 + r / a.rounds_per_sec
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
        return r

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
        while time.monotonic() < t_end:
            r = next_round()
            now = datetime.datetime.now(datetime.timezone.utc)
            starts = now.isoformat()
            ends = (now + datetime.timedelta(minutes=5)).isoformat()
            usage = "%.2f" % (50 + (r % 4000) / 100.0)
            for off in range(0, a.nodes, a.batch):
                alerts = [{
                    "labels": {"alertname": "NodeFilesystemFilling", "node": n,
                               "mountpoint": "/var/lib/kubelet", "severity": "warning"},
                    "annotations": {"summary": "nodefs %s%% used" % usage, "round": str(r)},
                    "startsAt": starts, "endsAt": ends,
                } for n in names[off:off + a.batch]]
                body = json.dumps(alerts)
                try:
                    conn.request("POST", "/api/v2/alerts", body,
                                 {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    ok = resp.status == 200
                except (OSError, http.client.HTTPException):
                    ok = False
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
                with lock:
                    state["posts"] += 1
                    if ok:
                        state["alerts"] += len(alerts)
                    else:
                        state["errors"] += 1
                if time.monotonic() >= t_end:
                    break
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(a.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    print("summary alerts=%d posts=%d errors=%d seconds=%.2f alerts_per_s=%.0f" %
          (state["alerts"], state["posts"], state["errors"], secs, state["alerts"] / secs))
    return 0 if state["alerts"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
