#!/usr/bin/env bash
# Installs what Almanac builds and runs with, when any is missing: the system packages
# (Debian/Ubuntu; run as root or with sudo available) and the deep trainer's pinned Python
# packages (python/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
# chromium, chromium-driver: the console's browser tests; libjs-dygraphs: the console's charts.
packages=(librdkafka-dev libpq-dev libcurl4-openssl-dev postgresql postgresql-contrib zlib1g-dev python3 python3-pip
          chromium chromium-driver libjs-dygraphs)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "system packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python packages: installed when a pinned version is missing or different — the deep
# trainer's (python/requirements.txt) and what the tests run (python/requirements-test.txt).
for requirements in python/requirements.txt python/requirements-test.txt; do
  if python3 - "$requirements" <<'PY'
import sys, importlib.metadata as md
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, version = line.partition("==")
    name = name.split("[")[0]
    try:
        if md.version(name) != version:
            sys.exit(1)
    except md.PackageNotFoundError:
        sys.exit(1)
PY
  then
    echo "python packages: $requirements all present"
  else
    echo "python packages: installing $requirements"
    python3 -m pip install -q -r "$requirements" 2>/dev/null \
      || python3 -m pip install -q --break-system-packages -r "$requirements"
  fi
done
