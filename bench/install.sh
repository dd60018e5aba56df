#!/usr/bin/env bash
# install.sh - installs what `make bench` measures against, if missing.
# Idempotent: with everything present it changes nothing and takes a second.
# Debian 12's nginx and HAProxy (2.6) via apt (apt-get update first), with
# their services kept from starting (the benchmark runs its own instances on
# 127.0.0.1 only); valgrind for the micro-benchmark's instruction counts;
# the Portkey gateway via `npm ci` in bench/ from the committed lock file
# (@portkey-ai/gateway 1.15.2 with hono 4.9.7 and @hono/node-server 1.13.5
# pinned: newer @hono/node-server answers every stream with a 500).
set -euo pipefail
cd "$(dirname "$0")"

pkgs=(nginx haproxy valgrind util-linux python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/install: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  # Debian starts nginx (port 80) and HAProxy as services on install; a
  # policy-rc.d that answers 101 ("action forbidden") stops that. Ours is
  # removed afterwards; one already there is left alone.
  policy=/usr/sbin/policy-rc.d
  ours=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    ours=1
  fi
  rc=0
  $sudo apt-get update -qq || rc=$?
  [ $rc -eq 0 ] && { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null || rc=$?; }
  [ $ours -eq 1 ] && $sudo rm -f "$policy"
  [ $rc -eq 0 ] || { echo "bench/install: apt-get failed ($rc)" >&2; exit $rc; }
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "bench/install: node and npm are needed for the Portkey gateway" >&2
  exit 1
fi
# npm ci only when the lock file changed since the last install.
stamp=node_modules/.sluice-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "bench/install: npm ci in bench/"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  cp package-lock.json "$stamp"
fi
