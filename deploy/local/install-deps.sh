#!/usr/bin/env bash
# Installs the Debian 12 packages Robot SRE builds, tests and runs with. Idempotent: packages
# already present are not reinstalled. Needs root (or sudo) and Debian's package registry.
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config
    libprotobuf-c-dev protobuf-c-compiler liblmdb-dev lmdb-utils libyaml-dev libjansson-dev
    libssl-dev libuv1-dev libcurl4-openssl-dev libgrpc-dev python3 libh2o-dev
    libhiredis-dev libnats-dev libldap-dev libpq-dev zlib1g-dev)
TEST_PKGS=(libcmocka-dev clang libclang-rt-14-dev containerd runc busybox-static prometheus-node-exporter prometheus-alertmanager python3 python3-cryptography
    redis-server nats-server slapd ldap-utils postgresql docker-registry apache2-utils faketime)

want=("${BUILD_PKGS[@]}")
if [ "${1:-}" = "--test" ]; then
    want+=("${TEST_PKGS[@]}")
fi

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
