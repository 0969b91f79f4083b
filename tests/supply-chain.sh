#!/bin/sh
# Supply-chain check with cargo-deny and the committed deny.toml:
# licenses (allow-list), bans (wildcards, banned crates; duplicate versions
# warn), sources (crates.io only). Works offline.
#
#   tests/supply-chain.sh             # offline: licenses bans sources
#   tests/supply-chain.sh --online    # also advisories (fetches the RustSec db)
#
# Installs cargo-deny if it is missing (pinned; builds on rustc 1.95).
set -eu

CARGO_DENY_VERSION=0.20.2

cd "$(dirname "$0")/.."

# cargo-deny resolves the dependency graph for every platform, so all crates
# in Cargo.lock must be in the local cache: fetch them (from crates.io) if we
# can; offline, the cache of an earlier run must do.
cargo fetch --locked >/dev/null 2>&1 || echo "supply-chain: cargo fetch failed (offline?); using the local registry cache"

if ! cargo deny --version >/dev/null 2>&1; then
    echo "supply-chain: installing cargo-deny $CARGO_DENY_VERSION"
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked
fi

if [ "${1:-}" = "--online" ]; then
    # Advisories need the RustSec advisory database (git clone from GitHub).
    cargo deny check advisories licenses bans sources
else
    echo "supply-chain: advisories skipped (offline); run with --online to check them"
    cargo deny --offline check licenses bans sources
fi
