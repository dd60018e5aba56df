#!/usr/bin/env bash
# deps.sh - installs what sluice needs to build, run and test, if missing.
# Idempotent: with everything present it changes nothing and takes a second.
# Debian 12 packages via apt (apt-get update first; node and npm too when
# missing), npm packages via `npm ci` from the committed lock files.
# `--fuzz` adds clang's libFuzzer runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential cmake pkg-config libuv1-dev libjansson-dev libcurl4-openssl-dev libcmocka-dev
      libwslay-dev libssl-dev python3 python3-pytest)
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang libclang-rt-14-dev)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# The SDK tests need node and npm: Debian's packages when the commands are
# missing (a node from elsewhere, with its own npm, is left alone).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
for dir in tests/sdk; do
  [ -f "$dir/package-lock.json" ] || continue
  stamp="$dir/node_modules/.sluice-lock"
  if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
    echo "deps: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp "$dir/package-lock.json" "$stamp"
  fi
done
