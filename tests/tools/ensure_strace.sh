#!/usr/bin/env bash
# Installs strace (Debian package) when it is missing: tests/test_offline_trace.py
# traces the system calls of a real export to prove it sends nothing over the network.
set -euo pipefail
command -v strace >/dev/null && exit 0
bash "$(dirname "${BASH_SOURCE[0]}")/../../scripts/apt_install.sh" test-tools strace
