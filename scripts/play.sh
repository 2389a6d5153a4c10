#!/usr/bin/env bash
# The game from a fresh clone, offline: convert the offline backbones, train and publish
# model bundles (runs/play-<name>, once), then start the Streamlit app.
#  - one pair per country map (croatia-streetview);
#  - one world pair trained on every other dataset found together (runs/play-world), which
#    plays every world map (a model plays only maps inside its training coverage).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export GEOAI_DATA_DIR="${GEOAI_DATA_DIR:-$(cd .. && pwd)/shared/data}"
# The two real pretrained backbones that reach an offline machine (see README).
PLAY_BACKBONES="${GEOAI_PLAY_BACKBONES:-dinov2-small-imgfocus,mobilenetv2-1.0-deepsort}"
PLAY_MAPS="${GEOAI_PLAY_MAPS:-croatia-streetview}"  # country maps with a pair of their own

train_and_publish() {  # NAME METRIC HEADS --data DIR [--data DIR ...]
  local name="$1" metric="$2" heads="$3"; shift 3
  if [ -f "runs/play-$name/results.json" ]; then
    # Already trained (`rm -rf runs/play-$name` to retrain); published with the game's answers?
    local first; first="$(basename "$2")"
    [ -f "${GEOAI_MODELS_DIR:-models}/predictions/$first.sqlite" ] \
      || $PY -m train publish "runs/play-$name" --metric "$metric"
    return
  fi
  echo "Training the game's models: $name (once; minutes on a CPU)..."
  $PY -m train "$@" --name "$name" --backbones "$PLAY_BACKBONES" \
      --heads "$heads" --out "runs/play-$name"
  $PY -m train publish "runs/play-$name" --metric "$metric"
}

echo "==> play: the offline backbones (converted once, then reused)"
$PY -m train convert-offline
for map in $PLAY_MAPS; do
  train_and_publish "$map" mean_km geocell,linear-haversine --data "$GEOAI_DATA_DIR/$map"
done
world=()
for folder in "$GEOAI_DATA_DIR"/*/; do
  name="$(basename "$folder")"
  case " $PLAY_MAPS " in *" $name "*) continue ;; esac
  [ -f "$folder/metadata.csv" ] && world+=(--data "${folder%/}")
done
if [ ${#world[@]} -gt 0 ]; then
  # Refined geocells only: on the world a regression head averages continents and guesses open
  # sea for half the photos (docs/results/world.md). Views fused per place, so a guess is one
  # training location, not a mean of several.
  train_and_publish world median_km geocell "${world[@]}" --fusion mean
fi
# Offline by design: no usage statistics sent from the browser.
echo "==> play: starting the game (Streamlit prints its address when it is ready)"
exec .venv/bin/streamlit run app/main.py --browser.gatherUsageStats false "$@"
