#!/usr/bin/env bash
# fuzz.sh BUILD_DIR [SECONDS] - runs every fuzz_* harness in BUILD_DIR, one at
# a time, seeded from fuzz/corpus/<core>/ (new inputs go to BUILD_DIR/corpus/
# <core>), and reports per harness the executions, exec/s, coverage (cov, ft)
# and findings. Fails when any harness leaves a crash-, leak-, timeout- or
# oom- artifact or exits nonzero; slow-unit- artifacts are reported only.
#
# Settings (environment):
#   FUZZ_SECONDS  time per harness (default: SECONDS, else 60; 0 = no limit)
#   FUZZ_RUNS     executions per harness (default: no limit); with both set
#                 a harness stops at whichever comes first
#   FUZZ_ONLY     harness names to run, space-separated (default: all)
#   FUZZ_RSS_MB   libFuzzer -rss_limit_mb (default 2048: far above any
#                 harness's peak, below the machine's memory)
#   FUZZ_TIMEOUT  libFuzzer -timeout in seconds for one input (default 10:
#                 every harness takes milliseconds per input under ASan)
#   FUZZ_NICE     nice level of the harness process (default 0)
#   FUZZ_ARGS     more libFuzzer flags, e.g. "-max_len=8192"
# Artifacts go to BUILD_DIR/artifacts/<harness>/, emptied before each run so
# that a finding of an earlier run does not fail this one; the full libFuzzer
# output goes to BUILD_DIR/logs/<harness>.log.
set -uo pipefail
build=${1:?usage: fuzz.sh BUILD_DIR [SECONDS]}
secs=${FUZZ_SECONDS:-${2:-60}}
runs=${FUZZ_RUNS:-}
rss=${FUZZ_RSS_MB:-2048}
timeout=${FUZZ_TIMEOUT:-10}
nice_level=${FUZZ_NICE:-0}
cd "$(dirname "$0")/.."

# The value of one stat::NAME line of a log, or "?".
stat() {
  local v
  v=$(grep -E "^stat::$2:" "$1" | tail -n 1 | awk '{print $2}')
  echo "${v:-?}"
}

# The value after KEY in the last status line ("#N ... cov: C ft: F corp: ..").
last_field() {
  local v
  v=$(grep -E '^#[0-9]+' "$1" | grep -E " $2: " | tail -n 1 | sed -E "s/.* $2: ([^ ]+).*/\1/")
  echo "${v:-?}"
}

failed=()
summary=()
ran=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] && [ -f "$bin" ] || continue
  name=$(basename "$bin")
  if [ -n "${FUZZ_ONLY:-}" ] && ! [[ " $FUZZ_ONLY " == *" $name "* ]]; then
    continue
  fi
  ran=$((ran + 1))
  core=${name#fuzz_}
  art="$build/artifacts/$name"
  log="$build/logs/$name.log"
  rm -rf "$art"
  mkdir -p "$art" "$build/logs" "$build/corpus/$core" "fuzz/corpus/$core"
  args=(-max_total_time="$secs" -print_final_stats=1 -rss_limit_mb="$rss" -timeout="$timeout"
        -artifact_prefix="$art/")
  [ -n "$runs" ] && args+=(-runs="$runs")
  # shellcheck disable=SC2206 # FUZZ_ARGS is split on purpose
  [ -n "${FUZZ_ARGS:-}" ] && args+=(${FUZZ_ARGS})
  echo "fuzz: $name (${secs}s${runs:+, $runs runs}) -> $log"
  start=$(date +%s)
  nice -n "$nice_level" "$bin" "${args[@]}" "$build/corpus/$core" "fuzz/corpus/$core" >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))

  execs=$(stat "$log" number_of_executed_units)
  eps=$(stat "$log" average_exec_per_sec)
  rssmb=$(stat "$log" peak_rss_mb)
  cov=$(last_field "$log" cov)
  ft=$(last_field "$log" ft)
  corp=$(last_field "$log" corp)
  bad=$(find "$art" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | sort)
  slow=$(find "$art" -maxdepth 1 -type f -name 'slow-unit-*' | sort)
  findings=$(printf '%s\n' "$bad" "$slow" | grep -c . || true)
  line=$(printf '%-22s execs %-10s exec/s %-7s cov %-5s ft %-6s corp %-12s rss %sMB %ss rc %s findings %s' \
         "$name" "$execs" "$eps" "$cov" "$ft" "$corp" "$rssmb" "$took" "$rc" "$findings")
  summary+=("$line")
  echo "fuzz: $line"
  [ -n "$slow" ] && echo "fuzz: $name slow inputs (reported, not a failure): $slow"
  if [ -n "$bad" ] || [ "$rc" -ne 0 ]; then
    failed+=("$name")
    echo "fuzz: $name FAILED (exit $rc)${bad:+; artifacts:}" >&2
    [ -n "$bad" ] && echo "$bad" >&2
    grep -E 'ERROR|SUMMARY|invariant|==[0-9]+==' "$log" | head -n 20 >&2
  fi
done

if [ "$ran" -eq 0 ]; then
  echo "fuzz: no harness in $build${FUZZ_ONLY:+ matching '$FUZZ_ONLY'}" >&2
  exit 1
fi
echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all $ran harnesses clean"
