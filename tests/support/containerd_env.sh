#!/usr/bin/env bash
# A throwaway containerd (Debian package, 1.6) for integration tests: every file it writes,
# its sockets and its mounts live under one temp dir, CRI answers on a unix socket there, and
# nothing listens on TCP. Written from docs/notes on this machine kind (local-servers.md).
#
#   containerd_env.sh start DIR [SANDBOX_IMAGE]   write DIR/config.toml, start containerd, wait
#                                                 for DIR/containerd.sock (prints its path)
#   containerd_env.sh import DIR TARBALL...       ctr images import into namespace k8s.io
#   containerd_env.sh run DIR IMAGE NAME ARG...   ctr run -d (a plain containerd container:
#                                                 not visible to CRI ListContainers)
#   containerd_env.sh images DIR                  ctr images ls -q (one name per line)
#   containerd_env.sh stop DIR                    kill and delete tasks, end the shims of this
#                                                 containerd and containerd itself (by pid),
#                                                 unmount leftovers, rm -rf DIR
#
# Environment: SNAPSHOTTER (overlayfs, default, or native).
# containerd 1.6 always puts shim sockets under /run/containerd/s; they go away with the shims.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,17p' "$0" >&2; exit 2; }
sock="$dir/containerd.sock"
ctr_() { ctr --address "$sock" -n k8s.io "$@"; }

case "$cmd" in
start)
    sandbox=${3:-rsre.test/pause:1}
    snap=${SNAPSHOTTER:-overlayfs}
    mkdir -p "$dir"/{root,state,opt,cni/bin,cni/conf}
    cat >"$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$sock"

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  sandbox_image = "$sandbox"
  enable_selinux = false
  # Without CAP_SYS_RESOURCE (common in CI sandboxes) runc cannot give the pause container its
  # oom_score_adj of -998; clamp container scores to containerd's own instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "$snap"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni/bin"
    conf_dir = "$dir/cni/conf"
TOML
    containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
    echo $! >"$dir/containerd.pid"
    for _ in $(seq 1 200); do
        if [ -S "$sock" ] && ctr --address "$sock" version >/dev/null 2>&1; then
            echo "$sock"
            exit 0
        fi
        if ! kill -0 "$(cat "$dir/containerd.pid")" 2>/dev/null; then
            echo "containerd exited; log:" >&2
            tail -20 "$dir/containerd.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "containerd did not open $sock within 10 s" >&2
    exit 1
    ;;
import)
    shift 2
    for f in "$@"; do
        ctr_ images import "$f" >/dev/null
    done
    ;;
run)
    image=$3 name=$4
    shift 4
    mkdir -p "$dir/fifo"
    ctr_ run --runc-root "$dir/runc" --fifo-dir "$dir/fifo" -d "$image" "$name" "$@" >/dev/null
    ;;
images)
    ctr_ images ls -q
    ;;
stop)
    [ -d "$dir" ] || exit 0
    if [ -S "$sock" ]; then
        # Stop and delete every task first so their shims exit on their own.
        for t in $(ctr_ tasks ls -q 2>/dev/null || true); do
            ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
        done
        for t in $(ctr_ tasks ls -q 2>/dev/null || true); do
            ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true
        done
    fi
    # Shims still alive were started by this containerd: they name its socket on their command
    # line. End exactly those pids.
    for p in /proc/[0-9]*; do
        if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "-address $sock"; then
            kill -9 "${p#/proc/}" 2>/dev/null || true
        fi
    done
    if [ -f "$dir/containerd.pid" ]; then
        pid=$(cat "$dir/containerd.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    # Unmount anything left under the temp dir, deepest first.
    awk -v d="$dir" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
*)
    sed -n '2,17p' "$0" >&2
    exit 2
    ;;
esac
