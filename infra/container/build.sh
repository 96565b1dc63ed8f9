#!/usr/bin/env bash
# Builds the one Almanac image (infra/Containerfile) from the repository's root, with podman
# or docker, and lists what it holds.
#
#   infra/container/build.sh IMAGE[:TAG] [--push]
set -euo pipefail
cd "$(dirname "$0")/../.."
image="${1:?usage: infra/container/build.sh IMAGE[:TAG] [--push]}"
engine="$(command -v podman || command -v docker || true)"
[ -n "$engine" ] || { echo "neither podman nor docker is installed" >&2; exit 1; }
"$engine" build -f infra/Containerfile -t "$image" .
echo "== $image holds:"
"$engine" run --rm --entrypoint /bin/sh "$image" -c 'ls -1 /app/bin; ls -d /app/functions/* /app/events /app/console /app/python /app/infra/migrations'
if [ "${2:-}" = "--push" ]; then "$engine" push "$image"; fi
