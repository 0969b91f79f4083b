#!/bin/bash
# tests/system/run.sh — everything CI needs for the system test, in one command
# (as root, from any directory):
#   1. packaging/ci-deps.sh          host tools (lintian, systemd-container, mmdebstrap, curl, jq, cargo-deb)
#   2. packaging/build-deb.sh --lint dist/cryptosat_<version>_amd64.deb, lintian-clean
#   3. the same binary packaged again as <version>+systemtest1, for the upgrade step
#   4. cargo build -p cryptosat-fakes (fake Telegram + CoinGlass servers)
#   5. tests/system/system-test.sh
# Extra arguments are ignored; knobs are the environment variables of system-test.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash packaging/ci-deps.sh
deb=$(packaging/build-deb.sh --lint | tail -n 1)
version=$(dpkg-deb -f "$deb" Version)
upgrade_deb=$(packaging/build-deb.sh --no-build --deb-version "$version+systemtest1" --out dist/upgrade | tail -n 1)
cargo build --locked -q -p cryptosat-fakes
exec tests/system/system-test.sh "$deb" "$upgrade_deb" "${CARGO_TARGET_DIR:-target}/debug/cryptosat-fakes"
