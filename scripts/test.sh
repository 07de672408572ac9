#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need when it is missing
# (memcached, libmemcached-tools, pymemcache for Debian's /usr/bin/python3), then
# rustfmt, clippy with warnings as errors, and every test target (with the fault-injection
# feature) plus doctests.
# Any failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v memcached >/dev/null 2>&1 || [ -x /usr/bin/memcached ] || missing+=(memcached)
command -v memccapable >/dev/null 2>&1 || missing+=(libmemcached-tools)
if ! [ -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import pymemcache' >/dev/null 2>&1; then
    missing+=(python3-pymemcache)
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    # Refresh the package lists only if the install cannot find the packages without it.
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; then
        $sudo apt-get update
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    fi
fi

echo "test.sh: cargo fmt --check"
cargo fmt --all -- --check
# Clippy on both builds: the release build, and the fault-injection one (the test-only fault
# switches and the memcord-faulty binary that arms them).
echo "test.sh: cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --all-targets --all-features -- -D warnings
# --all-features builds memcord-faulty, which tests/check.rs needs to prove that `memcord
# check` catches a broken linearizable build; without it that test is left out.
echo "test.sh: cargo test"
cargo test --workspace --all-targets --all-features
cargo test --workspace --doc
echo "test.sh: all passed"
