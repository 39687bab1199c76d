#!/usr/bin/env bash
# Mutation check of the loom models (issue 13): applies one-line mutations of
# the REAL source, one at a time, to a scratch copy of the repository, runs
# every loom model binary (one process each, so every catcher is seen) and
# `cargo test -p memscope`, and prints CAUGHT or SURVIVED per mutation.
# Run on demand, not in CI (each mutation rebuilds memscope twice).
#
#   loom-tests/mutate.sh                 every mutation in loom-tests/mutations.tsv
#   loom-tests/mutate.sh --check         only check that every entry still applies (unique match)
#   loom-tests/mutate.sh --only S01,A03  the named entries
#   loom-tests/mutate.sh --loom-only     skip `cargo test` (faster; loom models only)
#   loom-tests/mutate.sh --fast          run `cargo test` only for mutations no loom model caught
#   loom-tests/mutate.sh --list          print the catalogue
#
# The catalogue (mutations.tsv, tab-separated): id, file, exact text to find
# (must occur exactly once in the file), replacement, class and note. Class
# `bug` means the mutation breaks a protocol and must be CAUGHT; `harmless`
# entries carry, in the note, the argument for why surviving is fine. A
# mutation whose build (or toolchain) fails before any test runs is BROKEN,
# never CAUGHT. `\n`
# in find/replace stands for a newline; a replacement of `(delete)` deletes. The script exits 1 when a `bug`
# entry survives or an entry no longer applies.
#
# Environment: SCRATCH (default: a temporary directory; reusing one keeps
# incremental builds), LOOM_MAX_PREEMPTIONS (default 3), TIMEOUT per run in
# seconds (default 900; a run that times out counts as caught: a hang).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CAT="$REPO/loom-tests/mutations.tsv"
CHECK=0 LIST=0 LOOM_ONLY=0 FAST=0 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=1 ;;
    --list) LIST=1 ;;
    --loom-only) LOOM_ONLY=1 ;;
    --only) ONLY="$2"; shift ;;
    --fast) FAST=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "mutate.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -f "$CAT" ] || { echo "mutate.sh: no catalogue at $CAT" >&2; exit 2; }
if [ $LIST = 1 ]; then column -t -s $'\t' "$CAT" | cut -c1-200; exit 0; fi

SCRATCH="${SCRATCH:-$(mktemp -d /tmp/memscope-mutate.XXXXXX)}"
mkdir -p "$SCRATCH/tree"
# Seed the scratch build dirs with this checkout's (dependencies compiled
# once; only memscope and the test crates rebuild per mutation).
[ $CHECK = 1 ] || {
  [ -d "$SCRATCH/target-loom" ] || [ ! -d target/loom ] || cp -r target/loom "$SCRATCH/target-loom"
  [ -d "$SCRATCH/target" ] || [ ! -d target/debug ] || { mkdir -p "$SCRATCH/target" && cp -r target/debug "$SCRATCH/target/debug"; }
}
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
TIMEOUT="${TIMEOUT:-900}"
BINS=$(cd loom-tests/tests && ls loom_*.rs | sed 's/\.rs$//')

# A fresh copy of the tracked and untracked-not-ignored files; `tar -m` gives
# every file a new mtime, so cargo never reuses a build of the last mutation.
sync_tree() {
  rm -rf "$SCRATCH/tree" && mkdir -p "$SCRATCH/tree"
  (cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 tar cf -) | (cd "$SCRATCH/tree" && tar xmf -)
}

# apply FILE FIND REPLACE -> 0 applied, 3 not found, 4 ambiguous
apply() {
  python3 - "$SCRATCH/tree/$1" "$2" "$3" <<'EOF'
import sys
path, find, repl = sys.argv[1], sys.argv[2].replace('\\n', '\n'), sys.argv[3].replace('\\n', '\n')
if repl == '(delete)': repl = ''
src = open(path).read()
n = src.count(find)
if n == 0: sys.exit(3)
if n > 1: sys.exit(4)
open(path, 'w').write(src.replace(find, repl, 1))
EOF
}

run_loom() { # bin -> 0 passed, else failed
  # Incremental release builds: each mutation recompiles only what changed
  # (the scratch copy has new mtimes, but rustc reuses unchanged code).
  (cd "$SCRATCH/tree" && RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR="$SCRATCH/target-loom" \
    CARGO_PROFILE_RELEASE_INCREMENTAL=true \
    timeout "$TIMEOUT" cargo test -q --release -p loom-tests --test "$1" -- loom_ --test-threads=2) \
    >"$SCRATCH/last-$1.log" 2>&1
}
run_tests() {
  (cd "$SCRATCH/tree" && CARGO_TARGET_DIR="$SCRATCH/target" \
    timeout "$TIMEOUT" cargo test -q -p memscope --lib --tests) >"$SCRATCH/last-test.log" 2>&1
}

# Did the failed command get as far as running a test binary?
ran_tests() { grep -qE '^running [0-9]+ tests?$' "$1"; }

results=()
bad=0 tried=0 caught=0
while IFS=$'\t' read -r id file find repl class note; do
  [ -z "$id" ] || [ "${id:0:1}" = "#" ] && continue
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$id,"* ]]; then continue; fi
  sync_tree
  set +e; apply "$file" "$find" "$repl"; rc=$?; set -e
  if [ $rc -ne 0 ]; then
    why=$([ $rc = 3 ] && echo "text not found" || echo "text not unique")
    results+=("$id	STALE	$class	$why	$file")
    bad=1; continue
  fi
  [ $CHECK = 1 ] && { results+=("$id	applies	$class	-	$file"); continue; }
  tried=$((tried + 1))
  t0=$(date +%s)
  catchers=""
  # A run that fails before any test ran (the mutation does not compile,
  # or the toolchain is unavailable) catches nothing: it is reported as
  # BROKEN, which fails the script like a surviving bug.
  broken=""
  for b in $BINS; do
    if ! run_loom "$b"; then
      if ran_tests "$SCRATCH/last-$b.log"; then catchers+="$b "; else broken+="$b "; fi
    fi
  done
  if [ $LOOM_ONLY = 0 ] && { [ $FAST = 0 ] || [ -z "$catchers" ]; } && ! run_tests; then
    if ran_tests "$SCRATCH/last-test.log"; then catchers+="cargo-test "; else broken+="cargo-test "; fi
  fi
  secs=$(( $(date +%s) - t0 ))
  if [ -n "$broken" ]; then
    verdict=BROKEN; bad=1
    catchers="did not build/run: $broken"
  elif [ -n "$catchers" ]; then
    verdict=CAUGHT; caught=$((caught + 1))
  else
    verdict=SURVIVED
    [ "$class" = bug ] && bad=1
  fi
  line="$id	$verdict	$class	${catchers:--}	${secs}s	$file: $note"
  results+=("$line")
  printf '%s\n' "$line"
done <"$CAT"
sync_tree # leave the scratch tree unmutated

echo
printf 'id\tresult\tclass\tcaught by\ttime\twhere / why\n'
printf '%s\n' "${results[@]}"
[ $CHECK = 1 ] || echo "caught $caught of $tried tried (scratch: $SCRATCH)"
exit $bad
