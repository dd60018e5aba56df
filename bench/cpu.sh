#!/usr/bin/env bash
# cpu.sh - CPU seconds (user + system, all threads) of processes, from
# /proc/PID/stat. Owns nothing but reading /proc; the caller decides what
# to compare. Two forms:
#   cpu.sh PID...                  prints "PID SECONDS" for each, so far
#   cpu.sh PID... -- CMD [ARG...]  runs CMD, then prints "PID SECONDS" used
#                                  by each PID while CMD ran; exits as CMD
set -euo pipefail

tck=$(getconf CLK_TCK)

# utime + stime in clock ticks; the command name (field 2) may hold spaces,
# so fields are counted after its closing parenthesis.
ticks() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "cpu.sh: no process $1" >&2; return 1; }
  s=${s##*) }
  set -- $s
  echo $(( ${12} + ${13} ))
}

pids=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  pids+=("$1")
  shift
done
[ ${#pids[@]} -gt 0 ] || { echo "usage: cpu.sh PID... [-- CMD ARG...]" >&2; exit 2; }

if [ $# -eq 0 ]; then
  for p in "${pids[@]}"; do
    t=$(ticks "$p")
    awk -v p="$p" -v t="$t" -v k="$tck" 'BEGIN { printf "%s %.2f\n", p, t / k }'
  done
  exit 0
fi

shift # the "--"
before=()
for p in "${pids[@]}"; do before+=("$(ticks "$p")"); done
rc=0
"$@" || rc=$?
i=0
for p in "${pids[@]}"; do
  t=$(ticks "$p")
  awk -v p="$p" -v t="$t" -v b="${before[$i]}" -v k="$tck" \
    'BEGIN { printf "%s %.2f\n", p, (t - b) / k }'
  i=$((i + 1))
done
exit $rc
