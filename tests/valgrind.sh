#!/usr/bin/env bash
# Runs the linker integration tests (tests/linker.rs: every C call, upcall,
# struct-by-value and JIT path) under valgrind memcheck. Miri cannot run
# code that calls C; memcheck can. Exits non-zero on any memcheck error.
#
# Usage: tests/valgrind.sh [TEST-FILTER]  (from anywhere; needs cargo, cc and
# valgrind; VALGRIND_TESTS="linker" picks the binaries)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
    echo "valgrind.sh: valgrind is not installed" >&2
    exit 2
fi

# The test binaries that call C: tests/linker.rs (every C call, upcall,
# struct-by-value and JIT path) and tests/bind.rs (bind!'s typed calls).
# Build each and find its path from cargo's JSON messages.
TESTS=(${VALGRIND_TESTS:-linker bind})
for t in "${TESTS[@]}"; do
  cargo test --test "$t" --no-run >/dev/null # build (and show errors) first
  bin=$(cargo test --test "$t" --no-run --message-format=json 2>/dev/null \
      | grep '"reason":"compiler-artifact"' \
      | grep '"kind":\["test"\]' \
      | grep "\"name\":\"$t\"" \
      | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' \
      | tail -n 1 || true)
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
      echo "valgrind.sh: could not find the $t test binary" >&2
      exit 2
  fi
  # --test-threads=1 keeps valgrind's serialised scheduler fast; errors from
  # any test make valgrind exit 1 (and set -e stops here).
  echo "valgrind.sh: memcheck over tests/$t.rs"
  valgrind --tool=memcheck --error-exitcode=1 --leak-check=no \
      --quiet "$bin" --test-threads=1 "$@"
done
