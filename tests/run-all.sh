#!/bin/bash
# tests/run-all.sh — the whole test suite, as the README gives it:
#   format check, clippy with -D warnings, every unit and integration test of
#   the workspace (storage-fault tests need root), a 2-minute fault-injection
#   soak, the reduced benchmark, the supply-chain check, the Debian package
#   built and tested in a real systemd (tests/system/run.sh, needs root), and
#   every fuzz target for 30 s.
# Run it as root from anywhere on a Debian 12 machine with the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (unit and integration tests)"
cargo test --workspace --locked

step "soak: cryptosat run under random faults on both fakes, 3 kill -9s (CRYPTOSAT_SOAK_SECS, default 120)"
cargo test --locked --test soak -- --ignored --nocapture

step "benchmarks, reduced: functional checks only, no times asserted (full run: tests/bench/run.sh)"
bash tests/bench/run.sh --quick

step "supply chain: cargo deny (licenses, bans, sources)"
bash tests/supply-chain.sh

step "system test: .deb in a real systemd"
bash tests/system/run.sh

step "fuzzing: every cargo-fuzz target for 30 s (fuzz/README.md)"
bash fuzz/run.sh 30
