#!/usr/bin/env bash
# Installs Debian packages with apt-get (through sudo unless root), quietly.
# The callers decide what is missing; this is the one place that installs it.
#
# Usage: apt_install.sh TAG PACKAGE...   (TAG prefixes the log line, e.g. verify-arm)
set -euo pipefail

tag="$1"; shift
(($# > 0)) || exit 0
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
printf '[%s] apt-get install %s\n' "$tag" "$*" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
