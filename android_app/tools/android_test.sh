#!/usr/bin/env bash
# Command-line checks of android_app (no Android SDK or Gradle needed):
#   1. installs what is missing: kotlinc (npm package kotlin-compiler, pinned, into
#      android_app/.tools), JUnit 4, aapt2 and the framework resources (Debian packages);
#   2. compiles the pure-Kotlin core module (main, then tests + CLI) with kotlinc,
#      cached by a hash of the sources, and runs its JUnit 4 tests;
#   3. packs the preprocessing CLI used by tests/test_android_parity.py;
#   4. compiles and links the app's resources and manifest with aapt2 against the
#      platform framework-res.apk, so only framework themes/attributes are accepted.
#
# Usage: android_test.sh [all|core|build|resources [RES_DIR [MANIFEST]]]   (default: all)
#   core: steps 1-3; build: steps 1 and 3 without running the tests; resources: step 4.
set -euo pipefail

APP="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KOTLIN_VERSION="2.2.20"   # keep equal to "kotlin" in gradle/libs.versions.toml
TOOLS="$APP/.tools"
KOTLIN_HOME="$TOOLS/node_modules/kotlin-compiler"
KOTLINC="$KOTLIN_HOME/bin/kotlinc"
STDLIB="$KOTLIN_HOME/lib/kotlin-stdlib.jar"
JUNIT="/usr/share/java/junit4.jar"            # its manifest Class-Path brings hamcrest-core.jar
FRAMEWORK_RES="/usr/share/android-framework-res/framework-res.apk"
OUT="$APP/core/build/jvm"                     # CLI jar: $OUT/preprocess-cli.jar

log() { printf '[android-test] %s\n' "$*"; }

ensure_debian_packages() {
    local missing=()
    [[ -f "$JUNIT" && -f /usr/share/java/hamcrest-core.jar ]] || missing+=(junit4)
    command -v aapt2 >/dev/null || missing+=(aapt)
    [[ -f "$FRAMEWORK_RES" ]] || missing+=(android-framework-res)
    ((${#missing[@]} == 0)) || bash "$APP/../scripts/apt_install.sh" android-test "${missing[@]}"
}

ensure_kotlinc() {
    local installed=""
    [[ -f "$KOTLIN_HOME/package.json" ]] && installed="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$KOTLIN_HOME/package.json" | head -n1)"
    if [[ "$installed" != "$KOTLIN_VERSION" || ! -x "$KOTLINC" ]]; then
        command -v npm >/dev/null || { echo "npm is required to install kotlinc" >&2; exit 1; }
        log "npm install kotlin-compiler@$KOTLIN_VERSION into $TOOLS"
        mkdir -p "$TOOLS"
        npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error "kotlin-compiler@$KOTLIN_VERSION" >/dev/null
    fi
    [[ -f "$STDLIB" ]] || { echo "kotlin-stdlib.jar missing in $KOTLIN_HOME" >&2; exit 1; }
}

source_hash() {
    { echo "$KOTLIN_VERSION"; cat "${BASH_SOURCE[0]}"
      find "$APP/core/src" -name '*.kt' -type f | LC_ALL=C sort | while read -r f; do echo "$f"; cat "$f"; done
    } | sha256sum | cut -d' ' -f1
}

compile_core() {
    local hash
    hash="$(source_hash)"
    if [[ -f "$OUT/.source-hash" && "$(cat "$OUT/.source-hash")" == "$hash" && -f "$OUT/preprocess-cli.jar" ]]; then
        log "core unchanged since the last build (hash ${hash:0:12}); reusing $OUT"
        return 0
    fi
    rm -rf "$OUT"
    mkdir -p "$OUT/main" "$OUT/test"
    local start=$SECONDS
    # Main sources see only the Kotlin stdlib: proof that core needs no other library.
    # Tests are a friend module of main (as in Gradle), so they may use `internal`.
    "$KOTLINC" -jvm-target 17 -Werror -no-reflect -d "$OUT/main" "$APP/core/src/main/kotlin" 2>&1
    "$KOTLINC" -jvm-target 17 -Werror -no-reflect -cp "$OUT/main:$JUNIT" -Xfriend-paths="$OUT/main" -d "$OUT/test" \
        "$APP/core/src/test/kotlin" "$APP/core/src/cli/kotlin" 2>&1
    log "kotlinc: compiled core in $((SECONDS - start)) s"
    cp "$STDLIB" "$OUT/kotlin-stdlib.jar"
    printf 'Class-Path: kotlin-stdlib.jar\n' > "$OUT/manifest.txt"
    jar --create --file "$OUT/preprocess-cli.jar" --manifest "$OUT/manifest.txt" \
        --main-class com.casvit.core.cli.PreprocessCliKt \
        -C "$OUT/main" . -C "$OUT/test" com/casvit/core/cli
    echo "$hash" > "$OUT/.source-hash"
}

run_core_tests() {
    local classes
    classes="$(cd "$OUT/test" && find . -name '*Test.class' ! -name '*$*' | sed 's|^\./||; s|\.class$||; s|/|.|g' | LC_ALL=C sort)"
    [[ -n "$classes" ]] || { echo "no JUnit test classes found" >&2; exit 1; }
    # shellcheck disable=SC2086
    java -cp "$OUT/main:$OUT/test:$STDLIB:$JUNIT" org.junit.runner.JUnitCore $classes
}

check_resources() {
    local res="${1:-$APP/app/src/main/res}" manifest="${2:-$APP/app/src/main/AndroidManifest.xml}"
    local gradle="$APP/app/build.gradle.kts" work namespace min_sdk target_sdk
    namespace="$(sed -n 's/^ *namespace *= *"\([^"]*\)".*/\1/p' "$gradle")"
    min_sdk="$(sed -n 's/^ *minSdk *= *\([0-9]*\).*/\1/p' "$gradle")"
    target_sdk="$(sed -n 's/^ *targetSdk *= *\([0-9]*\).*/\1/p' "$gradle")"
    [[ -n "$namespace" && -n "$min_sdk" && -n "$target_sdk" ]] || { echo "cannot read namespace/minSdk/targetSdk from $gradle" >&2; exit 1; }
    work="$(mktemp -d)"
    # Like the Android Gradle plugin, give the manifest its package (the Gradle namespace).
    sed "0,/<manifest /s//<manifest package=\"$namespace\" /" "$manifest" > "$work/AndroidManifest.xml"
    local status=0
    aapt2 compile --dir "$res" -o "$work/res.zip" && \
        aapt2 link -o "$work/app.apk" -I "$FRAMEWORK_RES" --manifest "$work/AndroidManifest.xml" \
            --min-sdk-version "$min_sdk" --target-sdk-version "$target_sdk" "$work/res.zip" || status=$?
    rm -rf "$work"
    if ((status != 0)); then
        echo "[android-test] FAILED: aapt2 rejected the resources in $res or $manifest" >&2
        return 1
    fi
    log "aapt2: resources and manifest link against $(basename "$FRAMEWORK_RES") (framework themes/attributes only)"
}

main() {
    local mode="${1:-all}"
    case "$mode" in
        all|core)
            ensure_debian_packages
            ensure_kotlinc
            compile_core
            run_core_tests
            [[ "$mode" == core ]] || check_resources
            ;;
        build)
            ensure_debian_packages
            ensure_kotlinc
            compile_core
            ;;
        resources)
            ensure_debian_packages
            check_resources "${2:-}" "${3:-}"
            ;;
        *) echo "usage: $0 [all|core|build|resources [RES_DIR [MANIFEST]]]" >&2; exit 2 ;;
    esac
}

main "$@"
