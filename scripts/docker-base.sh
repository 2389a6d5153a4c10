#!/usr/bin/env bash
# Base images for machines that reach no image registry (needs root, debootstrap and a
# Debian mirror over apt):
#   geoai-base:bookworm      Debian 12 minbase from debootstrap, imported with `docker import`
#   geoai-postgres:15        Debian's PostgreSQL 15 on that base (docker/postgres/)
# Existing images are kept; --force rebuilds them. Then: scripts/docker-build.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${GEOAI_DOCKER_BASE:-geoai-base:bookworm}
POSTGRES=${GEOAI_POSTGRES_IMAGE:-geoai-postgres:15}
MIRROR=${GEOAI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
force=0
[ "${1:-}" = "--force" ] && force=1

have_image() { [ "$force" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

if have_image "$BASE"; then
  echo "$BASE exists" >&2
else
  command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap not found: apt-get install debootstrap" >&2; exit 1; }
  root=$(mktemp -d "${TMPDIR:-/tmp}/geoai-debootstrap.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm into $root ..." >&2
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 \
    || { tail -20 "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
  echo "imported $BASE" >&2
fi

if have_image "$POSTGRES"; then
  echo "$POSTGRES exists" >&2
else
  docker build --network host --build-arg BASE="$BASE" -t "$POSTGRES" docker/postgres
fi
