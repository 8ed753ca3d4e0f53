#!/usr/bin/env bash
# Installs strace (Debian package) when it is missing: tests/test_offline_trace.py
# traces the system calls of a real export to prove it sends nothing over the network.
set -euo pipefail
command -v strace >/dev/null && exit 0
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
echo "[test-tools] apt-get install strace"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends strace >/dev/null
