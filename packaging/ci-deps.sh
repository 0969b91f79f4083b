#!/bin/bash
# packaging/ci-deps.sh — install (idempotently, quietly) what building the .deb
# and running tests/system/system-test.sh need on a Debian 12 machine, as root:
#   lintian, systemd-container (systemd-nspawn), mmdebstrap, curl, jq, and
#   cargo-deb 3.8.0 (from crates.io).
# Safe to run repeatedly: it only installs what is missing.
set -euo pipefail

CARGO_DEB_VERSION=3.8.0

missing=()
for pair in lintian:lintian systemd-nspawn:systemd-container mmdebstrap:mmdebstrap \
            curl:curl jq:jq nsenter:util-linux dpkg-deb:dpkg; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # systemd-container pins the host's systemd packages to its own version, so
    # it may upgrade them; harmless where systemd is not PID 1.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" --quiet
fi
