#!/usr/bin/env bash
# Installs what `make verify-arm` runs on, once, into a cache folder:
#   1. qemu-user-static and mmdebstrap (Debian packages) when missing;
#   2. CACHE/root: an arm64 Debian root (python3.11 and the libraries it needs, extracted
#      with mmdebstrap --variant=extract: no binfmt, no maintainer scripts), with
#      ai-edge-litert and numpy (their manylinux aarch64 wheels) in CACHE/root/opt/site;
#   3. CACHE/x86-site: the same ai-edge-litert and numpy for this x86 machine's Python,
#      kept out of the project's venv (which pins another LiteRT).
# Each part is rebuilt only when its stamp (versions + build recipe) changes, into a
# temporary folder renamed into place when complete, under a lock on CACHE/.lock.
#
# Usage: setup.sh CACHE PYTHON LITERT_VERSION NUMPY_VERSION
#   PYTHON: the interpreter whose pip downloads the wheels (the project's venv).
#   ARM64_DEBIAN_MIRROR (environment) overrides the Debian mirror.
set -euo pipefail

CACHE="$1" PYTHON="$2" LITERT_VERSION="$3" NUMPY_VERSION="$4"
SUITE="bookworm"   # Debian 12: its python3.11 matches the cp311 wheels
MIRROR="${ARM64_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOT_PACKAGES="python3.11-minimal,libpython3.11-stdlib,libstdc++6"
ARM_PLATFORMS=(--platform manylinux_2_17_aarch64 --platform manylinux_2_28_aarch64)
WHEELS=("ai-edge-litert==$LITERT_VERSION" "numpy==$NUMPY_VERSION")

log() { printf '[verify-arm] %s\n' "$*" >&2; }

ensure_debian_packages() {
    local missing=()
    command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    ((${#missing[@]} == 0)) || bash "$(dirname "${BASH_SOURCE[0]}")/../../scripts/apt_install.sh" verify-arm "${missing[@]}"
}

stamp_of() {  # the recipe of one part (versions and the functions that build it): rebuilt when it changes
    { echo "$1 $SUITE $ROOT_PACKAGES ${WHEELS[*]} ${ARM_PLATFORMS[*]}"
      declare -f pip_install build_root build_x86_site; } | sha256sum | cut -d' ' -f1
}

fresh() {  # fresh PART: its folder exists and was built by this recipe
    [[ -f "$CACHE/$1/.stamp" && "$(cat "$CACHE/$1/.stamp")" == "$(stamp_of "$1")" ]]
}

pip_install() {  # pip_install TARGET [pip options...]: the pinned wheels only, no dependencies
    local target="$1"; shift
    "$PYTHON" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --target "$target" "$@" "${WHEELS[@]}"
}

build_root() {
    fresh root && return 0
    local start=$SECONDS tmp="$CACHE/.root.tmp"
    rm -rf "$tmp" && mkdir -p "$tmp"
    log "building the arm64 $SUITE root ($ROOT_PACKAGES) in $CACHE/root"
    mmdebstrap --quiet --variant=extract --architectures=arm64 --include="$ROOT_PACKAGES" \
        "$SUITE" "$tmp" "$MIRROR" >&2
    pip_install "$tmp/opt/site" "${ARM_PLATFORMS[@]}" --python-version 3.11
    stamp_of root > "$tmp/.stamp"
    rm -rf "$CACHE/root" && mv "$tmp" "$CACHE/root"
    log "arm64 root ready in $((SECONDS - start)) s"
}

build_x86_site() {
    fresh x86-site && return 0
    local tmp="$CACHE/.x86-site.tmp"
    rm -rf "$tmp"
    log "installing ${WHEELS[*]} for this machine in $CACHE/x86-site"
    pip_install "$tmp"
    stamp_of x86-site > "$tmp/.stamp"
    rm -rf "$CACHE/x86-site" && mv "$tmp" "$CACHE/x86-site"
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9   # one builder at a time; a second run waits, then finds the parts fresh
ensure_debian_packages
build_root
build_x86_site
