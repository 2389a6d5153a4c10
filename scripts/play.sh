#!/usr/bin/env bash
# The game from a fresh clone, offline: convert the offline backbones, train and publish
# model bundles for each map not trained yet (runs/play-<map>), then start the Streamlit app.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export GEOAI_DATA_DIR="${GEOAI_DATA_DIR:-$(cd .. && pwd)/shared/data}"
# The two real pretrained backbones that reach an offline machine (see README).
PLAY_BACKBONES="${GEOAI_PLAY_BACKBONES:-dinov2-small-imgfocus,mobilenetv2-1.0-deepsort}"
PLAY_MAPS="${GEOAI_PLAY_MAPS:-croatia-streetview streetview-world-tiles}"

$PY -m train convert-offline
for map in $PLAY_MAPS; do
  if [ -f "runs/play-$map/results.json" ]; then
    # Already trained (`rm -rf runs/play-$map` to retrain); published with the game's answers?
    [ -f "${GEOAI_MODELS_DIR:-models}/predictions/$map.sqlite" ] || $PY -m train publish "runs/play-$map"
    continue
  fi
  echo "Training the game's models on $map (once; a few minutes on a CPU)..."
  $PY -m train --data "$GEOAI_DATA_DIR/$map" --backbones "$PLAY_BACKBONES" \
      --heads geocell,linear-haversine --out "runs/play-$map"
  $PY -m train publish "runs/play-$map"
done
# Offline by design: no usage statistics sent from the browser.
exec .venv/bin/streamlit run app/main.py --browser.gatherUsageStats false "$@"
