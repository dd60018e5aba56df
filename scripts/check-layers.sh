#!/usr/bin/env bash
# check-layers.sh [ROOT] - fails, listing each one, when an include in
# ROOT/src (default: this repository) points up the layer order below: a
# file may include its own folder and folders of lower layers only, never a
# peer's or a higher one's. The README's Layout section states the same
# order, word for word (checked too). Run by ctest as `layers`.
set -euo pipefail
root=${1:-"$(dirname "$0")/.."}
cd "$root"

# Lowest first; folders of src/ ("main.c" is src/main.c). Peers share a rank.
order="core < oai < http, sse < pipeline, sim < stream < upstream < face < app < main.c"

if ! grep -qF "$order" README.md; then
  echo "layers: README.md does not state the order \`$order\`" >&2
  status=1
fi

grep -rn --include='*.c' --include='*.h' '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' src |
  awk -v order="$order" '
    BEGIN {
      n = split(order, groups, "<")
      for (i = 1; i <= n; i++) {
        m = split(groups[i], names, ",")
        for (j = 1; j <= m; j++) {
          gsub(/[[:space:]]/, "", names[j])
          rank[names[j]] = i
        }
      }
      bad = 0
    }
    {
      # path:line:#include "dir/file.h"
      split($0, f, ":")
      path = f[1]; line = f[2]
      inc = $0
      sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
      rel = path; sub(/^src\//, "", rel)
      from = (rel ~ /\//) ? substr(rel, 1, index(rel, "/") - 1) : rel
      if (!(from in rank)) {
        printf "%s:%s: %s is in no layer (add it to the order)\n", path, line, from
        bad = 1; next
      }
      if (inc !~ /\//)
        next # beside the including file
      to = substr(inc, 1, index(inc, "/") - 1)
      if (!(to in rank)) {
        printf "%s:%s: includes %s: %s is in no layer\n", path, line, inc, to
        bad = 1
      } else if (to != from && rank[to] >= rank[from]) {
        printf "%s:%s: %s includes %s: %s is %s %s\n", path, line, from, inc, to,
               rank[to] == rank[from] ? "a peer of" : "above", from
        bad = 1
      }
    }
    END { exit bad }
  ' >&2 || status=1

if [ "${status:-0}" -ne 0 ]; then
  echo "layers: the order, lowest first: $order" >&2
  exit 1
fi
echo "layers: every include in src/ points down ($order)"
