#!/usr/bin/env bash
# Build the game's image (default tag geoai:latest, GEOAI_IMAGE overrides) with host
# networking. Where pip reaches packages only through this machine's pip configuration
# (a CA bundle, a local CPU torch wheel), those are copied into docker/build/ for the build
# stage only. The base is geoai-base:bookworm when it exists (scripts/docker-base.sh),
# else python:3.11-slim; GEOAI_DOCKER_BASE overrides. Prints the build time.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${GEOAI_IMAGE:-geoai:latest}
if [ -n "${GEOAI_DOCKER_BASE:-}" ]; then
  BASE=$GEOAI_DOCKER_BASE
elif docker image inspect geoai-base:bookworm >/dev/null 2>&1; then
  BASE=geoai-base:bookworm
else
  BASE=python:3.11-slim
fi

pip_setting() {  # the host's pip setting NAME (global, user or site), empty when unset
  local pip
  pip=$(command -v .venv/bin/pip || command -v pip3 || command -v pip || true)
  [ -n "$pip" ] || return 0
  "$pip" config list 2>/dev/null | sed -n "s/^[a-z:.]*\.$1='\(.*\)'$/\1/p" | tail -1
}

extras=docker/build
find "$extras" -mindepth 1 ! -name README.md -exec rm -rf {} +
cert=$(pip_setting cert)
conf=""
if [ -n "$cert" ] && [ -f "$cert" ]; then
  cp "$cert" "$extras/ca-certificates.crt"
  conf+="cert = /build/ca-certificates.crt"$'\n'
fi
for index in index-url extra-index-url; do  # only network indexes; file:// ones are not in the build
  urls=$(pip_setting "$index" | tr ' ' '\n' | grep -E '^https?://' | tr '\n' ' ' || true)
  [ -n "$urls" ] && conf+="$index = $urls"$'\n'
done
for dir in $(pip_setting find-links); do
  for wheel in "$dir"/torch-2.13.0*cp311*x86_64.whl; do
    if [ -f "$wheel" ]; then
      mkdir -p "$extras/wheels"
      ln "$wheel" "$extras/wheels/" 2>/dev/null || cp "$wheel" "$extras/wheels/"
    fi
  done
done
if [ -n "$conf" ]; then
  printf '[global]\ndefault-timeout = 120\n%s' "$conf" > "$extras/pip.conf"
fi

echo "building $IMAGE from $BASE" >&2
start=$(date +%s)
docker build --network host --build-arg BASE="$BASE" -t "$IMAGE" "$@" .
echo "image $IMAGE built in $(( $(date +%s) - start )) s" >&2
