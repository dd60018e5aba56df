#!/usr/bin/env bash
# fuzz.sh BUILD_DIR SECONDS - runs every fuzz_* harness for SECONDS each,
# seeded from fuzz/corpus/<core>/ (new inputs go to BUILD_DIR/corpus/<core>).
set -euo pipefail
build=$1
secs=$2
cd "$(dirname "$0")/.."
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  core=${name#fuzz_}
  mkdir -p "$build/corpus/$core" "fuzz/corpus/$core"
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$build/" \
    "$build/corpus/$core" "fuzz/corpus/$core" 2>&1 | grep -E 'stat::|ERROR|SUMMARY|Done' || true
  if ls "$build"/crash-* "$build"/leak-* "$build"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $name found a failure: $(ls "$build"/crash-* "$build"/leak-* "$build"/timeout-* 2>/dev/null)" >&2
    exit 1
  fi
done
