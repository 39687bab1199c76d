#!/usr/bin/env bash
# The whole test suite, in the order the README describes. Set-up free: it
# installs what it needs (rustfmt/clippy/miri components, the C test
# libraries are compiled by the tests themselves with `cc`).
#
#   ./ci.sh            everything
#   ./ci.sh --quick    fmt + clippy + cargo test only
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

t0=$(date +%s)
# Each step's header says how long the run has taken so far, so a slow step
# shows in any log of a run.
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
# Works whether or not CARGO_TARGET_DIR is set: every path below hangs off
# one base directory, created here, so `tee` never writes into a missing dir.
TARGET_BASE="${CARGO_TARGET_DIR:-$PWD/target}"
LOGS="$TARGET_BASE/ci-logs"
mkdir -p "$LOGS"

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "examples that check themselves (zlib bound with bind!)"
cargo run -q --example zlib

[ $QUICK = 1 ] && { echo "quick run done in $(( $(date +%s) - t0 ))s"; exit 0; }

step "MSRV: cargo +1.95.0 check (the library and its tests, as rust-version says)"
# rust-version = 1.95 (parking_lot 0.13 needs it). The MSRV toolchain builds
# the library and its own tests; the benches crate's peers are left out.
rustup toolchain install 1.95.0 --profile minimal >/dev/null 2>&1 || true
CARGO_TARGET_DIR="$TARGET_BASE/msrv" cargo +1.95.0 check -q -p memscope --lib --tests

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

step "loom models (LOOM_MAX_PREEMPTIONS=3, release, own target dir)"
export LOOM_MAX_PREEMPTIONS=3
LOOM_ENV=(env RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR="$TARGET_BASE/loom")
"${LOOM_ENV[@]}" cargo test --release -p loom-tests -- loom_ --test-threads=2 --nocapture 2>&1 | tee "$LOGS/loom-models.log" | grep -E "^(test |loom model|test result)" || { echo "loom models FAILED"; exit 1; }
grep -q "test result: ok" "$LOGS/loom-models.log" || { echo "loom models FAILED"; exit 1; }

step "loom broken twins (each must be caught: a twin that passes fails CI)"
# Twins are #[should_panic] tests named twin_*: cargo reports a twin that
# loom does NOT catch as a failure ("note: test did not panic as expected").
"${LOOM_ENV[@]}" cargo test --release -p loom-tests -- twin_ --test-threads=2 2>&1 | tee "$LOGS/loom-twins.log" | grep -E "^(test |test result)" || true
if grep -q "did not panic" "$LOGS/loom-twins.log" || ! grep -q "test result: ok" "$LOGS/loom-twins.log"; then
  echo "a broken twin was NOT caught by loom"; exit 1
fi
echo "twins caught: $(grep -c '^test twin_.* ok$' "$LOGS/loom-twins.log")"

step "miri (everything that does not call C)"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal --component miri,rust-src >/dev/null 2>&1 \
    || rustup +nightly component add miri rust-src
fi
# Test targets that never call C (the linker tests and the C layout
# cross-check run under valgrind instead). Doctests are left out: the
# linker's call C. The run's exit status decides (not a grep of the log).
miri() { # miri LOGNAME EXTRA_MIRIFLAGS cargo-test-target-args...
  local log="$LOGS/miri-$1.log" extra="$2"; shift 2
  set +e
  MIRIFLAGS="${MIRIFLAGS:--Zmiri-permissive-provenance} $extra" CARGO_TARGET_DIR="$TARGET_BASE/miri" \
    cargo +nightly miri test -p memscope "$@" >"$log" 2>&1
  local rc=$?
  set -e
  grep -E "^test result|^Trying seed|^error" "$log" || true
  if [ $rc -ne 0 ] || ! grep -q "test result: ok" "$log"; then
    echo "miri FAILED ($*)"; tail -n 60 "$log"; exit 1
  fi
}
# Single-threaded or schedule-independent binaries: one run.
miri single "" --lib --test markers --test segment_props --test layout --test marshal --test api --test value_props
# The binaries whose tests spawn threads (close vs guards, allocation from
# several threads, close racing access) run over several schedules, so a
# fault that depends on the interleaving fails CI every time instead of now
# and then. MIRI_SEEDS=N overrides the count (each seed is a whole run of
# the binary; Miri runs seeds in parallel).
SEEDS="${MIRI_SEEDS:-4}"
for t in session alloc segment; do
  miri "$t" "-Zmiri-many-seeds=0..$SEEDS" --test "$t"
done
echo "miri: clean (session, alloc, segment over $SEEDS seeds each)"

step "valgrind memcheck (the linker tests, which call C)"
if ! command -v valgrind >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq valgrind) >/dev/null 2>&1 || { echo "cannot install valgrind"; exit 1; }
fi
bash tests/valgrind.sh 2>&1 | tail -n 5

step "benches compile (cargo bench --no-run)"
cargo bench --no-run --workspace

echo
echo "ci.sh: all steps passed in $(( $(date +%s) - t0 ))s"
