#!/usr/bin/env bash
# Installs the system packages Almanac builds and runs with, when any is missing.
# Debian/Ubuntu; run as root or with sudo available.
set -euo pipefail
packages=(librdkafka-dev libpq-dev libcurl4-openssl-dev postgresql postgresql-contrib zlib1g-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
