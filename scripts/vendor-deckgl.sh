#!/usr/bin/env bash
# Refresh the vendored deck.gl browser bundles in app/static/deckgl/ from npm.
# The map component loads them from the app's own server, so the game needs no CDN.
# Usage: scripts/vendor-deckgl.sh [VERSION]   (default: the pinned version below)
set -euo pipefail
VERSION="${1:-9.4.0}"
cd "$(dirname "$0")/.."
DEST=app/static/deckgl
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "deck.gl@$VERSION" "@deck.gl/json@$VERSION" >/dev/null)
mkdir -p "$DEST"
for pkg in "deck.gl-$VERSION" "deck.gl-json-$VERSION"; do
  mkdir -p "$WORK/$pkg" && tar xzf "$WORK/$pkg.tgz" -C "$WORK/$pkg"
done
cp "$WORK/deck.gl-$VERSION/package/dist.min.js" "$DEST/deck.gl.min.js"
cp "$WORK/deck.gl-$VERSION/package/LICENSE" "$DEST/LICENSE-deck.gl"
cp "$WORK/deck.gl-json-$VERSION/package/dist.min.js" "$DEST/deck.gl-json.min.js"
cp "$WORK/deck.gl-json-$VERSION/package/LICENSE" "$DEST/LICENSE-deck.gl-json"
echo "$VERSION" > "$DEST/VERSION"
echo "vendored deck.gl $VERSION and @deck.gl/json $VERSION into $DEST"
