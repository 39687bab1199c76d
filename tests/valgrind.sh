#!/usr/bin/env bash
# Runs the linker integration tests (tests/linker.rs: every C call, upcall,
# struct-by-value and JIT path) under valgrind memcheck. Miri cannot run
# code that calls C; memcheck can. Exits non-zero on any memcheck error.
#
# Usage: tests/valgrind.sh   (from anywhere; needs cargo, cc and valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed" >&2
    exit 2
fi

# Build the test binary and find its path from cargo's JSON messages.
cargo test --test linker --no-run >/dev/null # build (and show errors) first
bin=$(cargo test --test linker --no-run --message-format=json 2>/dev/null \
    | grep '"reason":"compiler-artifact"' \
    | grep '"kind":\["test"\]' \
    | grep '"name":"linker"' \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' \
    | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "valgrind.sh: could not find the linker test binary" >&2
    exit 2
fi

# The test binary compiles tests/c/testlib.c itself (needs CARGO_MANIFEST_DIR
# only at build time). --test-threads=1 keeps valgrind's serialised
# scheduler fast; errors from any test make valgrind exit 1.
exec valgrind --tool=memcheck --error-exitcode=1 --leak-check=no \
    --quiet "$bin" --test-threads=1 "$@"
