#!/bin/sh
# Runs every fuzz target for SECONDS (default 30) each; fails on any crash.
#
#   fuzz/run.sh [SECONDS]
#
# Installs cargo-fuzz if it is missing. Needs RUSTC_BOOTSTRAP=1 on stable
# rustc (cargo-fuzz passes nightly-only -Z flags); see fuzz/README.md.
# New corpus entries go to fuzz/target/corpus/TARGET (not committed); the
# committed seeds in fuzz/corpus/TARGET are only read. A crash leaves its
# input in fuzz/artifacts/TARGET/ and the command to reproduce it is printed.
set -eu

SECONDS_PER_TARGET="${1:-30}"
CARGO_FUZZ_VERSION=0.13.2
TARGETS="commands callback coinglass_models telegram_errors config"

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# cargo-fuzz builds with -Zsanitizer=address and other -Z flags, which stable
# rustc accepts only with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1

# One build of all targets (release, with debug assertions so integer
# overflow and other debug checks count as crashes).
cargo fuzz build -O -a

failed=""
for t in $TARGETS; do
    mkdir -p "target/corpus/$t" "artifacts/$t"
    echo "=== fuzz $t for ${SECONDS_PER_TARGET}s"
    if ! cargo fuzz run -O -a "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>"target/fuzz-$t.log"; then
        tail -n 60 "target/fuzz-$t.log" >&2
        echo "=== $t: CRASH. Inputs: fuzz/artifacts/$t/" >&2
        echo "    reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a $t artifacts/$t/<file>)" >&2
        failed="$failed $t"
    else
        grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done)" "target/fuzz-$t.log" || true
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz/run.sh: crashes in:$failed" >&2
    exit 1
fi
echo "fuzz/run.sh: all targets ran ${SECONDS_PER_TARGET}s without a crash"
