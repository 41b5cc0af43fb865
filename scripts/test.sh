#!/usr/bin/env bash
# The test command (README.md): installs what the tests need when it is missing, then runs
# every test. Needs the Rust toolchain, PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379
# (TEST_DATABASE_URL, TEST_REDIS_URL change them); installs Chromium and chromedriver (Debian's
# packages, for the browser tests) and schemathesis (pinned, in a venv of its own, for the
# OpenAPI fuzzing test). Extra arguments go to `cargo test`, e.g. `scripts/test.sh production::`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "$@" > /dev/null
}

if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
    echo "== installing chromium and chromium-driver"
    apt_install chromium chromium-driver
fi

SCHEMATHESIS_VERSION=4.32.5
if [ -n "${SCHEMATHESIS:-}" ]; then
    : # the caller named one
elif command -v schemathesis >/dev/null \
    && schemathesis --version | grep -qF "version $SCHEMATHESIS_VERSION"; then
    SCHEMATHESIS="$(command -v schemathesis)"
else
    venv="${XDG_CACHE_HOME:-$HOME/.cache}/sentiq-tests/venv"
    if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "version $SCHEMATHESIS_VERSION"; then
        echo "== installing schemathesis $SCHEMATHESIS_VERSION in $venv"
        if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
            apt_install python3-venv
        fi
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
    fi
    SCHEMATHESIS="$venv/bin/schemathesis"
fi
export SCHEMATHESIS

echo "== cargo test --release"
exec cargo test --release "$@"
