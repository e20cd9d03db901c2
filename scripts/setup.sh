#!/usr/bin/env bash
# Sets up this checkout on Debian 12 as root: system packages, a .venv with the locked Python
# packages, and this package installed in it. Idempotent: a second run checks and returns quickly.
#   scripts/setup.sh          what the demo needs
#   scripts/setup.sh --test   plus what the tests need (podman, runc, mmdebstrap, chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_pkgs=(busybox-static util-linux curl iproute2 make)
[ $want_test = 1 ] && apt_pkgs+=(podman runc mmdebstrap uidmap chromium gcc libc6-dev)

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (run as root or install them): ${missing[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv"
  "$PY" -m pip install -q "uv==0.13.8"
fi

stamp=.venv/.pach-airflow-lock.sha256
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  echo "setup: creating .venv from requirements.lock"
  [ -x .venv/bin/python ] || uv venv -q .venv --python "$PY"
  VIRTUAL_ENV=$PWD/.venv uv pip install -q -r requirements.lock
  VIRTUAL_ENV=$PWD/.venv uv pip install -q --no-deps -e .
  echo "$want" > $stamp
fi
