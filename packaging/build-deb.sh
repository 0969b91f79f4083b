#!/bin/bash
# packaging/build-deb.sh — the one command that builds the Debian package:
#     packaging/build-deb.sh            -> dist/cryptosat_<version>-1_amd64.deb
# It runs a release build of the cryptosat crate and cargo-deb (3.8, see
# packaging/ci-deps.sh) with the [package.metadata.deb] table of Cargo.toml.
#
# Options:
#   --deb-version V   package version instead of <Cargo version>-1, e.g. to build a
#                     same-binary "newer" package for the upgrade test
#   --no-build        package the existing target/release/cryptosat as it is
#   --out DIR         output directory (default: dist/)
#   --lint            run lintian on the result (fails on any error or warning)
# Prints the path of the .deb on its last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

deb_version=
no_build=
out=dist
lint=
while [ $# -gt 0 ]; do
    case "$1" in
        --deb-version) deb_version=${2:?--deb-version needs a value}; shift 2 ;;
        --no-build) no_build=1; shift ;;
        --out) out=${2:?--out needs a value}; shift 2 ;;
        --lint) lint=1; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

if ! grep -q '^\[package\.metadata\.deb\]' Cargo.toml; then
    echo "build-deb.sh: Cargo.toml has no [package.metadata.deb]; append packaging/deb-metadata.toml to it" >&2
    exit 1
fi
command -v cargo-deb >/dev/null || { echo "build-deb.sh: cargo-deb missing; run packaging/ci-deps.sh" >&2; exit 1; }

args=(deb -p cryptosat --locked)
[ -n "$deb_version" ] && args+=(--deb-version "$deb_version")
[ -n "$no_build" ] && args+=(--no-build)
mkdir -p "$out"
args+=(--output "$out/")

# cargo-deb prints the path of the package it wrote as its last stdout line.
deb=$(cargo "${args[@]}" | tail -n 1)
[ -f "$deb" ] || { echo "build-deb.sh: cargo deb did not produce a package (got '$deb')" >&2; exit 1; }

# No OpenSSL: TLS is rustls. Catch a dependency that sneaks it back in.
if dpkg-deb -f "$deb" Depends | grep -qi 'libssl'; then
    echo "build-deb.sh: $deb depends on OpenSSL: $(dpkg-deb -f "$deb" Depends)" >&2
    exit 1
fi

if [ -n "$lint" ]; then
    # --fail-on error,warning: lintian exits non-zero on any E: or W: tag.
    # Overrides (with their reasons) live in packaging/cryptosat.lintian-overrides.
    lintian --allow-root --fail-on error,warning --info "$deb" >&2
fi
echo "$deb"
