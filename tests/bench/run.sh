#!/bin/bash
# tests/bench/run.sh — build CryptoSat and run cryptosat-bench (BENCHMARKS.md).
#
#   bash tests/bench/run.sh           the full run (minutes): release build, the
#                                     python-telegram-bot baseline in a venv, the
#                                     .deb size; Markdown to stdout and to
#                                     $CARGO_TARGET_DIR/bench-results.md
#   bash tests/bench/run.sh --quick   the reduced run for CI (well under a minute
#                                     after the build): small counts, debug build,
#                                     no baseline; fails only when a reply or an
#                                     alert is lost or duplicated or a 429 is
#                                     received, never on times
#
# Options: --baseline (quick run with the baseline too), --no-baseline.
# Environment: PTB_VENV=DIR, the venv to use (created from
# tests/bench/requirements.txt when missing; needs python3-venv and PyPI).
# Everything runs on 127.0.0.1; nothing talks to Telegram or CoinGlass.
set -euo pipefail
cd "$(dirname "$0")/../.."

quick=
baseline=1
for a in "$@"; do
    case "$a" in
        --quick) quick=1 ;;
        --baseline) baseline=2 ;;
        --no-baseline) baseline=0 ;;
        *) echo "run.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done
[ -n "$quick" ] && [ "$baseline" = 1 ] && baseline=0

target=${CARGO_TARGET_DIR:-$PWD/target}
args=()
if [ -n "$quick" ]; then
    cargo build --locked -p cryptosat
    args+=(--quick --bin "$target/debug/cryptosat")
else
    # Built alone, so that the bench's dependencies cannot change its features.
    cargo build --locked --release -p cryptosat
    args+=(--bin "$target/release/cryptosat" --out "$target/bench-results.md")
    if command -v cargo-deb >/dev/null; then
        deb=$(bash packaging/build-deb.sh --no-build --out "$target/bench-deb" | tail -n 1)
        args+=(--deb "$deb")
    fi
fi
if [ "$baseline" != 0 ]; then
    venv=${PTB_VENV:-$target/ptb-venv}
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet -r tests/bench/requirements.txt
    fi
    args+=(--python "$venv/bin/python")
fi
if [ -n "$quick" ]; then
    cargo build --locked -p cryptosat-bench
    exec "$target/debug/cryptosat-bench" "${args[@]}"
fi
cargo build --locked --release -p cryptosat-bench
exec "$target/release/cryptosat-bench" "${args[@]}"
