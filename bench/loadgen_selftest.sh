#!/usr/bin/env bash
# loadgen_selftest.sh - a self-check of the load generator against
# `sluice sim`: builds bench/loadgen, runs 20 streams for 3 s and fails on any
# error, on no requests, or on a token count off max_tokens. With
# --gateway it checks the path through the sluice gateway too. Not part of
# `make test`. SLUICE_BIN picks the binary (default: build/sluice).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
sluice=${SLUICE_BIN:-$root/build/sluice}
gateway=0
[ "${1:-}" = "--gateway" ] && gateway=1
[ -x "$sluice" ] || { echo "selftest: no sluice binary at $sluice (make build, or set SLUICE_BIN)" >&2; exit 2; }
make -s -C "$here" loadgen

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Polls until the server answers /v1/models (5 s at most).
wait_up() {
  for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/v1/models" && return 0
    sleep 0.1
  done
  echo "selftest: nothing listens on port $1" >&2
  return 1
}

sim_port=$(free_port)
"$sluice" sim --listen "127.0.0.1:$sim_port" --ttft-ms 0 --itl-ms 20 --jitter-ms 0 \
  --max-num-seqs 100000 --itl-load-pct 0 >"$tmp/sim.log" 2>&1 &
pids+=($!)
wait_up "$sim_port"
targets=("direct http://127.0.0.1:$sim_port/v1/chat/completions")

if [ $gateway = 1 ]; then
  gw_port=$(free_port)
  "$sluice" --listen "127.0.0.1:$gw_port" --upstream "http://127.0.0.1:$sim_port" \
    >"$tmp/gw.log" 2>&1 &
  pids+=($!)
  wait_up "$gw_port"
  targets+=("sluice http://127.0.0.1:$gw_port/v1/chat/completions")
fi

fail=0
for t in "${targets[@]}"; do
  name=${t%% *}
  url=${t#* }
  "$here/loadgen" --url "$url" --concurrency 20 --duration-s 3 --ramp-s 0.5 --max-tokens 16 \
    --drain-s 5 --quiet --out "$tmp/$name.json"
  python3 - "$tmp/$name.json" "$name" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
name = sys.argv[2]
bad = []
if d["errors"]["requests"] != 0:
    bad.append("errors %s" % {k: v for k, v in d["errors"].items() if v})
if d["requests"] == 0:
    bad.append("no requests")
if d["tokens"] != d["requests"] * d["max_tokens"]:
    bad.append("tokens %d != %d x %d" % (d["tokens"], d["requests"], d["max_tokens"]))
if not 15 <= d["itl_ms"]["p50"] <= 30:
    bad.append("ITL p50 %.2f ms, not about 20" % d["itl_ms"]["p50"])
print("selftest %s: %s (%d requests, ITL p50 %.2f ms)" %
      (name, "FAIL: " + "; ".join(bad) if bad else "ok", d["requests"], d["itl_ms"]["p50"]))
sys.exit(1 if bad else 0)
PY
done
exit $fail
